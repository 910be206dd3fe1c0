/* realloc in place by a change of the span's class (arenas/resize.c): a block alone in its span
 * grows into the free units right after it and shrinks by giving units back, without a copy.
 *  classes  one block walked up through every class from 8 KiB to 1 MiB (at the class's first byte
 *           and its last) and down again in jumps of five classes: never moved, never copied,
 *           contents kept, the units it took and gave back in the segment's masks, pointers into
 *           its units other than its start rejected, the whole-heap validator passing at each step;
 *  cycle    a buffer doubled from 64 B to 1 MiB, freed, five times: after the first cycle only the
 *           steps up to TA_CARVE_BYTES / 2 copy (64 + 128 + ... + 2048 bytes a cycle with 4 KiB),
 *           and the later ones none;
 *  blocked  growth that needs a unit held by a live span, and of a block that shares its span,
 *           falls back to a copy, contents kept;
 *  thread   a block of another thread's arena is copied, while the owner's own is resized in place;
 *  death_*  double free and invalid pointers after an in-place growth or shrink (forked children,
 *           tests/misuse/death.h).
 * Each case first checks that the resize was in place, so each fails where realloc copies. */
#include <pthread.h>

#include "large_util.h"
#include "misuse/death.h"
#include "arenas/page.h"
#include "arenas/segment.h"
#include "arenas/sizeclass.h"
#include "src/router.h"

/* 64 + 128 + ... + TA_CARVE_BYTES / 2: a block of a class carved with others is copied. */
#define SMALL_COPIES ((size_t)TA_CARVE_BYTES - 64)

static void set_threshold(size_t t) { CHECK(ta_mallopt(TA_OPT_MMAP_THRESHOLD, (long)t) == 1); }

static unsigned unit_of(const void *p) { return (unsigned)(((uintptr_t)p >> TA_UNIT_SHIFT) & (TA_UNITS - 1)); }
static int unit_free(const void *p, unsigned u) { return (int)((ta_seg_of(p)->free_units >> u) & 1); }

/* realloc that must stay in place: same pointer, nothing copied, the block now of n's class, the
 * kept bytes intact, the rest filled with the pattern; the heap valid after. */
static unsigned char *in_place(unsigned char *p, size_t cur, size_t n, uint32_t tag) {
  size_t c0 = ta_router_realloc_copied();
  unsigned char *q = ta_realloc(p, n);
  CHECK_MSG(q == p, "realloc %zu -> %zu moved the block", cur, n);
  CHECK_MSG(ta_router_realloc_copied() == c0, "realloc %zu -> %zu copied", cur, n);
  CHECK_EQ_SZ(ta_usable_size(q), ta_class_size(ta_class_of(n)));
  size_t keep = cur < n ? cur : n;
  CHECK_MSG(pat_check(q, tag, 0, keep) == keep, "realloc %zu -> %zu lost contents", cur, n);
  pat_fill(q, tag, keep, n);
  ta_validate();
  return q;
}

/* The span of a block of n bytes at p: its units all in use, pointers into them other than p not
 * blocks; the 15 units after it free (nothing else lives there in this test). */
static void span_checked(unsigned char *p, size_t n) {
  size_t bytes = ta_usable_size(p);
  const ta_page_t *page = ta_seg_page_of(ta_seg_of(p), p);
  unsigned head = unit_of(p), units = page->units;
  CHECK(page->start == (uintptr_t)p && (size_t)units * TA_UNIT_SIZE >= bytes && page->capacity == 1);
  CHECK(ta_owns(p));
  for (unsigned u = head; u < head + units; u++) CHECK_MSG(!unit_free(p, u), "unit %u of a live span is free", u);
  for (unsigned u = head + units; u < head + TA_SPAN_MAX_UNITS && u < TA_UNITS; u++)
    CHECK_MSG(unit_free(p, u), "unit %u after a %zu-byte block is not free", u, n);
  for (size_t off = TA_UNIT_SIZE; off < bytes; off += TA_UNIT_SIZE) CHECK(!ta_owns(p + off));
  CHECK(!ta_owns(p + 16));
}

