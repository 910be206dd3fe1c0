/* The failure contract, through ta_*: requests too large for any address space fail with NULL and
 * ENOMEM (no wrap-around in size arithmetic: count * size, size + header, size rounded up to a page or
 * an alignment); a failed realloc leaves the old block as it was; bad alignments fail with EINVAL;
 * posix_memalign returns its error and leaves *memptr alone, and as glibc's does, sets errno to ENOMEM
 * when it ran out of memory (programs read it) but leaves errno alone for EINVAL and on success.
 * Out of memory is both a request no address space holds and a kernel refusal faked through the OS
 * layer's test hook (src/os.h). */
#include "blocks.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include "src/os.h"

/* posix_memalign's whole result: return value, *memptr (NULL when left alone), errno afterwards. */
typedef struct {
  int rc, err;
  void *p;
} pm_result_t;

#define PM_ERRNO_BEFORE 1234 /* no errno value: whatever posix_memalign leaves here it did not set */
static void *const pm_sentinel = (void *)(uintptr_t)0x5e17e1;

static pm_result_t pm(size_t align, size_t size) {
  void *m = pm_sentinel;
  errno = PM_ERRNO_BEFORE;
  int rc = ta_posix_memalign(&m, align, size);
  pm_result_t r = {.rc = rc, .err = errno, .p = m == pm_sentinel ? NULL : m};
  return r;
}

#define EXPECT_PM_FAIL(align, size, want)                                                           \
  do {                                                                                               \
    pm_result_t r_ = pm(align, size);                                                                \
    int want_errno_ = (want) == ENOMEM ? ENOMEM : PM_ERRNO_BEFORE;                                    \
    CHECK_MSG(r_.rc == (want), "ta_posix_memalign(%zu, %zu) = %d, want %d", (size_t)(align),        \
              (size_t)(size), r_.rc, (want));                                                        \
    CHECK_MSG(r_.p == NULL, "ta_posix_memalign(%zu, %zu) failed but wrote %p", (size_t)(align),     \
              (size_t)(size), r_.p);                                                                 \
    CHECK_MSG(r_.err == want_errno_, "ta_posix_memalign(%zu, %zu) = %d left errno %d, want %d",     \
              (size_t)(align), (size_t)(size), r_.rc, r_.err, want_errno_);                          \
  } while (0)

/* Sizes no allocator can serve: within a few pages of SIZE_MAX (where a header, a rounding or an
 * alignment overflows), around PTRDIFF_MAX (the largest object C allows) and the powers of two between. */
static size_t huge_sizes[128];
static size_t n_huge;

static void make_huge_sizes(void) {
  static const size_t below_max[] = {0, 1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 4095, 4096, 4097,
                                     65535, 65536, 65537, (128 << 10) + 16, (1 << 20) + 16,
                                     (64 << 20) + 16};
  n_huge = 0;
  for (size_t i = 0; i < sizeof below_max / sizeof below_max[0]; i++)
    huge_sizes[n_huge++] = SIZE_MAX - below_max[i];
  for (size_t k = 0; k <= 16; k++) huge_sizes[n_huge++] = (size_t)PTRDIFF_MAX + k;
  huge_sizes[n_huge++] = (size_t)PTRDIFF_MAX - 4096;
  huge_sizes[n_huge++] = (size_t)PTRDIFF_MAX - (1 << 20);
  huge_sizes[n_huge++] = (size_t)1 << 62;
  huge_sizes[n_huge++] = ((size_t)1 << 62) + 1;
  huge_sizes[n_huge++] = (size_t)1 << 63;
  CHECK(n_huge <= sizeof huge_sizes / sizeof huge_sizes[0]);
}

#define EXPECT_FAIL(expr, want_errno, fmt, ...)                                                       \
  do {                                                                                               \
    errno = 0;                                                                                       \
    void *got_ = (expr);                                                                             \
    int err_ = errno;                                                                                \
    CHECK_MSG(got_ == NULL, "%s returned %p for " fmt, #expr, got_, __VA_ARGS__);                    \
    CHECK_MSG(err_ == (want_errno), "%s: errno %d, want %d, for " fmt, #expr, err_, (want_errno),    \
              __VA_ARGS__);                                                                          \
  } while (0)

static void test_huge_requests(void) {
  static const size_t aligns[] = {16, 64, 4096, 1 << 20};
  for (size_t i = 0; i < n_huge; i++) {
    volatile size_t vn = huge_sizes[i];
    size_t n = vn;
    EXPECT_FAIL(ta_malloc(n), ENOMEM, "size %zu", n);
    EXPECT_FAIL(ta_calloc(1, n), ENOMEM, "size %zu", n);
    EXPECT_FAIL(ta_calloc(n, 1), ENOMEM, "size %zu", n);
    EXPECT_FAIL(ta_realloc(NULL, n), ENOMEM, "size %zu", n);
    EXPECT_FAIL(ta_reallocarray(NULL, 1, n), ENOMEM, "size %zu", n);
    EXPECT_FAIL(ta_reallocarray(NULL, n, 1), ENOMEM, "size %zu", n);
    EXPECT_FAIL(ta_valloc(n), ENOMEM, "size %zu", n);
    EXPECT_FAIL(ta_pvalloc(n), ENOMEM, "size %zu", n);
    for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
      EXPECT_FAIL(ta_aligned_alloc(aligns[a], n), ENOMEM, "size %zu align %zu", n, aligns[a]);
      EXPECT_FAIL(ta_memalign(aligns[a], n), ENOMEM, "size %zu align %zu", n, aligns[a]);
      EXPECT_PM_FAIL(aligns[a], n, ENOMEM);
    }
  }
}

