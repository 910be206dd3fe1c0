/* Aligned allocation, through ta_*: aligned_alloc, memalign and posix_memalign for every power of two
 * from 1 (8 for posix_memalign) to 64 MiB, with sizes around the alignment and around the 128 KiB
 * router line; valloc and pvalloc page alignment and pvalloc's rounding. Each block: aligned, usable
 * size >= requested, all of it writable, disjoint from the others, freed. */
#include "blocks.h"

#include <errno.h>
#include <unistd.h>

#define MAX_ALIGN ((size_t)64 << 20)
#define MAX_SIZE ((size_t)48 << 20) /* 3 * align is tried while it stays below this */
#define FULL_LIMIT TB_MIB

enum fn { FN_ALIGNED_ALLOC, FN_MEMALIGN, FN_POSIX_MEMALIGN, FN_COUNT };
static const char *const fn_name[FN_COUNT] = {"ta_aligned_alloc", "ta_memalign", "ta_posix_memalign"};

static void *alloc_aligned(enum fn f, size_t align, size_t n) {
  switch (f) {
  case FN_ALIGNED_ALLOC: return ta_aligned_alloc(align, n);
  case FN_MEMALIGN: return ta_memalign(align, n);
  default: {
    void *p = (void *)(uintptr_t)0xdead0;
    int rc = ta_posix_memalign(&p, align, n);
    CHECK_MSG(rc == 0, "ta_posix_memalign(%zu, %zu) = %d", align, n, rc);
    return p;
  }
  }
}

static size_t add_size(size_t *sizes, size_t count, size_t n) {
  for (size_t i = 0; i < count; i++)
    if (sizes[i] == n) return count;
  sizes[count] = n;
  return count + 1;
}

static void test_alignments(void) {
  enum { MAXS = 16 };
  uint64_t id = 1;
  for (int f = 0; f < FN_COUNT; f++) {
    size_t first = f == FN_POSIX_MEMALIGN ? sizeof(void *) : 1;
    for (size_t a = first; a <= MAX_ALIGN; a *= 2) {
      size_t sizes[MAXS], ns = 0;
      ns = add_size(sizes, ns, 0);
      ns = add_size(sizes, ns, 1);
      ns = add_size(sizes, ns, 100);
      if (a > 1) ns = add_size(sizes, ns, a - 1);
      ns = add_size(sizes, ns, a);
      ns = add_size(sizes, ns, a + 1);
      if (3 * a <= MAX_SIZE) ns = add_size(sizes, ns, 3 * a);
      if (a <= TB_MIB) {
        ns = add_size(sizes, ns, TB_ROUTER_LINE - 1);
        ns = add_size(sizes, ns, TB_ROUTER_LINE);
        ns = add_size(sizes, ns, TB_ROUTER_LINE + 1);
      }
      void *ps[MAXS];
      tb_span_t spans[MAXS];
      uint64_t ids[MAXS];
      size_t want = a < 16 ? 16 : a;
      for (size_t i = 0; i < ns; i++) {
        size_t n = sizes[i];
        errno = 0;
        ps[i] = alloc_aligned((enum fn)f, a, n);
        CHECK_MSG(ps[i] != NULL, "%s(%zu, %zu) returned NULL, errno %d", fn_name[f], a, n, errno);
        CHECK_MSG(((uintptr_t)ps[i] & (want - 1)) == 0, "%s(%zu, %zu) = %p: not aligned to %zu",
                  fn_name[f], a, n, ps[i], want);
        CHECK_MSG(ta_owns(ps[i]) == 1, "%s(%zu, %zu) = %p: not owned", fn_name[f], a, n, ps[i]);
        size_t u = ta_usable_size(ps[i]);
        CHECK_MSG(u >= n, "%s(%zu, %zu): usable size %zu", fn_name[f], a, n, u);
        spans[i].start = (uintptr_t)ps[i];
        spans[i].len = u;
        ids[i] = id++;
        tb_fill(ps[i], u, ids[i], FULL_LIMIT);
      }
      for (size_t i = 0; i < ns; i++) TB_CHECK(ps[i], spans[i].len, ids[i], FULL_LIMIT);
      tb_span_t sorted[MAXS];
      memcpy(sorted, spans, sizeof(tb_span_t) * ns);
      tb_check_disjoint(sorted, ns);
      for (size_t i = 0; i < ns; i++) {
        if (f == FN_ALIGNED_ALLOC && i % 2 == 1) ta_free_aligned_sized(ps[i], a, sizes[i]);
        else ta_free(ps[i]);
      }
    }
  }
}

