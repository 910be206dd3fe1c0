/* No false alarm: a million random legal operations (malloc, calloc, realloc, free, free_sized,
 * aligned_alloc, posix_memalign, malloc(0)) over small, medium and large sizes on four threads, a
 * share of the blocks freed by another thread than the one that made them. Every block is filled
 * with a pattern of its own and checked before it is freed or resized, so a check of the secure
 * variant that fired on a legal program, or a block it damaged, fails the test. Deterministic by
 * seed (TA_TEST_SEED); TA_TEST_SCALE divides the operations. */
#include <pthread.h>

#include "misuse/death.h"

/* death_run checks how the child ended; no case here names a pointer. */
static void (*const unused_expect)(const void *) __attribute__((unused)) = death_expect_ptr;

#define THREADS 4
#define SLOTS 512
#define HANDOFF 64

typedef struct slot_s {
  unsigned char *p;
  size_t n;
  size_t align; /* 0: not an aligned allocation */
  unsigned char tag;
} slot_t;

/* Blocks one thread made and the next thread frees. */
static struct {
  pthread_mutex_t lock;
  slot_t ring[THREADS][HANDOFF];
  unsigned count[THREADS];
} handoff = {.lock = PTHREAD_MUTEX_INITIALIZER};

static long g_ops;
static uint64_t g_seed;

static size_t pick_size(test_rng_t *r) {
  uint64_t k = test_rng_below(r, 1000);
  if (k < 5) return 0;
  if (k < 700) return (size_t)test_rng_below(r, 257);
  if (k < 950) return (size_t)test_rng_below(r, 8192);
  if (k < 995) return (size_t)test_rng_below(r, 120000);
  return 128 * 1024 + (size_t)test_rng_below(r, 1 << 20);
}

static void fill(slot_t *s) {
  if (s->n) memset(s->p, s->tag, s->n);
}

static void verify(const slot_t *s) {
  for (size_t i = 0; i < s->n; i++)
    CHECK_MSG(s->p[i] == s->tag, "block %p byte %zu of %zu changed", (void *)s->p, i, s->n);
}

static void release(slot_t *s, test_rng_t *r) {
  verify(s);
  if (s->n > 0 && test_rng_below(r, 4) == 0) {
    if (s->align)
      TN(free_aligned_sized)(s->p, s->align, s->n);
    else
      TN(free_sized)(s->p, s->n);
  } else
    TN(free)(s->p);
  s->p = NULL;
}

static void make(slot_t *s, test_rng_t *r) {
  size_t n = pick_size(r);
  void *p = NULL;
  size_t align = 0;
  switch (test_rng_below(r, 6)) {
    case 0: p = TN(calloc)(1, n);
      for (size_t i = 0; i < n; i++) CHECK(((unsigned char *)p)[i] == 0);
      break;
    case 1: align = (size_t)16 << test_rng_below(r, 9); p = TN(aligned_alloc)(align, n); break;
    case 2: align = (size_t)8 << test_rng_below(r, 10); CHECK(TN(posix_memalign)(&p, align, n) == 0); break;
    default: p = TN(malloc)(n); break;
  }
  CHECK(p != NULL);
  CHECK(ta_usable_size(p) >= n);
  s->p = p;
  CHECK(align == 0 || ((uintptr_t)p & (align - 1)) == 0);
  s->n = n;
  s->align = align;
  s->tag = (unsigned char)test_rng_next(r);
  fill(s);
}

static void *worker(void *arg) {
  unsigned me = (unsigned)(uintptr_t)arg;
  test_rng_t r = {g_seed + me};
  slot_t slots[SLOTS] = {{0}};
  for (long op = 0; op < g_ops; op++) {
    slot_t *s = &slots[test_rng_below(&r, SLOTS)];
    uint64_t k = test_rng_below(&r, 100);
    if (s->p == NULL) {
      make(s, &r);
    } else if (k < 30) {
      verify(s);
      size_t n = pick_size(&r);
      if (n == 0) n = 1; /* realloc(p, 0) frees: covered by free */
      unsigned char *q = TN(realloc)(s->p, n);
      CHECK(q != NULL);
      size_t kept = s->n < n ? s->n : n;
      for (size_t i = 0; i < kept; i++) CHECK(q[i] == s->tag);
      s->p = q;
      s->n = n;
      s->align = 0;
      fill(s);
    } else if (k < 35) {
      /* Hand it to the next thread, which frees it. */
      verify(s);
      unsigned to = (me + 1) % THREADS;
      pthread_mutex_lock(&handoff.lock);
      bool taken = handoff.count[to] < HANDOFF;
      if (taken) handoff.ring[to][handoff.count[to]++] = *s;
      pthread_mutex_unlock(&handoff.lock);
      if (taken)
        s->p = NULL;
      else
        release(s, &r);
    } else {
      release(s, &r);
    }
    if (op % 64 == 0) {
      pthread_mutex_lock(&handoff.lock);
      while (handoff.count[me] > 0) {
        slot_t h = handoff.ring[me][--handoff.count[me]];
        pthread_mutex_unlock(&handoff.lock);
        release(&h, &r);
        pthread_mutex_lock(&handoff.lock);
      }
      pthread_mutex_unlock(&handoff.lock);
    }
  }
  for (unsigned i = 0; i < SLOTS; i++)
    if (slots[i].p) release(&slots[i], &r);
  return NULL;
}

static void run(void) {
  pthread_t t[THREADS];
  for (unsigned i = 0; i < THREADS; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) == 0);
  for (unsigned i = 0; i < THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  test_rng_t r = {g_seed};
  for (unsigned i = 0; i < THREADS; i++)
    while (handoff.count[i] > 0) release(&handoff.ring[i][--handoff.count[i]], &r);
  ta_trim(0);
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  g_seed = test_seed(15);
  g_ops = test_scale(1000000) / THREADS;
  /* In a child, so that a tamalloc message on stderr fails the test as a false alarm. */
  return death_run("random_legal", run, DEATH_NONE, NULL);
}
