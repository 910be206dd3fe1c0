/* libFuzzer target: an input is a program of allocator operations on 64 slots (malloc, calloc,
 * realloc, aligned_alloc and friends, free, free_sized, usable size, ownership, trim, and handing a
 * block to a second thread that checks and frees it), run against tamalloc's ta_* API with a shadow
 * model (the mmap threshold moves too): every block is filled with its own byte and checked before it is resized or freed, and
 * every new block must be aligned, at least as large as asked, and overlap no live block.
 * The second thread is started and joined within each input, so a run depends on the input only.
 * ta_validate checks the whole heap after each input's operations and again once the second thread
 * has exited (in every build: it costs about a fifth of the executions per second).
 * TA_FUZZ_SECONDS=N in the environment caps the run at N seconds (as -max_total_time=N). */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tamalloc.h"

#define SLOTS 64
#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

/* A failed property: print and crash, so libFuzzer saves the input. */
#define FUZZ_CHECK(cond, ...)                                                                        \
  do {                                                                                               \
    if (!(cond)) {                                                                                   \
      fprintf(stderr, "fuzz_ops: %s: ", #cond);                                                      \
      fprintf(stderr, __VA_ARGS__);                                                                  \
      fputc('\n', stderr);                                                                           \
      abort();                                                                                       \
    }                                                                                                \
  } while (0)

typedef struct {
  unsigned char *p;
  size_t n;      /* bytes asked for */
  size_t usable; /* ta_usable_size when it was made */
  size_t align;  /* alignment asked for (16 for plain requests) */
  unsigned char fill;
  unsigned char sized; /* which sized free is defined for it: SIZED_NONE, SIZED_PLAIN, SIZED_ALIGNED */
} slot_t;
enum { SIZED_NONE, SIZED_PLAIN, SIZED_ALIGNED };

/* ---- the input ---- */

typedef struct {
  const uint8_t *d;
  size_t n, at;
} input_t;

static unsigned in_byte(input_t *in) { return in->at < in->n ? in->d[in->at++] : 0; }
static unsigned in_u16(input_t *in) { return in_byte(in) | in_byte(in) << 8; }

/* Sizes across the router line, mostly small. */
static size_t in_size(input_t *in) {
  unsigned sel = in_byte(in) % 16;
  size_t v = in_u16(in);
  if (sel < 9) return v % 1025;                            /* small classes */
  if (sel < 12) return 1024 + v * 2 % (127 * KIB);          /* spans */
  if (sel == 12) return 128 * KIB - 64 + v % 128;           /* the router line */
  if (sel == 13) return 128 * KIB + v * 29 % (2 * MIB);     /* the mmap path */
  if (sel == 14) return v % 17;                             /* tiny, zero included */
  return (size_t)1 << (v % 22);                             /* powers of two up to 2 MiB */
}
static size_t in_align(input_t *in) { return (size_t)1 << (in_byte(in) % 21); /* 1 .. 1 MiB */ }

/* ---- contents ---- */

/* The pattern lies on every byte of the first 64 KiB, then on one word every 64 KiB and the last
 * byte: big blocks are sampled (their overlap with other blocks is checked on addresses anyway), so
 * the run is not all page faults. check_fill reads the same places. */
#define DENSE ((size_t)65536)
#define SPARSE_STEP ((size_t)65536)
static void fill(slot_t *s) {
  size_t dense = s->n < DENSE ? s->n : DENSE;
  memset(s->p, s->fill, dense);
  for (size_t i = dense; i + 8 <= s->n; i += SPARSE_STEP) memset(s->p + i, s->fill, 8);
  if (s->n) s->p[s->n - 1] = s->fill;
}

/* Compared by words and kept out of the coverage instrumentation: a per-byte comparison hook would
 * make this the whole run. */
__attribute__((no_sanitize("coverage"))) static void check_bytes(const unsigned char *p, size_t n,
                                                                 unsigned char f, bool last,
                                                                 const char *when) {
  uint64_t w = 0x0101010101010101ull * f, x;
  size_t dense = n < DENSE ? n : DENSE, i = 0;
  for (; i + 8 <= dense; i += 8) {
    memcpy(&x, p + i, 8);
    if (x != w) break;
  }
  for (; i < dense; i++)
    FUZZ_CHECK(p[i] == f, "%s: block %p byte %zu of %zu is 0x%02x, want 0x%02x", when, (const void *)p, i,
               n, p[i], f);
  for (i = dense; i + 8 <= n; i += SPARSE_STEP) {
    memcpy(&x, p + i, 8);
    FUZZ_CHECK(x == w, "%s: block %p bytes at %zu of %zu changed", when, (const void *)p, i, n);
  }
  if (n && last) FUZZ_CHECK(p[n - 1] == f, "%s: block %p last byte changed", when, (const void *)p);
}
static void check_fill(const unsigned char *p, size_t n, unsigned char f, const char *when) {
  check_bytes(p, n, f, true, when);
}

/* ---- the second thread: takes blocks, checks them, frees them ---- */

typedef struct {
  unsigned char *p;
  size_t n;
  unsigned char fill;
  bool sized;
} handoff_t;

#define QCAP 256
static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  handoff_t items[QCAP];
  unsigned head, count;
  bool closed;
} q = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void *consumer_main(void *arg) {
  (void)arg;
  unsigned n = 0;
  for (;;) {
    pthread_mutex_lock(&q.lock);
    while (q.count == 0 && !q.closed) pthread_cond_wait(&q.cond, &q.lock);
    if (q.count == 0) {
      pthread_mutex_unlock(&q.lock);
      return NULL;
    }
    handoff_t h = q.items[q.head];
    q.head = (q.head + 1) % QCAP;
    q.count--;
    pthread_mutex_unlock(&q.lock);
    check_fill(h.p, h.n, h.fill, "in the second thread");
    if (h.sized)
      ta_free_sized(h.p, h.n);
    else
      ta_free(h.p);
    /* Some allocation of its own, so this thread has an arena the main thread's frees meet. */
    if (++n % 4 == 0) {
      void *own = ta_malloc(n % 3000);
      FUZZ_CHECK(own != NULL, "second thread: malloc failed");
      ta_free(own);
    }
  }
}

