/* The api suite's basics, through ta_* only: malloc(0), free(NULL), errno across free and trim,
 * 16-byte alignment, usable sizes from 0 to 2 MiB, and thousands of live blocks that never overlap. */
#include "blocks.h"

#include <errno.h>

#define FULL_LIMIT TB_MIB /* blocks up to this are patterned byte by byte */

/* ta_malloc(0): a unique, 16-aligned, freeable block each time. */
static void test_malloc_zero(void) {
  enum { N = 1000 };
  static void *ps[N];
  static tb_span_t spans[N];
  for (size_t i = 0; i < N; i++) {
    ps[i] = ta_malloc(0);
    CHECK_MSG(ps[i] != NULL, "ta_malloc(0) #%zu returned NULL", i);
    CHECK_ALIGNED(ps[i], 16);
    CHECK(ta_owns(ps[i]) == 1);
    spans[i].start = (uintptr_t)ps[i];
    spans[i].len = ta_usable_size(ps[i]);
    memset(ps[i], 0x5a, spans[i].len);
  }
  tb_check_disjoint(spans, N);
  for (size_t i = 0; i < N; i++) ta_free(ps[i]);
}

static void test_free_null(void) {
  errno = 1234;
  ta_free(NULL);
  CHECK_EQ_SZ(errno, 1234);
  ta_free(NULL);
  CHECK_EQ_SZ(ta_usable_size(NULL), 0);
  CHECK(ta_owns(NULL) == 0);
}

/* free (and trim) must leave errno as they found it, whatever syscalls they make on the way:
 * munmap of a large block, madvise of purged pages, brk shrinking, segment release. */
static void free_keeping_errno(void *p) {
  errno = 1234;
  ta_free(p);
  CHECK_MSG(errno == 1234, "ta_free(%p) changed errno to %d", p, errno);
}

static void test_free_keeps_errno(void) {
  static const size_t sizes[] = {0, 1, 64, 4096, 100000, 128 * 1024 - 1, 128 * 1024, 1 << 20,
                                 16 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = ta_malloc(sizes[i]);
    CHECK(p != NULL);
    memset(p, 0xcd, sizes[i]);
    free_keeping_errno(p);
  }
  free_keeping_errno(NULL);

  /* Bulk frees that empty whole pages, spans and segments, first with the default decay, then with
   * decay 0 so that freeing purges at once. */
  long decay = ta_getopt(TA_OPT_DECAY_MS);
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) CHECK(ta_mallopt(TA_OPT_DECAY_MS, 0) == 1);
    enum { SMALL = 1 << 17, MEDIUM = 160 };
    static void *small[SMALL], *medium[MEDIUM];
    for (size_t i = 0; i < SMALL; i++) {
      small[i] = ta_malloc(64);
      CHECK(small[i] != NULL);
      memset(small[i], 0xab, 64);
    }
    for (size_t i = 0; i < MEDIUM; i++) {
      medium[i] = ta_malloc(100 * 1024);
      CHECK(medium[i] != NULL);
      memset(medium[i], 0xab, 100 * 1024);
    }
    for (size_t i = 0; i < SMALL; i++) free_keeping_errno(small[i]);
    for (size_t i = MEDIUM; i-- > 0;) free_keeping_errno(medium[i]);
    errno = 1234;
    (void)ta_trim(0);
    CHECK_MSG(errno == 1234, "ta_trim(0) changed errno to %d", errno);
  }
  CHECK(ta_mallopt(TA_OPT_DECAY_MS, decay) == 1);
}

/* Every size from 0 to 4096, then a geometric sweep to 2 MiB (each point and its neighbours), all live
 * at once: usable >= requested, all of the usable bytes writable without touching a neighbour. */
static void test_usable_size_sweep(void) {
  enum { MAXN = 8192 };
  static void *ps[MAXN];
  static size_t req[MAXN];
  static tb_span_t spans[MAXN];
  size_t n = 0;
  for (size_t s = 0; s <= 4096; s++) req[n++] = s;
  for (size_t s = 4096; s <= 2 * TB_MIB; s += s / 8) {
    req[n++] = s - 1;
    req[n++] = s;
    req[n++] = s + 1;
  }
  CHECK(n <= MAXN);
  for (size_t i = 0; i < n; i++) {
    ps[i] = ta_malloc(req[i]);
    CHECK_MSG(ps[i] != NULL, "ta_malloc(%zu) returned NULL", req[i]);
    CHECK_ALIGNED(ps[i], 16);
    size_t u = ta_usable_size(ps[i]);
    CHECK_MSG(u >= req[i], "ta_usable_size(ta_malloc(%zu)) = %zu", req[i], u);
    CHECK_EQ_SZ(ta_usable_size(ps[i]), u); /* stable */
    spans[i].start = (uintptr_t)ps[i];
    spans[i].len = u;
    tb_fill(ps[i], u, i, FULL_LIMIT);
  }
  for (size_t i = 0; i < n; i++) TB_CHECK(ps[i], spans[i].len, i, FULL_LIMIT);
  tb_check_disjoint(spans, n);
  for (size_t i = 0; i < n; i++) ta_free(ps[i]);
}

