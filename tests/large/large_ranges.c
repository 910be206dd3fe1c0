/* Kept page ranges (src/large.c): blocks between the largest class and the mmap threshold made of
 * the pages of freed ones, and realloc through each of the heap block's paths.
 *  - `paths`: every realloc path of a heap block (shrink in place, grow into the kept range after
 *    it, copy into a kept range, mremap, mremap with the new pages gathered from kept ranges) and a
 *    malloc gathered from several kept ranges, at 1 MiB + 1, threshold - 1 and the threshold. Each
 *    step checks the bytes kept, and the path by its traces: the pointer, the router's copy counter,
 *    the OS call counts, and page faults (a gathered block touched whole faults in next to nothing).
 *    Nothing stale: after each gather what was kept is no longer kept (it is the block's), and
 *    every block live at the end still holds its own pattern.
 *  - `spans`: a gathered block spans several kernel mappings, which mremap refuses whole (EFAULT);
 *    growing it past the threshold moves it piece by piece: contents kept, nothing copied; with the
 *    moves made to fail (injected) after the refusal, only the pages that could not move are copied.
 *  - `maps`: many alloc/free/realloc cycles of big blocks leave the process's kernel mapping count
 *    (lines of /proc/self/maps, read without allocating) bounded.
 * ta_* names only, so it runs in sanitizer builds too. */
#include <sys/resource.h>

#include "large_util.h"
#include "src/large.h"
#include "src/os.h"
#include "src/router.h"

#define THR (8 * MIB) /* the mmap threshold, fixed */

static void setup(void) {
  CHECK(ta_mallopt(TA_OPT_MMAP_THRESHOLD, (long)THR) == 1);
  CHECK(ta_mallopt(TA_OPT_TRIM_THRESHOLD, (long)(64 * MIB)) == 1);
  CHECK(ta_mallopt(TA_OPT_DECAY_MS, -1) == 1); /* kept ranges wait: the test decides */
  CHECK(ta_mallopt(TA_OPT_BACKGROUND_THREAD, 0) == 1);
}

/* Page faults taken so far; `few` of them for `bytes` touched: under a quarter of its pages, so that
 * AddressSanitizer's shadow pages (an eighth) fit but new pages faulted in one by one do not. Not
 * told under ThreadSanitizer, whose shadow (several times the memory touched) faults in too. */
static int few(long n, size_t bytes) {
#ifdef __SANITIZE_THREAD__
  (void)n, (void)bytes;
  return 1;
#else
  return n < (long)(bytes / 4096 / 4);
#endif
}
static long faults(void) {
  struct rusage ru;
  CHECK(getrusage(RUSAGE_SELF, &ru) == 0);
  return ru.ru_minflt;
}

/* Kernel mappings that [p, p + n) touches, and all of the process's (lines of /proc/self/maps). */
static size_t maps_in(const void *p, size_t n) {
  read_file("/proc/self/maps");
  size_t count = 0;
  uintptr_t lo = (uintptr_t)p, hi = lo + n;
  for (char *line = trim_buf; *line;) {
    char *eol = strchr(line, '\n');
    char *dash = strchr(line, '-');
    uintptr_t a = (uintptr_t)strtoull(line, NULL, 16), b = (uintptr_t)strtoull(dash + 1, NULL, 16);
    if (n == 0 || (a < hi && b > lo)) count++;
    if (!eol) break;
    line = eol + 1;
  }
  return count;
}

/* Nothing kept: every kept range unmapped. */
static void drop_kept(void) {
  ta_trim(0);
  CHECK_EQ_SZ(ta_large_cached_bytes(), 0);
}

typedef struct {
  unsigned char *p;
  size_t n;
  uint32_t tag;
} blk_t;

static blk_t blk_new(size_t n, uint32_t tag) {
  blk_t b = {ta_malloc(n), n, tag};
  CHECK(b.p != NULL);
  pat_fill(b.p, tag, 0, n);
  return b;
}
static void blk_ok(const blk_t *b, const char *what) {
  size_t bad = pat_check(b->p, b->tag, 0, b->n);
  CHECK_MSG(bad == b->n, "%s: block %p of %zu bytes: byte %zu lost", what, (void *)b->p, b->n, bad);
}

