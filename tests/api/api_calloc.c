/* calloc, through ta_*: the memory is zero, fresh or reused after a dirty free, small, medium and
 * large (>= 128 KiB, where a cached or recycled mapping would also have to be cleared), at every size
 * class, after a purge, and the overflow checks. The cases after a purge and at every class guard any
 * skipped memset: a skip that trusts memory to be zero too eagerly shows here as a dirty byte. Run
 * again with TAMALLOC_DECAY_MS=0 (api_calloc_decay0), where frees that empty a span purge at once. */
#include <errno.h>
#include <stdint.h>

#include "blocks.h"

#define DIRTY 0xaa

static void check_zero(const void *p, size_t n, const char *what, size_t count, size_t size) {
  size_t bad = tb_first_nonzero(p, n);
  CHECK_MSG(bad == SIZE_MAX, "%s(%zu, %zu) = %p: byte %zu is 0x%02x, not zero", what, count, size, p,
            bad, ((const unsigned char *)p)[bad]);
}

static void test_fresh(void) {
  static const size_t pairs[][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}, {3, 5}, {16, 1}, {1, 4096},
                                    {4096, 1}, {100, 1000}, {1, TB_ROUTER_LINE - 1},
                                    {1, TB_ROUTER_LINE}, {1024, 1024}, {3, 7 * TB_MIB}};
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    size_t c = pairs[i][0], s = pairs[i][1];
    unsigned char *p = ta_calloc(c, s);
    CHECK_MSG(p != NULL, "ta_calloc(%zu, %zu) returned NULL", c, s);
    CHECK_ALIGNED(p, 16);
    CHECK(ta_owns(p) == 1);
    CHECK(ta_usable_size(p) >= c * s);
    check_zero(p, c * s, "ta_calloc", c, s);
    ta_free(p);
  }
}

/* Fill blocks of one size with DIRTY, free them (in a shuffled order), calloc the same sizes again
 * and again: every calloc'd byte must be zero although the memory is being reused. */
static void dirty_reuse(test_rng_t *r, size_t size, size_t count, int rounds) {
  enum { MAXN = 512 };
  void *ps[MAXN];
  CHECK(count <= MAXN);
  for (size_t i = 0; i < count; i++) {
    ps[i] = ta_malloc(size);
    CHECK(ps[i] != NULL);
    memset(ps[i], DIRTY, ta_usable_size(ps[i]));
  }
  for (int round = 0; round < rounds; round++) {
    for (size_t i = count; i > 1; i--) { /* shuffle, so reuse is not in allocation order */
      size_t j = test_rng_below(r, i);
      void *t = ps[i - 1];
      ps[i - 1] = ps[j];
      ps[j] = t;
    }
    for (size_t i = 0; i < count; i++) ta_free(ps[i]);
    for (size_t i = 0; i < count; i++) {
      /* Split the size into count * size two ways, to exercise the multiplication. */
      size_t c = (i % 2 && size % 16 == 0) ? 16 : 1;
      ps[i] = ta_calloc(c, size / c);
      CHECK_MSG(ps[i] != NULL, "ta_calloc(%zu, %zu) returned NULL", c, size / c);
      check_zero(ps[i], size, "ta_calloc (reused)", c, size / c);
      memset(ps[i], DIRTY, ta_usable_size(ps[i])); /* dirty again for the next round */
    }
  }
  for (size_t i = 0; i < count; i++) ta_free(ps[i]);
}

static void test_dirty_reuse(uint64_t seed) {
  test_rng_t r = {seed};
  static const size_t small[] = {1, 8, 16, 24, 40, 64, 100, 128, 200, 512, 1000, 4096, 5000, 16384,
                                 65536, 100000, TB_ROUTER_LINE - 1};
  for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
    size_t count = small[i] <= 4096 ? 512 : 64;
    dirty_reuse(&r, small[i], count, 8);
  }
  static const size_t large[] = {TB_ROUTER_LINE, TB_ROUTER_LINE + 1, 200 * TB_KIB, TB_MIB,
                                 4 * TB_MIB + 17};
  for (size_t i = 0; i < sizeof large / sizeof large[0]; i++) dirty_reuse(&r, large[i], 8, 8);
}

/* Mixed sizes: a dirty block of one size is reused for a calloc of a smaller size, and a block shrunk
 * by realloc leaves a dirty tail behind. */
static void test_mixed_reuse(uint64_t seed) {
  test_rng_t r = {seed ^ 0x5bd1e995ull};
  enum { N = 2000, ROUNDS = 10 };
  static void *ps[N];
  for (int round = 0; round < ROUNDS; round++) {
    for (size_t i = 0; i < N; i++) {
      size_t n = test_rng_below(&r, 64) == 0 ? tb_log_uniform(&r, 17, 20) : tb_log_uniform(&r, 0, 14);
      ps[i] = ta_malloc(n);
      CHECK(ps[i] != NULL);
      memset(ps[i], DIRTY, ta_usable_size(ps[i]));
      if (test_rng_below(&r, 4) == 0) {
        void *q = ta_realloc(ps[i], n / 2 + 1);
        CHECK(q != NULL);
        ps[i] = q;
      }
    }
    for (size_t i = 0; i < N; i++) ta_free(ps[i]);
    for (size_t i = 0; i < N; i++) {
      size_t n = test_rng_below(&r, 64) == 0 ? tb_log_uniform(&r, 17, 20) : tb_log_uniform(&r, 0, 14);
      ps[i] = ta_calloc(1, n);
      CHECK(ps[i] != NULL);
      check_zero(ps[i], n, "ta_calloc (mixed reuse)", 1, n);
      memset(ps[i], DIRTY, ta_usable_size(ps[i]));
    }
    for (size_t i = 0; i < N; i++) ta_free(ps[i]);
  }
}