/* Thousands of random blocks from every allocation function, each with its own pattern; a random half
 * is freed and replaced; all are verified, and no two overlap. */
typedef struct blk_s {
  unsigned char *p;
  size_t n;     /* requested bytes, all patterned */
  uint64_t id;  /* pattern identity */
  size_t align; /* alignment asked of aligned_alloc/posix_memalign, 0 for the others */
  int by_aligned_alloc; /* from ta_aligned_alloc: ta_free_aligned_sized may free it */
} blk_t;

static void *alloc_random(test_rng_t *r, size_t n, int *zeroed, size_t *align, int *by_aa) {
  *zeroed = 0;
  *align = 0;
  *by_aa = 0;
  switch (test_rng_below(r, 6)) {
  case 0: *zeroed = 1; return ta_calloc(1, n);
  case 1: return ta_realloc(NULL, n);
  case 2:
    *by_aa = 1;
    *align = (size_t)16 << test_rng_below(r, 8);
    return ta_aligned_alloc(*align, n);
  case 3: {
    void *p = NULL;
    *align = (size_t)8 << test_rng_below(r, 10);
    int rc = ta_posix_memalign(&p, *align, n);
    CHECK_MSG(rc == 0, "ta_posix_memalign(%zu, %zu) = %d", *align, n, rc);
    return p;
  }
  default: return ta_malloc(n);
  }
}

static void new_block(test_rng_t *r, blk_t *b, uint64_t id) {
  size_t n = test_rng_below(r, 50) == 0 ? 0 : tb_log_uniform(r, 0, 19); /* up to 1 MiB */
  int zeroed;
  b->p = alloc_random(r, n, &zeroed, &b->align, &b->by_aligned_alloc);
  CHECK_MSG(b->p != NULL, "allocation of %zu bytes failed", n);
  CHECK_ALIGNED(b->p, 16);
  if (b->align > 16) CHECK_ALIGNED(b->p, b->align);
  CHECK(ta_usable_size(b->p) >= n);
  if (zeroed) CHECK_MSG(tb_first_nonzero(b->p, n) == SIZE_MAX, "calloc block of %zu not zero", n);
  b->n = n;
  b->id = id;
  tb_fill(b->p, n, id, FULL_LIMIT);
}

static void check_all(blk_t *blks, size_t n) {
  static tb_span_t spans[8192];
  CHECK(n <= 8192);
  for (size_t i = 0; i < n; i++) {
    TB_CHECK(blks[i].p, blks[i].n, blks[i].id, FULL_LIMIT);
    spans[i].start = (uintptr_t)blks[i].p;
    spans[i].len = ta_usable_size(blks[i].p);
  }
  tb_check_disjoint(spans, n);
}

static void test_no_overlap(uint64_t seed) {
  enum { N = 5000 };
  static blk_t blks[N];
  test_rng_t r = {seed};
  uint64_t next_id = 1;
  for (size_t i = 0; i < N; i++) new_block(&r, &blks[i], next_id++);
  check_all(blks, N);
  for (int round = 0; round < 4; round++) {
    for (size_t i = 0; i < N; i++) {
      if (test_rng_below(&r, 2)) continue;
      TB_CHECK(blks[i].p, blks[i].n, blks[i].id, FULL_LIMIT);
      if (test_rng_below(&r, 2)) ta_free(blks[i].p);
      else if (blks[i].by_aligned_alloc) ta_free_aligned_sized(blks[i].p, blks[i].align, blks[i].n);
      else if (blks[i].align == 0) ta_free_sized(blks[i].p, blks[i].n);
      else ta_free(blks[i].p);
      new_block(&r, &blks[i], next_id++);
    }
    check_all(blks, N);
  }
  for (size_t i = 0; i < N; i++) ta_free(blks[i].p);
}

int main(void) {
  uint64_t seed = test_seed(0x7a3a11c0ull);
  test_malloc_zero();
  test_free_null();
  test_free_keeps_errno();
  test_usable_size_sweep();
  test_no_overlap(seed);
  return 0;
}
