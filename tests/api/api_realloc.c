/* realloc, through ta_*: realloc(NULL, n) is malloc(n); realloc(p, 0) frees and returns NULL (glibc);
 * growing and shrinking keep the contents, also across the 128 KiB line in both directions; growing
 * within the usable size does not move the block; reallocarray resizes like realloc. */
#include "blocks.h"

#define FULL_LIMIT TB_MIB

static void test_realloc_null_is_malloc(void) {
  static const size_t sizes[] = {0, 1, 100, 4096, TB_ROUTER_LINE - 1, TB_ROUTER_LINE, TB_MIB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    unsigned char *p = ta_realloc(NULL, sizes[i]);
    CHECK_MSG(p != NULL, "ta_realloc(NULL, %zu) returned NULL", sizes[i]);
    CHECK_ALIGNED(p, 16);
    CHECK(ta_owns(p) == 1);
    CHECK(ta_usable_size(p) >= sizes[i]);
    memset(p, 0x3c, ta_usable_size(p));
    ta_free(p);
    p = ta_reallocarray(NULL, 1, sizes[i]);
    CHECK_MSG(p != NULL, "ta_reallocarray(NULL, 1, %zu) returned NULL", sizes[i]);
    CHECK(ta_owns(p) == 1);
    CHECK(ta_usable_size(p) >= sizes[i]);
    ta_free(p);
  }
}

static ta_stats_t stats(void) {
  ta_stats_t s;
  ta_stats_get(&s);
  return s;
}

/* glibc: realloc(p, 0) with p != NULL frees p and returns NULL. Freed, not leaked: thousands of
 * malloc + realloc(p, 0) leave the segments and the large blocks where they were. */
static void test_realloc_zero_frees(void) {
  static const size_t sizes[] = {1, 100, 4096, 100 * 1024, TB_ROUTER_LINE, 4 * TB_MIB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = ta_malloc(sizes[i]);
    CHECK(p != NULL);
    CHECK(ta_owns(p) == 1);
    void *q = ta_realloc(p, 0);
    CHECK_MSG(q == NULL, "ta_realloc(block of %zu, 0) returned %p, want NULL", sizes[i], q);
  }
  ta_stats_t before = stats();
  for (int i = 0; i < 20000; i++) {
    size_t n = (size_t)(i % 50 + 1) * 1000; /* 1 KB .. 50 KB: 500 MB if nothing were freed */
    void *p = ta_malloc(n);
    CHECK(p != NULL);
    ((volatile char *)p)[n - 1] = 1;
    CHECK(ta_realloc(p, 0) == NULL);
    if (i % 100 == 0) {
      p = ta_malloc(TB_MIB);
      CHECK(p != NULL);
      CHECK(ta_realloc(p, 0) == NULL);
    }
  }
  ta_stats_t after = stats();
  CHECK_MSG(after.segment_bytes <= before.segment_bytes + 8 * TB_MIB,
            "malloc + realloc(p, 0) loop grew the segments from %zu to %zu bytes", before.segment_bytes,
            after.segment_bytes);
  CHECK_MSG(after.large_blocks == before.large_blocks, "realloc(p, 0) left %zu large blocks (was %zu)",
            after.large_blocks, before.large_blocks);
}

/* Resizes one block through `steps`, checking at each step that the bytes both sizes share survived,
 * and that the new size is usable in full. */
static void resize_chain(const size_t *steps, size_t count, uint64_t id) {
  unsigned char *p = ta_malloc(steps[0]);
  CHECK(p != NULL);
  tb_fill(p, steps[0], id, FULL_LIMIT);
  for (size_t i = 1; i < count; i++) {
    size_t old = steps[i - 1], n = steps[i];
    unsigned char *q = i % 2 ? ta_realloc(p, n) : ta_reallocarray(p, 1, n);
    CHECK_MSG(q != NULL, "resize %zu -> %zu returned NULL", old, n);
    CHECK_ALIGNED(q, 16);
    CHECK_MSG(ta_usable_size(q) >= n, "resize %zu -> %zu: usable %zu", old, n, ta_usable_size(q));
    CHECK(ta_owns(q) == 1);
    TB_CHECK_PREFIX(q, old, id, FULL_LIMIT, n);
    id++;
    tb_fill(q, n, id, FULL_LIMIT);
    p = q;
  }
  TB_CHECK(p, steps[count - 1], id, FULL_LIMIT);
  ta_free(p);
}