/* Every size class (each usable size malloc gives, from 16 B to the threshold): blocks filled
 * DIRTY over their whole usable size and freed, then calloc'd at that full size. */
static void test_every_class(void) {
  enum { MAXN = 64 };
  void *ps[MAXN];
  size_t classes = 0;
  for (size_t n = 1; n < TB_ROUTER_LINE;) {
    void *probe = ta_malloc(n);
    CHECK(probe != NULL);
    size_t u = ta_usable_size(probe);
    ta_free(probe);
    size_t count = (4 * TB_MIB) / u < MAXN ? (4 * TB_MIB) / u + 1 : MAXN;
    for (size_t i = 0; i < count; i++) {
      ps[i] = ta_malloc(u);
      CHECK(ps[i] != NULL && ta_usable_size(ps[i]) == u);
      memset(ps[i], DIRTY, u);
    }
    for (size_t i = 0; i < count; i++) ta_free(ps[i]);
    for (size_t i = 0; i < count; i++) {
      ps[i] = ta_calloc(1, u);
      CHECK(ps[i] != NULL);
      check_zero(ps[i], u, "ta_calloc (every class)", 1, u);
      memset(ps[i], DIRTY, u);
    }
    for (size_t i = 0; i < count; i++) ta_free(ps[i]);
    classes++;
    /* u > n where the usable size is the class's (n is one past a class size); the secure variant
     * reports the size asked for (u == n), so walk its sizes geometrically instead of byte by byte. */
    n = u > n ? u + 1 : n + n / 8 + 1;
  }
  CHECK(classes > 40); /* the walk met the classes, not a few big steps */
}

/* After malloc_trim's purge: free units and the free OS pages inside partly used spans go back to
 * the OS (zero when faulted in again), and the spans that stay carry dirty blocks beside them; calloc
 * must be zero over both, and over dirty blocks freed after the purge. */
static void test_after_purge(uint64_t seed) {
  test_rng_t r = {seed ^ 0x9e3779b9ull};
  enum { N = 4000 };
  static void *ps[N];
  static size_t sz[N];
  for (int round = 0; round < 3; round++) {
    for (size_t i = 0; i < N; i++) {
      sz[i] = tb_log_uniform(&r, 4, round == 2 ? 17 : 13);
      ps[i] = ta_malloc(sz[i]);
      CHECK(ps[i] != NULL);
      memset(ps[i], DIRTY, ta_usable_size(ps[i]));
    }
    /* Free most, keeping every tenth block live so that spans stay partly used. */
    for (size_t i = 0; i < N; i++)
      if (i % 10 != 0) ta_free(ps[i]);
    ta_trim(0);
    for (size_t i = 0; i < N; i++) {
      if (i % 10 == 0) continue;
      ps[i] = ta_calloc(1, sz[i]);
      CHECK(ps[i] != NULL);
      check_zero(ps[i], sz[i], "ta_calloc (after a purge)", 1, sz[i]);
      memset(ps[i], DIRTY, ta_usable_size(ps[i]));
    }
    for (size_t i = 0; i < N; i++) ta_free(ps[i]);
    for (size_t i = 0; i < N; i++) { /* dirty reuse right after the purged memory came back */
      ps[i] = ta_calloc(sz[i], 1);
      CHECK(ps[i] != NULL);
      check_zero(ps[i], sz[i], "ta_calloc (reused after a purge)", sz[i], 1);
      memset(ps[i], DIRTY, ta_usable_size(ps[i]));
    }
    for (size_t i = 0; i < N; i++) ta_free(ps[i]);
  }
}

/* count * size overflows, or asks for more than any allocation can be: NULL and ENOMEM. */
static void test_overflow(void) {
  static const size_t pairs[][2] = {{SIZE_MAX, 2}, {2, SIZE_MAX}, {SIZE_MAX / 2 + 1, 2}, {SIZE_MAX, SIZE_MAX},
                                    {(size_t)1 << 32, (size_t)1 << 32}, {PTRDIFF_MAX, 1}, {1, SIZE_MAX}};
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    errno = 0;
    void *p = ta_calloc(pairs[i][0], pairs[i][1]);
    CHECK_MSG(p == NULL && errno == ENOMEM, "ta_calloc(%zu, %zu) = %p, errno %d", pairs[i][0], pairs[i][1],
              p, errno);
  }
}

int main(void) {
  uint64_t seed = test_seed(0xca110cull);
  test_fresh();
  test_dirty_reuse(seed);
  test_mixed_reuse(seed);
  test_every_class();
  test_after_purge(seed);
  test_overflow();
  return 0;
}
