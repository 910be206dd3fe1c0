/* Kernel refusals, faked through the OS layer's hook (src/os.h: ta_os_inject_failure): mmap failing
 * for a large block or a new segment must give NULL and ENOMEM; brk failing must not stop small
 * allocations (the arena goes on with mmap segments); munmap failing must not change errno in free;
 * and whatever fails when, no byte may be handed out twice.
 * Usage: oom_inject CASE, CASE one of the names in main(). */
#include <pthread.h>
#include <stdatomic.h>

#include "oom.h"
#include "src/os.h"

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

static void clear_injection(void) {
  for (int k = 0; k < TA_OS_KINDS; k++) ta_os_inject_failure((ta_os_kind_t)k, 0);
}

/* Expect one call to fail with NULL and ENOMEM while `kind` fails, and the hook to have been hit. */
#define EXPECT_ENOMEM(kind, expr)                                                                    \
  do {                                                                                               \
    unsigned long calls_ = ta_os_calls(kind);                                                        \
    ta_os_inject_failure(kind, 1000);                                                                \
    errno = 0;                                                                                       \
    void *got_ = (expr);                                                                             \
    int err_ = errno;                                                                                \
    clear_injection();                                                                               \
    CHECK_MSG(got_ == NULL, "%s gave %p while %s failed", #expr, got_, #kind);                       \
    CHECK_MSG(err_ == ENOMEM, "%s: errno %d, want ENOMEM", #expr, err_);                            \
    CHECK_MSG(ta_os_calls(kind) > calls_, "%s never asked the OS (%s)", #expr, #kind);               \
  } while (0)

/* mmap refused: every way to ask for a large block fails cleanly, and works again afterwards. */
static void mmap_large(void) {
  void *warm = TN(malloc)(MIB); /* the large-block registry exists from here on */
  CHECK(warm != NULL);
  EXPECT_ENOMEM(TA_OS_MMAP, TN(malloc)(MIB));
  EXPECT_ENOMEM(TA_OS_MMAP, TN(malloc)(200 * KIB));
  EXPECT_ENOMEM(TA_OS_MMAP, TN(calloc)(1, MIB));
  EXPECT_ENOMEM(TA_OS_MMAP, TN(calloc)(1024, 1024));
  EXPECT_ENOMEM(TA_OS_MMAP, TN(aligned_alloc)(4096, MIB));
  EXPECT_ENOMEM(TA_OS_MMAP, TN(aligned_alloc)(MIB, 100)); /* alignment beyond the bins */
  EXPECT_ENOMEM(TA_OS_MMAP, TN(memalign)(2 * MIB, 5000));
  EXPECT_ENOMEM(TA_OS_MMAP, TN(valloc)(MIB));
  EXPECT_ENOMEM(TA_OS_MMAP, TN(pvalloc)(MIB));
  {
    void *sentinel = &sentinel, *m = sentinel;
    ta_os_inject_failure(TA_OS_MMAP, 1000);
    int rc = TN(posix_memalign)(&m, 4096, MIB);
    clear_injection();
    CHECK_MSG(rc == ENOMEM && m == sentinel, "posix_memalign under mmap failure: rc %d, *memptr %p", rc, m);
  }
  /* realloc: growing small -> large needs a mapping; growing a large one needs mremap. A failure
   * leaves the old block whole. */
  unsigned char *s = TN(malloc)(1000);
  CHECK(s != NULL);
  memset(s, 0x11, 1000);
  EXPECT_ENOMEM(TA_OS_MMAP, TN(realloc)(s, 4 * MIB));
  for (int i = 0; i < 1000; i++) CHECK(s[i] == 0x11);
  unsigned char *l = TN(malloc)(MIB);
  CHECK(l != NULL);
  memset(l, 0x22, MIB);
  EXPECT_ENOMEM(TA_OS_MREMAP, TN(realloc)(l, 8 * MIB));
  for (size_t i = 0; i < MIB; i++) CHECK(l[i] == 0x22);
  /* The failures left nothing behind: everything works. */
  void *b = TN(malloc)(MIB);
  CHECK(b != NULL);
  memset(b, 1, MIB);
  l = TN(realloc)(l, 8 * MIB);
  CHECK(l != NULL && l[MIB - 1] == 0x22);
  TN(free)(b);
  TN(free)(l);
  TN(free)(s);
  TN(free)(warm);
}

/* A thread with a new arena and no segment yet: its first small allocation needs a mapping. */
static void *fresh_arena_thread(void *arg) {
  (void)arg;
  unsigned long calls = ta_os_calls(TA_OS_MMAP);
  ta_os_inject_failure(TA_OS_MMAP, 1L << 40);
  void *got = NULL;
  int err = 0;
  size_t n = 0;
  /* A pooled arena may have room cached: allocate until the arena needs a new segment. */
  for (; n < 1000000; n++) {
    errno = 0;
    got = TN(malloc)(64);
    err = errno;
    if (got == NULL) break;
  }
  clear_injection();
  CHECK_MSG(got == NULL, "a million small allocations and no segment needed");
  CHECK_MSG(err == ENOMEM, "small malloc without a segment: errno %d, want ENOMEM", err);
  CHECK(ta_os_calls(TA_OS_MMAP) > calls);
  for (int i = 0; i < 1000; i++) {
    void *p = TN(malloc)(64);
    CHECK_MSG(p != NULL, "malloc still failing after the injection ended");
    memset(p, 3, 64);
  }
  printf("small malloc: NULL/ENOMEM after %zu blocks while mmap failed, fine after\n", n);
  return NULL;
}

static void mmap_segment(void) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, fresh_arena_thread, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
}

/* brk refused: the main arena goes on with mmap segments. 64 MiB of small blocks need new segments. */
static void brk_fallback(void) {
  ta_stats_t s0, s1;
  void *first = TN(malloc)(16); /* the main thread has its arena */
  CHECK(first != NULL);
  ta_stats_get(&s0);
  unsigned long brk0 = ta_os_calls(TA_OS_BRK), mmap0 = ta_os_calls(TA_OS_MMAP);
  ta_os_inject_failure(TA_OS_BRK, 1L << 40);
  enum { N = 64 * 1024 };
  static unsigned char *blocks[N];
  for (size_t i = 0; i < N; i++) {
    blocks[i] = TN(malloc)(1000);
    CHECK_MSG(blocks[i] != NULL, "malloc(1000) #%zu failed while brk failed (errno %d)", i, errno);
    memset(blocks[i], (int)(i * 7 + 1), 1000);
  }
  ta_stats_get(&s1);
  clear_injection();
  for (size_t i = 0; i < N; i++) {
    for (size_t j = 0; j < 1000; j += 97) CHECK(blocks[i][j] == (unsigned char)(i * 7 + 1));
    TN(free)(blocks[i]);
  }
  printf("segments %zu -> %zu, on brk %zu -> %zu; brk calls +%lu, mmap calls +%lu\n", s0.segments,
         s1.segments, s0.segments_brk, s1.segments_brk, ta_os_calls(TA_OS_BRK) - brk0,
         ta_os_calls(TA_OS_MMAP) - mmap0);
  CHECK(s1.segments >= s0.segments + 10);
  CHECK_MSG(s1.segments_brk <= s0.segments_brk, "brk segments grew while brk failed");
  CHECK(ta_os_calls(TA_OS_MMAP) > mmap0);
  if (s0.segments_brk > 0) CHECK_MSG(ta_os_calls(TA_OS_BRK) > brk0, "the brk arena never tried brk");
  TN(free)(first);
}

/* munmap refused: free keeps errno, and memory it could not unmap is never handed out twice. */
static void munmap_errno(void) {
  static const size_t sizes[] = {200 * KIB, MIB, 5 * MIB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = TN(malloc)(sizes[i]);
    CHECK(p != NULL);
    unsigned long calls = ta_os_calls(TA_OS_MUNMAP);
    ta_os_inject_failure(TA_OS_MUNMAP, 1000);
    errno = 1234;
    TN(free)(p);
    int err = errno;
    /* A freed large mapping may be kept for reuse; trim gives it back (and must keep errno too). */
    TN_TRIM(0);
    int err_trim = errno;
    clear_injection();
    CHECK_MSG(err == 1234, "free(large %zu) with munmap failing changed errno to %d", sizes[i], err);
    CHECK_MSG(err_trim == 1234, "trim with munmap failing changed errno to %d", err_trim);
    CHECK_MSG(ta_os_calls(TA_OS_MUNMAP) > calls, "neither free nor trim of a %zu-byte block tried munmap",
              sizes[i]);
  }
  /* Whole segments: fill several with small blocks, free them all while munmap fails. */
  enum { N = 40000 };
  static unsigned char *blocks[N];
  for (size_t i = 0; i < N; i++) {
    blocks[i] = TN(malloc)(1000);
    CHECK(blocks[i] != NULL);
  }
  ta_os_inject_failure(TA_OS_MUNMAP, 1L << 40);
  errno = 1234;
  for (size_t i = 0; i < N; i++) TN(free)(blocks[i]);
  TN_TRIM(0);
  int err = errno;
  CHECK_MSG(err == 1234, "free/trim of small blocks with munmap failing changed errno to %d", err);
  /* Allocate again, still failing: every block distinct. */
  for (size_t i = 0; i < N; i++) {
    blocks[i] = TN(malloc)(1000);
    CHECK(blocks[i] != NULL);
    memset(blocks[i], (int)(i & 0xff), 1000);
  }
  clear_injection();
  for (size_t i = 0; i < N; i++) {
    for (size_t j = 0; j < 1000; j += 111) CHECK(blocks[i][j] == (unsigned char)(i & 0xff));
    TN(free)(blocks[i]);
  }
  errno = 1234;
  void *p = TN(malloc)(MIB);
  TN(free)(p);
  CHECK(errno == 1234);
}

/* ---- no memory handed out twice, whatever fails ---- */

typedef struct {
  unsigned char *p;
  size_t n, usable;
  uint64_t serial;
} live_t;

#define SLOTS 512
static atomic_int storm_running;

static void storm_inject(test_rng_t *r) {
  static const ta_os_kind_t kinds[] = {TA_OS_MMAP, TA_OS_MUNMAP, TA_OS_MREMAP, TA_OS_PURGE, TA_OS_BRK};
  ta_os_kind_t k = kinds[test_rng_below(r, 5)];
  ta_os_inject_failure(k, (long)test_rng_below(r, 4));
}

static size_t storm_size(test_rng_t *r) {
  switch (test_rng_below(r, 8)) {
    case 0: return 128 * KIB + test_rng_below(r, 3 * MIB);
    case 1: case 2: return 1024 + test_rng_below(r, 127 * KIB);
    default: return 1 + test_rng_below(r, 1024);
  }
}

static void check_live(const live_t *b) {
  CHECK_MSG(pat_ok(b->p - sizeof(node_t), b->n + sizeof(node_t), b->serial),
            "block %p (%zu bytes) was overwritten: memory handed out twice?", (void *)b->p, b->n);
}

static int cmp_live(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)((const live_t *)a)->p, y = (uintptr_t)((const live_t *)b)->p;
  return x < y ? -1 : x > y;
}

static void *storm_thread(void *arg) {
  uint64_t seed = (uint64_t)(uintptr_t)arg;
  test_rng_t r = {seed};
  static _Thread_local live_t live[SLOTS];
  memset(live, 0, sizeof live);
  uint64_t serial = seed << 32;
  long iters = test_scale(60000);
  size_t fails = 0;
  for (long it = 0; it < iters; it++) {
    if (test_rng_below(&r, 16) == 0) storm_inject(&r);
    live_t *b = &live[test_rng_below(&r, SLOTS)];
    if (b->p != NULL && test_rng_below(&r, 3) == 0) {
      /* Resize: the old block stays whole on failure; the kept prefix survives a success. */
      check_live(b);
      size_t n = storm_size(&r);
      errno = 0;
      unsigned char *q = TN(realloc)(b->p, n);
      if (q == NULL) {
        CHECK_MSG(errno == ENOMEM, "realloc failed with errno %d", errno);
        check_live(b);
        fails++;
        continue;
      }
      size_t keepn = n < b->n ? n : b->n;
      CHECK_MSG(pat_ok_n(q - sizeof(node_t), keepn + sizeof(node_t), b->serial, keepn == b->n),
                "realloc(%p, %zu -> %zu) lost the contents", (void *)b->p, b->n, n);
      b->p = q;
      b->n = n;
      b->serial = ++serial;
      b->usable = TN_USABLE(q);
      pat_fill(q - sizeof(node_t), n + sizeof(node_t), b->serial);
      continue;
    }
    if (b->p != NULL) {
      check_live(b);
      TN(free)(b->p);
      b->p = NULL;
      continue;
    }
    size_t n = storm_size(&r);
    errno = 0;
    unsigned char *p;
    if (test_rng_below(&r, 4) == 0)
      p = TN(aligned_alloc)((size_t)64 << test_rng_below(&r, 12), 64 * ((n + 63) / 64));
    else
      p = TN(malloc)(n);
    if (p == NULL) {
      CHECK_MSG(errno == ENOMEM, "allocation failed with errno %d", errno);
      fails++;
      continue;
    }
    b->p = p;
    b->n = n;
    b->serial = ++serial;
    b->usable = TN_USABLE(p);
    CHECK(b->usable >= n);
    pat_fill(p - sizeof(node_t), n + sizeof(node_t), b->serial);
  }
  /* Every live block intact; no two overlap. */
  size_t count = 0;
  static _Thread_local live_t sorted[SLOTS];
  for (size_t i = 0; i < SLOTS; i++)
    if (live[i].p) {
      check_live(&live[i]);
      sorted[count++] = live[i];
    }
  qsort(sorted, count, sizeof sorted[0], cmp_live);
  for (size_t i = 1; i < count; i++)
    CHECK_MSG(sorted[i - 1].p + sorted[i - 1].usable <= sorted[i].p, "blocks %p+%zu and %p overlap",
              (void *)sorted[i - 1].p, sorted[i - 1].usable, (void *)sorted[i].p);
  for (size_t i = 0; i < SLOTS; i++)
    if (live[i].p) TN(free)(live[i].p);
  printf("storm thread: %ld operations, %zu refused\n", iters, fails);
  atomic_fetch_add(&storm_running, -1);
  return NULL;
}

static void storm(int nthreads) {
  uint64_t seed = test_seed(0x73746f726dull);
  pthread_t t[8];
  atomic_store(&storm_running, nthreads);
  for (int i = 0; i < nthreads; i++)
    CHECK(pthread_create(&t[i], NULL, storm_thread, (void *)(uintptr_t)(seed + (uint64_t)i * 7919)) == 0);
  for (int i = 0; i < nthreads; i++) CHECK(pthread_join(t[i], NULL) == 0);
  clear_injection();
}
static void no_overlap(void) { storm(1); }
static void no_overlap_threads(void) { storm(4); }

int main(int argc, char **argv) {
  static const struct {
    const char *name;
    void (*fn)(void);
  } cases[] = {
      {"mmap_large", mmap_large},       {"mmap_segment", mmap_segment},
      {"brk_fallback", brk_fallback},   {"munmap_errno", munmap_errno},
      {"no_overlap", no_overlap},       {"no_overlap_threads", no_overlap_threads},
  };
  setvbuf(stdout, NULL, _IONBF, 0);
  for (size_t i = 0; argc == 2 && i < sizeof cases / sizeof cases[0]; i++)
    if (strcmp(argv[1], cases[i].name) == 0) {
      cases[i].fn();
      return 0;
    }
  fprintf(stderr, "usage: %s CASE\n", argv[0]);
  return 2;
}