/* count * size overflows: both orders, including products that wrap to 0, 1 or 2. */
static const size_t overflow_pairs[][2] = {
    {SIZE_MAX / 2 + 1, 2},
    {SIZE_MAX, SIZE_MAX},
    {SIZE_MAX, 2},
    {(size_t)1 << 32, (size_t)1 << 32},
    {((size_t)1 << 32) + 1, ((size_t)1 << 32) - 1}, /* = 2^64 - 1: fits only as SIZE_MAX */
    {274177, 67280421310721},                       /* = 2^64 + 1: wraps to 1 */
    {3, SIZE_MAX / 3 + 1},                          /* = 2^64 + 2: wraps to 2 */
    {16, (SIZE_MAX >> 4) + 1},                      /* = 2^64: wraps to 0 */
    {(size_t)1 << 62, 4},
};
#define N_OVERFLOW (sizeof overflow_pairs / sizeof overflow_pairs[0])

static void test_array_overflow(void) {
  for (size_t i = 0; i < N_OVERFLOW; i++) {
    for (int order = 0; order < 2; order++) {
      volatile size_t va = overflow_pairs[i][order], vb = overflow_pairs[i][!order];
      size_t a = va, b = vb;
      EXPECT_FAIL(ta_calloc(a, b), ENOMEM, "(%zu, %zu)", a, b);
      EXPECT_FAIL(ta_reallocarray(NULL, a, b), ENOMEM, "(%zu, %zu)", a, b);
    }
  }
}

/* A failed realloc or reallocarray leaves the block where it was, whole, owned and freeable. */
static void test_failed_resize_keeps_block(void) {
  static const size_t sizes[] = {1, 100, 4096, 100 * 1024, 128 * 1024, 1 << 20, 3 << 20};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t n = sizes[s];
    unsigned char *p = ta_malloc(n);
    CHECK(p != NULL);
    size_t usable = ta_usable_size(p);
    tb_fill(p, n, s, SIZE_MAX);
    for (size_t i = 0; i < n_huge; i++) {
      volatile size_t vm = huge_sizes[i];
      size_t m = vm;
      EXPECT_FAIL(ta_realloc(p, m), ENOMEM, "block of %zu grown to %zu", n, m);
      EXPECT_FAIL(ta_reallocarray(p, 1, m), ENOMEM, "block of %zu grown to %zu", n, m);
      EXPECT_FAIL(ta_reallocarray(p, m, 1), ENOMEM, "block of %zu grown to %zu", n, m);
    }
    for (size_t i = 0; i < N_OVERFLOW; i++) {
      for (int order = 0; order < 2; order++) {
        volatile size_t va = overflow_pairs[i][order], vb = overflow_pairs[i][!order];
        size_t a = va, b = vb;
        EXPECT_FAIL(ta_reallocarray(p, a, b), ENOMEM, "block of %zu, (%zu, %zu)", n, a, b);
      }
    }
    CHECK(ta_owns(p) == 1);
    CHECK_EQ_SZ(ta_usable_size(p), usable);
    TB_CHECK(p, n, s, SIZE_MAX);
    /* Still an ordinary block: it grows, keeps its bytes, and frees. */
    unsigned char *q = ta_realloc(p, 2 * n);
    CHECK(q != NULL);
    TB_CHECK(q, n, s, SIZE_MAX);
    ta_free(q);
  }
}

/* Alignments that are not powers of two. aligned_alloc refuses 0 too; posix_memalign also refuses
 * powers of two below sizeof(void *) and returns the error rather than setting errno. */