static void classes(void) {
  set_threshold(32 * MIB); /* every class from the bins */
  uint32_t tag = 11;
  size_t cur = 8 * KIB;
  unsigned char *p = ta_malloc(cur);
  CHECK(p != NULL && unit_of(p) + TA_SPAN_MAX_UNITS <= TA_UNITS);
  pat_fill(p, tag, 0, cur);
  unsigned steps = 0;
  for (unsigned c = ta_class_of(cur) + 1; c < TA_CLASSES; c++) {
    size_t sizes[2] = {ta_class_size(c - 1) + 1, ta_class_size(c)};
    for (int k = 0; k < 2; k++) {
      p = in_place(p, cur, sizes[k], tag);
      cur = sizes[k];
      span_checked(p, cur);
      steps++;
    }
  }
  CHECK_EQ_SZ(cur, MIB);
  for (int c = TA_CLASSES - 1 - 5; c >= (int)ta_class_of(8 * KIB); c -= 5) {
    size_t n = ta_class_size((unsigned)c) - 100;
    p = in_place(p, cur, n, tag);
    cur = n;
    span_checked(p, cur);
    steps++;
  }
  p = in_place(p, cur, 5000, tag); /* the smallest class that is carved alone */
  ta_free(p);
  ta_validate();
  printf("classes: %u in-place steps\n", steps);
}

/* One doubling cycle from `from` bytes to 1 MiB, a mark at each end: returns the bytes copied. */
static unsigned char mark(size_t n) { return (unsigned char)(0x40 + __builtin_ctzll(n)); }
static size_t double_cycle(size_t from) {
  size_t c0 = ta_router_realloc_copied();
  unsigned char *p = ta_malloc(from);
  CHECK(p != NULL);
  p[0] = 0x5a;
  p[from - 1] = mark(from);
  for (size_t n = from * 2; n <= MIB; n *= 2) {
    p = ta_realloc(p, n);
    CHECK(p != NULL && p[0] == 0x5a && p[n / 2 - 1] == mark(n / 2));
    p[n - 1] = mark(n);
    ta_validate();
  }
  ta_free(p);
  ta_validate();
  return ta_router_realloc_copied() - c0;
}

static void cycle(void) {
  /* The adaptive threshold: the first cycle's blocks from 128 KiB are mappings, whose free raises it
   * above 1 MiB, so the later cycles run in the bins. */
  size_t first = double_cycle(64);
  for (int i = 2; i <= 5; i++) {
    size_t c = double_cycle(64);
    fprintf(stderr, "cycle %d from 64 B: %zu bytes copied (first: %zu)\n", i, c, first);
    CHECK_MSG(c == SMALL_COPIES, "cycle %d copied %zu bytes, want %zu (only the shared-span classes)", i, c, SMALL_COPIES);
  }
  for (int i = 1; i <= 3; i++) CHECK_EQ_SZ(double_cycle(8 * KIB), 0);
  printf("cycle: the copies of the shared-span classes only\n");
}

/* realloc that must copy: a new block, exactly what is kept copied, contents intact. */
static unsigned char *moved(unsigned char *p, size_t cur, size_t n, uint32_t tag) {
  size_t c0 = ta_router_realloc_copied();
  size_t usable = ta_usable_size(p);
  unsigned char *q = ta_realloc(p, n);
  CHECK_MSG(q != NULL && q != p, "realloc %zu -> %zu did not move", cur, n);
  CHECK_EQ_SZ(ta_router_realloc_copied() - c0, usable < n ? usable : n);
  size_t keep = cur < n ? cur : n;
  CHECK(pat_check(q, tag, 0, keep) == keep);
  pat_fill(q, tag, keep, n);
  ta_validate();
  return q;
}

static void blocked(void) {
  set_threshold(32 * MIB);
  uint32_t tag = 23;
  /* a at unit h, x at h + 1, y at h + 2 (a 64 KiB block is a span of its own). */
  unsigned char *a = ta_malloc(8 * KIB), *x = ta_malloc(64 * KIB), *y = ta_malloc(64 * KIB);
  unsigned char *h = a;
  CHECK_MSG(x == a + 64 * KIB && y == a + 128 * KIB, "layout: a %p x %p y %p", (void *)a, (void *)x, (void *)y);
  pat_fill(a, tag, 0, 8 * KIB);
  a = in_place(a, 8 * KIB, 32 * KIB, tag);     /* one unit still */
  a = moved(a, 32 * KIB, 40 * KIB, tag);       /* 40 KiB needs 2 units: unit h + 1 is x's */
  ta_free(a);
  ta_free(x);
  ta_validate();
  /* Unit h + 1 free now, h + 2 still y's. */
  unsigned char *c = ta_malloc(8 * KIB);
  CHECK_MSG(c == h, "layout: %p, want %p", (void *)c, (void *)h);
  pat_fill(c, tag, 0, 8 * KIB);
  c = in_place(c, 8 * KIB, 100 * KIB, tag);    /* 2 units */
  c = moved(c, 100 * KIB, 200 * KIB, tag);     /* 4 units: h + 2 is y's */
  ta_free(c);
  ta_free(y);
  ta_validate();
  /* Two blocks of one span: neither is alone, so the span keeps its class. */
  unsigned char *b = ta_malloc(6 * KIB), *d = ta_malloc(6 * KIB);
  CHECK(unit_of(b) == unit_of(d));
  pat_fill(b, tag + 1, 0, 6 * KIB);
  b = moved(b, 6 * KIB, 16 * KIB, tag + 1);
  b = in_place(b, 16 * KIB, 32 * KIB, tag + 1); /* alone in its new span: that one changes class */
  ta_free(b);
  ta_free(d);
  ta_validate();
  printf("blocked: copies where the span cannot grow\n");
}