static void test_grow_shrink(void) {
  const size_t k = TB_KIB;
  const size_t across[] = {100 * k, 300 * k, 64 * k, 2 * TB_MIB, 10};
  resize_chain(across, sizeof across / sizeof across[0], 100);
  const size_t line[] = {1, TB_ROUTER_LINE - 1, TB_ROUTER_LINE, TB_ROUTER_LINE - 1, TB_ROUTER_LINE + 1,
                         TB_ROUTER_LINE - 16, 16 * TB_MIB, 17, 20 * TB_MIB, 40 * TB_MIB, 5 * TB_MIB,
                         127 * k, 129 * k, 8, 1};
  resize_chain(line, sizeof line / sizeof line[0], 200);
  const size_t small[] = {1, 2, 16, 17, 32, 48, 64, 100, 128, 129, 1000, 900, 1024, 1025, 4096, 3, 1,
                          8192, 65536, 65535, 70000, 24};
  resize_chain(small, sizeof small / sizeof small[0], 300);
}

/* Random chains of one block, and of many blocks at once so that growing in place is sometimes
 * possible and sometimes not. */
static void test_random_chains(uint64_t seed) {
  test_rng_t r = {seed};
  enum { STEPS = 1500 };
  static size_t steps[STEPS];
  for (size_t i = 0; i < STEPS; i++) steps[i] = tb_log_uniform(&r, 0, 22); /* up to 8 MiB */
  resize_chain(steps, STEPS, 1000);

  enum { N = 400, ROUNDS = 20 };
  static unsigned char *ps[N];
  static size_t ns[N];
  static uint64_t ids[N];
  uint64_t next_id = 100000;
  for (size_t i = 0; i < N; i++) {
    ns[i] = tb_log_uniform(&r, 0, 14);
    ps[i] = ta_malloc(ns[i]);
    CHECK(ps[i] != NULL);
    ids[i] = next_id++;
    tb_fill(ps[i], ns[i], ids[i], FULL_LIMIT);
  }
  for (int round = 0; round < ROUNDS; round++) {
    for (size_t i = 0; i < N; i++) {
      size_t n = test_rng_below(&r, 8) == 0 ? tb_log_uniform(&r, 15, 20) : tb_log_uniform(&r, 0, 15);
      unsigned char *q = ta_realloc(ps[i], n);
      CHECK_MSG(q != NULL, "ta_realloc(%zu -> %zu) returned NULL", ns[i], n);
      CHECK_ALIGNED(q, 16);
      CHECK(ta_usable_size(q) >= n);
      TB_CHECK_PREFIX(q, ns[i], ids[i], FULL_LIMIT, n);
      ids[i] = next_id++;
      tb_fill(q, n, ids[i], FULL_LIMIT);
      ps[i] = q;
      ns[i] = n;
    }
    for (size_t i = 0; i < N; i++) TB_CHECK(ps[i], ns[i], ids[i], FULL_LIMIT);
  }
  for (size_t i = 0; i < N; i++) ta_free(ps[i]);
}

/* Growing to the usable size the allocator reported keeps the block where it is. */
static void test_grow_within_usable(void) {
  for (size_t n = 0; n <= 3 * TB_MIB; n = n < 64 ? n + 1 : n + n / 5) {
    unsigned char *p = ta_malloc(n);
    CHECK(p != NULL);
    tb_fill(p, n, n, FULL_LIMIT);
    size_t u = ta_usable_size(p);
    /* First half-way between the request and the usable size, then all of it. */
    size_t mid = n + (u - n) / 2;
    if (u == 0) { /* nothing to grow into (realloc(p, 0) would free) */
      ta_free(p);
      continue;
    }
    if (mid == 0) mid = u;
    unsigned char *q = ta_realloc(p, mid);
    CHECK_MSG(q == p, "ta_realloc(p, %zu) of a %zu-byte block with usable %zu moved it (%p -> %p)", mid,
              n, u, (void *)p, (void *)q);
    q = ta_realloc(p, u);
    CHECK_MSG(q == p, "ta_realloc(p, usable %zu) of a %zu-byte block moved it (%p -> %p)", u, n,
              (void *)p, (void *)q);
    CHECK(ta_usable_size(q) >= u);
    TB_CHECK(q, n, n, FULL_LIMIT);
    memset(q, 0x77, u);
    ta_free(q);
  }
}

int main(void) {
  uint64_t seed = test_seed(0x4ea110cull);
  test_realloc_null_is_malloc();
  test_realloc_zero_frees();
  test_grow_shrink();
  test_random_chains(seed);
  test_grow_within_usable();
  return 0;
}