static void test_bad_alignment(void) {
  static const size_t bad[] = {3, 5, 6, 7, 12, 24, 48, 80, 100, 4095, 4097, 12288, (1 << 20) + 16,
                               SIZE_MAX, SIZE_MAX - 15, (SIZE_MAX >> 1) + 16};
  static const size_t sizes[] = {0, 1, 64, 1000, 200 * 1024};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
      volatile size_t va = bad[i];
      size_t a = va, n = sizes[s];
      EXPECT_FAIL(ta_aligned_alloc(a, n), EINVAL, "align %zu size %zu", a, n);
      EXPECT_FAIL(ta_memalign(a, n), EINVAL, "align %zu size %zu", a, n);
    }
  }
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    volatile size_t vz = 0;
    EXPECT_FAIL(ta_aligned_alloc(vz, sizes[s]), EINVAL, "align 0 size %zu", sizes[s]);
  }

  static const size_t bad_pm[] = {0, 1, 2, 4, 3, 12, 24, 40, 48, 96, 4095, 4104, SIZE_MAX,
                                  (SIZE_MAX >> 1) + 8};
  for (size_t i = 0; i < sizeof bad_pm / sizeof bad_pm[0]; i++) {
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
      EXPECT_PM_FAIL(bad_pm[i], sizes[s], EINVAL);
    }
  }

  /* Valid powers of two too large to honour in a 64-bit address space. */
  static const size_t vast[] = {(size_t)1 << 48, (size_t)1 << 62, (SIZE_MAX >> 1) + 1};
  for (size_t i = 0; i < sizeof vast / sizeof vast[0]; i++) {
    volatile size_t va = vast[i];
    size_t a = va;
    errno = 0;
    void *p = ta_aligned_alloc(a, 1);
    int err = errno;
    CHECK_MSG(p == NULL && (err == ENOMEM || err == EINVAL), "ta_aligned_alloc(%zu, 1) = %p, errno %d",
              a, p, err);
    errno = 0;
    p = ta_memalign(a, 1);
    err = errno;
    CHECK_MSG(p == NULL && (err == ENOMEM || err == EINVAL), "ta_memalign(%zu, 1) = %p, errno %d", a, p,
              err);
    pm_result_t r = pm(a, 1);
    CHECK_MSG(r.rc == ENOMEM || r.rc == EINVAL, "ta_posix_memalign(%zu, 1) = %d", a, r.rc);
    EXPECT_PM_FAIL(a, 1, r.rc);
  }
}

/* The kernel refuses memory (the OS layer's hook fails every mapping, and the brk heap): posix_memalign
 * gives ENOMEM in its return value and in errno, both for a block on the mmap path and for one a new
 * thread's first arena segment would hold; success afterwards leaves errno as it was. */
static void *pm_fresh_arena(void *arg) {
  (void)arg;
  EXPECT_PM_FAIL(64, 100, ENOMEM);
  return NULL;
}

static void test_posix_memalign_refused(void) {
  static const size_t cases[][2] = {{4096, TB_MIB}, {TB_MIB, 100}, {64, 200 * TB_KIB}, {2 * TB_MIB, 5000}};
  /* A fixed threshold: blocks the earlier tests freed have raised the adaptive one, and the heap
   * could serve these sizes without asking the kernel. */
  CHECK(ta_mallopt(TA_OPT_MMAP_THRESHOLD, (long)TB_ROUTER_LINE) == 1);
  ta_os_inject_failure(TA_OS_MMAP, 1000000);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) EXPECT_PM_FAIL(cases[i][0], cases[i][1], ENOMEM);
  ta_os_inject_failure(TA_OS_BRK, 1000000);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, pm_fresh_arena, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  ta_os_inject_failure(TA_OS_MMAP, 0);
  ta_os_inject_failure(TA_OS_BRK, 0);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    pm_result_t r = pm(cases[i][0], cases[i][1]);
    CHECK_MSG(r.rc == 0 && r.p != NULL, "ta_posix_memalign(%zu, %zu) = %d once memory is back", cases[i][0],
              cases[i][1], r.rc);
    CHECK_MSG(r.err == PM_ERRNO_BEFORE, "a successful ta_posix_memalign changed errno to %d", r.err);
    CHECK_ALIGNED(r.p, cases[i][0]);
    ta_free(r.p);
  }
}

/* After all those failures the allocator still works. */
static void test_still_works(void) {
  void *p = ta_malloc(100), *q = ta_calloc(10, 10), *r = ta_aligned_alloc(4096, 5000);
  CHECK(p != NULL && q != NULL && r != NULL);
  CHECK(tb_first_nonzero(q, 100) == SIZE_MAX);
  ta_free(p);
  ta_free(q);
  ta_free(r);
}

int main(void) {
  make_huge_sizes();
  test_huge_requests();
  test_array_overflow();
  test_failed_resize_keeps_block();
  test_bad_alignment();
  test_posix_memalign_refused();
  test_still_works();
  return 0;
}