static unsigned char *handed;
static pthread_barrier_t bar;

static void *owner(void *arg) {
  (void)arg;
  unsigned char *own = ta_malloc(8 * KIB);
  pat_fill(own, 41, 0, 8 * KIB);
  own = in_place(own, 8 * KIB, 32 * KIB, 41); /* the owner's own block: in place */
  handed = ta_malloc(20 * KIB);
  pat_fill(handed, 42, 0, 20 * KIB);
  pthread_barrier_wait(&bar); /* main reallocs `handed` while this thread lives */
  pthread_barrier_wait(&bar);
  ta_free(own);
  handed = ta_malloc(20 * KIB);
  pat_fill(handed, 43, 0, 20 * KIB);
  return NULL; /* this arena goes to the pool, `handed` in it */
}

static void thread(void) {
  set_threshold(32 * MIB);
  ta_free(ta_malloc(100)); /* this thread's arena */
  pthread_t t;
  CHECK(pthread_barrier_init(&bar, NULL, 2) == 0);
  CHECK(pthread_create(&t, NULL, owner, NULL) == 0);
  pthread_barrier_wait(&bar);
  unsigned char *q = moved(handed, 20 * KIB, 32 * KIB, 42);
  pthread_barrier_wait(&bar);
  CHECK(pthread_join(t, NULL) == 0);
  unsigned char *r = moved(handed, 20 * KIB, 32 * KIB, 43); /* a pooled arena's block */
  ta_free(q);
  ta_free(r);
  ta_validate();
  printf("thread: other arenas' blocks copied\n");
}

/* Death cases: the resize must have been in place, then the misuse aborts with the right word. */
static unsigned char *grown(size_t n) {
  set_threshold(32 * MIB);
  unsigned char *p = ta_malloc(8 * KIB);
  CHECK(ta_realloc(p, n) == p);
  return p;
}
static void df_after_grow(void) {
  unsigned char *p = grown(MIB);
  ta_free(p);
  death_expect_ptr(p);
  ta_free(hide(p));
}
static void df_after_shrink(void) {
  unsigned char *p = grown(MIB);
  CHECK(ta_realloc(p, 10 * KIB) == p && ta_usable_size(p) == 10 * KIB);
  ta_free(p);
  death_expect_ptr(p);
  ta_free(hide(p));
}
static void realloc_after_grow_free(void) {
  unsigned char *p = grown(256 * KIB);
  ta_free(p);
  death_expect_ptr(p);
  CHECK(ta_realloc(hide(p), 512 * KIB) != NULL);
}
/* Inside the units the block took: no block. */
static void invalid_grown_interior(void) {
  unsigned char *p = grown(256 * KIB);
  death_expect_ptr(p + 64 * KIB);
  ta_free(hide(p + 64 * KIB));
}
/* Inside the units the block gave back: no block either. */
static void invalid_shrunk_tail(void) {
  unsigned char *p = grown(MIB);
  CHECK(ta_realloc(p, 16 * KIB) == p);
  death_expect_ptr(p + 512 * KIB);
  ta_free(hide(p + 512 * KIB));
}

typedef struct {
  const char *name;
  void (*body)(void);
  const char *want;
} death_case_t;
static const death_case_t deaths[] = {
    {"death_df_after_grow", df_after_grow, "tamalloc: free(): double free "},
    {"death_df_after_shrink", df_after_shrink, "tamalloc: free(): double free "},
    {"death_realloc_after_grow_free", realloc_after_grow_free, "tamalloc: realloc(): double free "},
    {"death_invalid_grown_interior", invalid_grown_interior, "tamalloc: free(): invalid pointer "},
    {"death_invalid_shrunk_tail", invalid_shrunk_tail, "tamalloc: free(): invalid pointer "},
};

int main(int argc, char **argv) {
  for (size_t i = 0; argc > 1 && i < sizeof deaths / sizeof deaths[0]; i++)
    if (strcmp(argv[1], deaths[i].name) == 0) return death_run(deaths[i].name, deaths[i].body, DEATH_LINE, deaths[i].want) != 0;
  return TEST_RUN_MODES(argc, argv, {"classes", classes}, {"cycle", cycle}, {"blocked", blocked}, {"thread", thread});
}