typedef struct {
  size_t copied;
  unsigned long remaps, maps;
  long faults;
} trace_t;
static trace_t trace_now(void) {
  return (trace_t){ta_router_realloc_copied(), ta_os_calls(TA_OS_MREMAP), ta_os_calls(TA_OS_MMAP), faults()};
}

/* b grows or shrinks to n bytes; the kept prefix is checked, then the whole block refilled. Returns
 * what the step cost. */
static trace_t step(blk_t *b, size_t n, const char *what) {
  trace_t t0 = trace_now();
  unsigned char *q = ta_realloc(b->p, n);
  trace_t t1 = trace_now();
  CHECK_MSG(q != NULL, "%s: realloc %zu -> %zu failed", what, b->n, n);
  size_t keep = n < b->n ? n : b->n, bad = pat_check(q, b->tag, 0, keep);
  CHECK_MSG(bad == keep, "%s: realloc %zu -> %zu: byte %zu lost", what, b->n, n, bad);
  trace_t d = {t1.copied - t0.copied, t1.remaps - t0.remaps, t1.maps - t0.maps, 0};
  t0 = trace_now();
  pat_fill(q, b->tag, keep, n); /* the new pages: resident already if they were kept ones */
  d.faults = faults() - t0.faults;
  b->p = q;
  b->n = n;
  return d;
}

/* Four kept ranges of n bytes each, not touching one another (a live block between each two),
 * the live ones appended to `live`. */
static void keep_apart(size_t n, blk_t *live, unsigned *nlive, uint32_t tag) {
  blk_t f[4];
  for (unsigned i = 0; i < 4; i++) {
    f[i] = blk_new(n, tag + 2 * i);
    live[(*nlive)++] = blk_new(MIB + 1, tag + 2 * i + 1);
  }
  for (unsigned i = 0; i < 4; i++) ta_free(f[i].p);
}

#define SMALL (MIB + 1) /* the smallest heap block */