/* false when the queue is full (then the caller frees the block itself). */
static bool hand_off(handoff_t h) {
  pthread_mutex_lock(&q.lock);
  bool ok = q.count < QCAP;
  if (ok) {
    q.items[(q.head + q.count) % QCAP] = h;
    q.count++;
    pthread_cond_signal(&q.cond);
  }
  pthread_mutex_unlock(&q.lock);
  return ok;
}

/* ---- the model ---- */

static slot_t slots[SLOTS];

static void check_new(slot_t *s, const char *what) {
  FUZZ_CHECK(((uintptr_t)s->p & (s->align - 1)) == 0, "%s: %p not aligned to %zu", what, (void *)s->p, s->align);
  FUZZ_CHECK(((uintptr_t)s->p & 15) == 0, "%s: %p not 16-byte aligned", what, (void *)s->p);
  s->usable = ta_usable_size(s->p);
  FUZZ_CHECK(s->usable >= s->n, "%s: usable size %zu < %zu asked", what, s->usable, s->n);
  FUZZ_CHECK(ta_owns(s->p) == 1, "%s: ta_owns(%p) is 0 for a live block", what, (void *)s->p);
  FUZZ_CHECK(ta_owns(s->p + 1) == 0, "%s: ta_owns(%p + 1) is 1", what, (void *)s->p);
  uintptr_t a = (uintptr_t)s->p, b = a + (s->usable ? s->usable : 1);
  for (int i = 0; i < SLOTS; i++) {
    const slot_t *o = &slots[i];
    if (o == s || o->p == NULL) continue;
    uintptr_t c = (uintptr_t)o->p, d = c + (o->usable ? o->usable : 1);
    FUZZ_CHECK(b <= c || d <= a, "%s: new block [%p, +%zu) overlaps live block [%p, +%zu)", what,
               (void *)s->p, s->usable, (void *)o->p, o->usable);
  }
}