/* Many small aligned blocks live at once, mixed with plain ones: the aligned ones must not be carved
 * out of each other or of their neighbours. */
static void test_many_aligned(uint64_t seed) {
  enum { N = 4000 };
  static void *ps[N];
  static size_t ns[N];
  static tb_span_t spans[N];
  test_rng_t r = {seed};
  for (size_t i = 0; i < N; i++) {
    size_t a = (size_t)16 << test_rng_below(&r, 13); /* 16 .. 64 KiB */
    size_t n = tb_log_uniform(&r, 0, 17);
    if (test_rng_below(&r, 4) == 0) {
      ps[i] = ta_malloc(n);
      a = 16;
    } else {
      ps[i] = ta_aligned_alloc(a, n);
    }
    CHECK_MSG(ps[i] != NULL, "allocation #%zu (align %zu, size %zu) failed", i, a, n);
    CHECK_ALIGNED(ps[i], a);
    ns[i] = n;
    CHECK(ta_usable_size(ps[i]) >= n);
    tb_fill(ps[i], n, i, FULL_LIMIT);
  }
  for (size_t i = 0; i < N; i++) {
    TB_CHECK(ps[i], ns[i], i, FULL_LIMIT);
    spans[i].start = (uintptr_t)ps[i];
    spans[i].len = ta_usable_size(ps[i]);
  }
  tb_check_disjoint(spans, N);
  for (size_t i = 0; i < N; i++) ta_free(ps[i]);
}

/* valloc: page-aligned. pvalloc: page-aligned and the size rounded up to whole pages (at least one). */
static void test_valloc_pvalloc(void) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t sizes[] = {0,           1,     page - 1, page, page + 1, 3 * page - 1, 100000,
                          TB_ROUTER_LINE - 1, TB_ROUTER_LINE, TB_ROUTER_LINE + 1, TB_MIB + 1};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    unsigned char *v = ta_valloc(n);
    CHECK_MSG(v != NULL, "ta_valloc(%zu) returned NULL", n);
    CHECK_MSG(((uintptr_t)v & (page - 1)) == 0, "ta_valloc(%zu) = %p: not page-aligned", n, (void *)v);
    size_t uv = ta_usable_size(v);
    CHECK_MSG(uv >= n, "ta_valloc(%zu): usable %zu", n, uv);
    memset(v, 0x11, uv);

    size_t rounded = n == 0 ? page : (n + page - 1) / page * page;
    unsigned char *pv = ta_pvalloc(n);
    CHECK_MSG(pv != NULL, "ta_pvalloc(%zu) returned NULL", n);
    CHECK_MSG(((uintptr_t)pv & (page - 1)) == 0, "ta_pvalloc(%zu) = %p: not page-aligned", n, (void *)pv);
    size_t upv = ta_usable_size(pv);
    CHECK_MSG(upv >= rounded, "ta_pvalloc(%zu): usable %zu < %zu (the size rounded to pages)", n, upv,
              rounded);
    memset(pv, 0x22, upv);

    CHECK((uintptr_t)pv + upv <= (uintptr_t)v || (uintptr_t)v + uv <= (uintptr_t)pv);
    for (size_t k = 0; k < uv; k += 512) CHECK(v[k] == 0x11);
    ta_free(v);
    ta_free(pv);
  }
}

int main(void) {
  uint64_t seed = test_seed(0xa119e5ull);
  test_alignments();
  test_many_aligned(seed);
  test_valloc_pvalloc();
  return 0;
}