static void paths(void) {
  setup();
  blk_t live[64];
  unsigned nlive = 0;
  uint32_t tag = 1;
  trace_t d;

  /* Shrink in place: thr-1 -> 1 MiB + 1, the tail kept; thr -> thr-1 too (the threshold block,
   * a mapping, shrinks below it into a heap block). */
  drop_kept();
  blk_t a = blk_new(THR - 1, tag++);
  unsigned char *was = a.p;
  d = step(&a, SMALL, "shrink in place");
  CHECK(a.p == was && d.copied == 0 && d.remaps == 0 && d.maps == 0);
  CHECK(ta_large_cached_bytes() >= THR - 2 * MIB);
  /* Grow into the kept range right after it (the tail it just left): no system call, no fault. */
  d = step(&a, THR - 1, "grow into the next range");
  CHECK_MSG(a.p == was && d.copied == 0 && d.remaps == 0 && d.maps == 0 && few(d.faults, THR - MIB),
            "grow in place: moved %d, copied %zu, %lu mremaps, %lu mmaps, %ld faults", a.p != was, d.copied,
            d.remaps, d.maps, d.faults);
  CHECK_EQ_SZ(ta_large_cached_bytes(), 0);
  blk_t t = blk_new(THR, tag++);
  was = t.p;
  d = step(&t, THR - 1, "threshold shrinks in place");
  CHECK(t.p == was && d.copied == 0 && d.remaps == 0);
  live[nlive++] = a;
  live[nlive++] = t;

  /* Copy: 1 MiB + 1 grows to thr - 8 KiB, a live block right after it, a kept range that fits
   * elsewhere; the copy (1 MiB) is less than 4 times what it would fault in. (Not to thr - 1: a
   * block of thr - 1 bytes has more than thr usable once rounded to pages, and a free cannot tell it
   * from one of thr bytes, which is unmapped: it keeps nothing to copy into.) */
  drop_kept();
  blk_t k = blk_new(THR - 8 * KIB, tag++);
  /* c: one of two blocks whose mapping does not end where k's starts (the kernel places mappings
   * as it likes; at most one of them ends there), the other stays live. */
  blk_t c = blk_new(SMALL, tag++), other = blk_new(SMALL, tag++);
  if (c.p - 16 + MIB + 4 * KIB == k.p - 16) {
    blk_t swap = c;
    c = other;
    other = swap;
  }
  live[nlive++] = other;
  unsigned char *kept_at = k.p;
  ta_free(k.p);
  d = step(&c, THR - 8 * KIB, "copy into a kept range");
  CHECK_MSG(c.p == kept_at && d.copied >= SMALL && d.remaps == 0 && d.maps == 0 && few(d.faults, THR - 2 * MIB),
            "copy: at the kept range %d, copied %zu, %lu mremaps, %lu mmaps, %ld faults", c.p == kept_at, d.copied,
            d.remaps, d.maps, d.faults);
  live[nlive++] = c;

  /* mremap: nothing kept, 1 MiB + 1 grows to thr - 1, and to the threshold. */
  drop_kept();
  blk_t m = blk_new(SMALL, tag++);
  d = step(&m, THR - 1, "mremap grow");
  CHECK_MSG(d.copied == 0 && d.remaps == 1, "mremap grow: copied %zu, %lu mremaps", d.copied, d.remaps);
  /* thr - 1 and thr fill the same pages: nothing to do. */
  was = m.p;
  d = step(&m, THR, "to the threshold");
  CHECK(m.p == was && d.copied == 0 && d.remaps == 0);
  d = step(&m, 2 * THR, "mremap past the threshold");
  CHECK_MSG(d.copied == 0 && d.remaps == 1, "mremap past the threshold: copied %zu, %lu mremaps", d.copied, d.remaps);
  live[nlive++] = m;

  /* mremap whose new pages are gathered: 6 MiB grows to thr - 1 (too much to copy), four kept
   * ranges of 1 MiB + 1 elsewhere, none after it. The 2 MiB it grows by are theirs: resident. */
  drop_kept();
  blk_t g = blk_new(6 * MIB, tag++);
  live[nlive++] = blk_new(SMALL, tag++); /* guard */
  keep_apart(SMALL, live, &nlive, tag);
  tag += 8;
  size_t kept = ta_large_cached_bytes();
  d = step(&g, THR - 1, "mremap, the new pages gathered");
  CHECK_MSG(d.copied == 0 && d.remaps >= 3 && few(d.faults, 2 * MIB),
            "gathered grow: copied %zu, %lu mremaps, %ld faults", d.copied, d.remaps, d.faults);
  CHECK_MSG(ta_large_cached_bytes() < kept, "nothing was gathered (%zu kept)", kept);
  live[nlive++] = g;

  /* malloc gathered from four kept ranges: thr - 1 from four of 2 MiB + 4 KiB, the first grown to
   * the size by mremap, the others' pages moved into it (no mmap). All of them are the new block's
   * now (none kept), and touching it whole faults in next to nothing. */
  drop_kept();
  keep_apart(2 * MIB + 4 * KIB, live, &nlive, tag);
  tag += 8;
  trace_t t0 = trace_now();
  blk_t n = blk_new(THR - 1, tag++);
  d = (trace_t){0, ta_os_calls(TA_OS_MREMAP) - t0.remaps, ta_os_calls(TA_OS_MMAP) - t0.maps, faults() - t0.faults};
  CHECK_MSG(d.remaps >= 2 && d.remaps <= 4 && d.maps == 0 && few(d.faults, THR),
            "gathered malloc: %lu mremaps, %lu mmaps, %ld faults", d.remaps, d.maps, d.faults);
  CHECK_EQ_SZ(ta_large_cached_bytes(), 0);
  live[nlive++] = n;
  /* calloc gathered the same way reads as zero: the moved pages are no fresh ones. */
  keep_apart(2 * MIB + 4 * KIB, live, &nlive, tag);
  tag += 8;
  unsigned char *z = ta_calloc(1, THR - 1);
  CHECK(z != NULL);
  for (size_t i = 0; i < THR - 1; i++) CHECK_MSG(z[i] == 0, "calloc gathered: byte %zu is %u", i, z[i]);
  CHECK_EQ_SZ(ta_large_cached_bytes(), 0);
  ta_free(z);

  /* Every block still its own: no kept page was handed out twice. */
  for (unsigned i = 0; i < nlive; i++) blk_ok(&live[i], "at the end");
  /* And they keep their patterns through shrinking each to the smallest heap block and freeing. */
  for (unsigned i = 0; i < nlive; i++) {
    step(&live[i], SMALL, "shrink at the end");
    for (unsigned j = i + 1; j < nlive; j++) CHECK(pat_check(live[j].p, live[j].tag, 0, 64) == 64);
    ta_free(live[i].p);
  }
  printf("paths: %u blocks checked\n", nlive);
}