static void release(slot_t *s, bool sized) {
  check_fill(s->p, s->n, s->fill, "before free");
  if (sized && s->sized == SIZED_ALIGNED)
    ta_free_aligned_sized(s->p, s->align, s->n);
  else if (sized && s->sized == SIZED_PLAIN)
    ta_free_sized(s->p, s->n);
  else
    ta_free(s->p);
  s->p = NULL;
}

static unsigned char next_fill;

static void run(input_t *in) {
  while (in->at < in->n) {
    unsigned op = in_byte(in);
    slot_t *s = &slots[in_byte(in) % SLOTS];
    switch (op % 15) {
      case 0: case 1: case 2: { /* malloc */
        if (s->p) release(s, false);
        s->n = in_size(in);
        s->align = 16;
        s->sized = SIZED_PLAIN;
        s->p = ta_malloc(s->n);
        FUZZ_CHECK(s->p != NULL, "malloc(%zu) failed", s->n);
        check_new(s, "malloc");
        s->fill = ++next_fill;
        fill(s);
        break;
      }
      case 3: { /* calloc */
        if (s->p) release(s, false);
        size_t count = in_byte(in) % 16 + 1;
        size_t each = in_size(in) / count;
        s->n = count * each;
        s->align = 16;
        s->sized = SIZED_PLAIN;
        s->p = ta_calloc(count, each);
        FUZZ_CHECK(s->p != NULL, "calloc(%zu, %zu) failed", count, each);
        check_new(s, "calloc");
        check_fill(s->p, s->n, 0, "calloc");
        s->fill = ++next_fill;
        fill(s);
        break;
      }
      case 4: case 5: { /* realloc */
        size_t n = in_size(in);
        if (s->p == NULL) {
          s->p = ta_realloc(NULL, n);
          FUZZ_CHECK(s->p != NULL, "realloc(NULL, %zu) failed", n);
          s->n = n;
          s->fill = ++next_fill;
        } else {
          check_fill(s->p, s->n, s->fill, "before realloc");
          if (n == 0) { /* glibc semantics: realloc(p, 0) frees and returns NULL */
            FUZZ_CHECK(ta_realloc(s->p, 0) == NULL, "realloc(p, 0) returned a block");
            s->p = NULL;
            break;
          }
          unsigned char *p = ta_realloc(s->p, n);
          FUZZ_CHECK(p != NULL, "realloc(%zu -> %zu) failed", s->n, n);
          s->p = p;
          /* The kept prefix: its last byte carries the pattern only if it is the old block's last. */
          check_bytes(p, s->n < n ? s->n : n, s->fill, s->n <= n, "after realloc");
          s->n = n;
        }
        s->align = 16;
        s->sized = SIZED_PLAIN;
        check_new(s, "realloc");
        fill(s);
        break;
      }
      case 6: { /* aligned_alloc and friends */
        if (s->p) release(s, false);
        size_t a = in_align(in);
        size_t n = in_size(in);
        unsigned how = in_byte(in) % 5;
        void *p = NULL;
        if (how == 0) {
          p = ta_aligned_alloc(a, n);
        } else if (how == 1) {
          if (a < sizeof(void *)) a = sizeof(void *);
          FUZZ_CHECK(ta_posix_memalign(&p, a, n) == 0, "posix_memalign(%zu, %zu) failed", a, n);
        } else if (how == 2) {
          p = ta_memalign(a, n);
        } else if (how == 3) {
          a = 4096;
          p = ta_valloc(n);
        } else {
          a = 4096;
          p = ta_pvalloc(n);
          n = n ? (n + 4095) / 4096 * 4096 : 4096; /* pvalloc rounds up to whole pages */
        }
        FUZZ_CHECK(p != NULL, "aligned allocation (%u) of %zu at %zu failed", how, n, a);
        s->p = p;
        s->n = n;
        s->align = a < 16 ? 16 : a;
        check_new(s, "aligned allocation");
        s->fill = ++next_fill;
        fill(s);
        /* free_aligned_sized is defined for aligned_alloc's blocks only, free_sized for none of these. */
        s->sized = how == 0 ? SIZED_ALIGNED : SIZED_NONE;
        break;
      }
      case 7: case 8: /* free */
        if (s->p) release(s, false);
        break;
      case 9: /* free_sized / free_aligned_sized with the size asked for */
        if (s->p) release(s, true);
        break;
      case 10: /* usable size and ownership of a live block */
        if (s->p) {
          FUZZ_CHECK(ta_usable_size(s->p) == s->usable, "usable size of %p changed", (void *)s->p);
          FUZZ_CHECK(ta_owns(s->p) == 1, "ta_owns(%p) is 0", (void *)s->p);
        }
        break;
      case 11: /* trim: must not touch live blocks */
        if (in_byte(in) % 4 == 0) {
          ta_trim(in_byte(in) * 4096);
          for (int i = 0; i < SLOTS; i++)
            if (slots[i].p) check_fill(slots[i].p, slots[i].n, slots[i].fill, "after trim");
        }
        break;
      case 14: { /* move the router line: live blocks then cross it when resized or freed */
        static const long lines[] = {4096, 16384, 65536, 100000, 131072, 262144, 1 << 20, (1 << 20) + 1};
        unsigned k = in_byte(in) % 8;
        FUZZ_CHECK(ta_mallopt(TA_OPT_MMAP_THRESHOLD, lines[k]) == 1, "mallopt(%ld) refused", lines[k]);
        break;
      }
      default: /* 12, 13: hand the block to the second thread */
        if (s->p) {
          check_fill(s->p, s->n, s->fill, "before hand-off");
          handoff_t h = {s->p, s->n, s->fill, s->sized == SIZED_PLAIN && (op & 16)};
          if (hand_off(h))
            s->p = NULL;
          else
            release(s, false);
        }
        break;
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pthread_t consumer;
  q.closed = false;
  if (pthread_create(&consumer, NULL, consumer_main, NULL) != 0) abort();
  input_t in = {data, size, 0};
  ta_mallopt(TA_OPT_MMAP_THRESHOLD, 128 * 1024); /* every input starts from the default line */
  run(&in);
  ta_validate(); /* with the input's blocks live, the consumer still freeing some */
  for (int i = 0; i < SLOTS; i++)
    if (slots[i].p) release(&slots[i], i & 1);
  pthread_mutex_lock(&q.lock);
  q.closed = true;
  pthread_cond_signal(&q.cond);
  pthread_mutex_unlock(&q.lock);
  pthread_join(consumer, NULL);
  ta_validate(); /* the consumer's arena is in the pool now */
  return 0;
}

/* TA_FUZZ_SECONDS=N appends -max_total_time=N (the last flag wins). The meson test's working corpus
 * directory (a path ending in corpus-work) is created if missing, so a fresh build directory works. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  static char *args[256];
  static char flag[64];
  int n = 0;
  for (int i = 0; i < *argc && n < 250; i++) {
    args[n++] = (*argv)[i];
    const char *a = (*argv)[i];
    size_t len = strlen(a);
    if (i > 0 && a[0] != '-' && len >= 11 && strcmp(a + len - 11, "corpus-work") == 0) mkdir(a, 0777);
  }
  const char *secs = getenv("TA_FUZZ_SECONDS");
  if (secs != NULL && *secs != '\0') {
    snprintf(flag, sizeof flag, "-max_total_time=%ld", strtol(secs, NULL, 10));
    args[n++] = flag;
  }
  args[n] = NULL;
  *argc = n;
  *argv = args;
  return 0;
}