/* A block gathered from four kept ranges: several kernel mappings (the kernel may merge some). */
static blk_t gathered(blk_t *live, unsigned *nlive, uint32_t tag) {
  drop_kept();
  keep_apart(2 * MIB + 4 * KIB, live, nlive, tag);
  blk_t b = blk_new(THR - 1, tag + 8);
  size_t spans = maps_in(b.p - 16, THR);
  CHECK_MSG(spans >= 2, "a gathered block spans %zu kernel mappings", spans);
  return b;
}

static void spans(void) {
  setup();
  blk_t live[64];
  unsigned nlive = 0;
  /* mremap refuses to resize it (EFAULT): its pages move to a fresh mapping (at once where the
   * kernel moves several mappings in one call, as Linux 6.17 and later do; else piece by piece),
   * nothing copied. */
  blk_t b = gathered(live, &nlive, 100);
  trace_t d = step(&b, THR + MIB, "past the threshold, moved piece by piece");
  CHECK_MSG(d.copied == 0 && d.remaps >= 2 && d.maps == 1, "piece by piece: copied %zu, %lu mremaps, %lu mmaps",
            d.copied, d.remaps, d.maps);
  blk_ok(&b, "after the move");
  ta_free(b.p);
  /* The same with the moves failing (injected) after the kernel's refusal: the pages that could not
   * move are copied, no more. */
  for (long fail = 1; fail <= 64; fail *= 4) {
    b = gathered(live, &nlive, 200 + (uint32_t)fail * 16);
    ta_os_inject_failure_after(TA_OS_MREMAP, 1, fail);
    d = step(&b, THR + MIB, "piece by piece, some moves failing");
    ta_os_inject_failure(TA_OS_MREMAP, 0);
    CHECK_MSG(d.copied <= (size_t)fail * TA_PAGE, "%ld moves failed, %zu bytes copied", fail, d.copied);
    /* 16 failures reach a single page (halving 2049 pages takes 12 calls): it is copied. */
    CHECK_MSG(fail < 16 || d.copied >= TA_PAGE, "%ld moves failed, %zu bytes copied", fail, d.copied);
    blk_ok(&b, "after the move");
    ta_free(b.p);
  }
  printf("spans: checked\n");
}

/* Random heap blocks (1 MiB + 1 .. thr + 1 MiB) allocated, freed and reallocated: the kernel mapping
 * count stays within a bound the live blocks and kept ranges explain (each at most a few
 * mappings), not one that grows with the cycles. */
static void maps(void) {
  setup();
  enum { SLOTS = 24 };
  blk_t s[SLOTS] = {0};
  test_rng_t r = {42};
  size_t base = maps_in(NULL, 0), most = base;
  long cycles = test_scale(20000);
  for (long c = 0; c < cycles; c++) {
    blk_t *b = &s[test_rng_next(&r) % SLOTS];
    size_t n = SMALL + test_rng_next(&r) % (THR + MIB - SMALL);
    unsigned op = (unsigned)(test_rng_next(&r) % 3);
    if (b->p == NULL) {
      *b = (blk_t){ta_malloc(n), n, (uint32_t)c};
      CHECK(b->p != NULL);
      pat_sparse_fill(b->p, b->tag, n);
    } else if (op == 0) {
      CHECK(pat_sparse_ok(b->p, b->tag, b->n));
      ta_free(b->p);
      b->p = NULL;
    } else {
      CHECK(pat_sparse_ok(b->p, b->tag, b->n));
      b->p = ta_realloc(b->p, n);
      CHECK(b->p != NULL);
      b->n = n;
      pat_sparse_fill(b->p, b->tag, n);
    }
    if (c % 64 == 0) {
      size_t now = maps_in(NULL, 0);
      if (now > most) most = now;
    }
  }
  /* 24 live blocks and 16 kept ranges: a few mappings each is ~100; growth with the cycles would
   * pass it by far. */
  CHECK_MSG(most <= base + 160, "kernel mappings: %zu at the start, %zu at most", base, most);
  for (unsigned i = 0; i < SLOTS; i++) ta_free(s[i].p);
  printf("maps: %ld cycles, %zu mappings at the start, %zu at most\n", cycles, base, most);
}

int main(int argc, char **argv) {
  return TEST_RUN_MODES(argc, argv, {"paths", paths}, {"spans", spans}, {"maps", maps});
}
