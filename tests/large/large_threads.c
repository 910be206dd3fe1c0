/* Eight threads allocate and free large blocks (128 KiB .. 4 MiB, so bins, retained mappings and
 * mappings of their own all take part as the adaptive threshold moves), resize some by realloc, and
 * pass a third of them to the next thread, which checks the pattern and frees them: the sharded
 * registry and cache under cross-thread traffic. Every block carries its own pattern (sparse: its
 * ends and a word a page), checked before every realloc and free. Deterministic by seed in what
 * each thread does; bounded by counts (TA_TEST_SCALE divides them). ta_* names only. */
#include <pthread.h>
#include <stdatomic.h>

#include "large_util.h"

#define THREADS 8
#define KEEP 12 /* blocks a thread holds at once */
#define MAILBOX 64

typedef struct {
  unsigned char *p;
  size_t n;
  uint32_t tag;
} blk_t;

typedef struct {
  pthread_mutex_t lock;
  blk_t q[MAILBOX]; /* lock: blocks passed to this thread */
  unsigned len;     /* lock */
} mailbox_t;

static mailbox_t box[THREADS];
static long ops;
static uint64_t seed;
static _Atomic long passed, received;

static size_t pick_size(test_rng_t *r) {
  /* log-uniform over 128 KiB .. 4 MiB, with odd byte counts */
  unsigned sh = (unsigned)test_rng_below(r, 6); /* 128 KiB << 0..5 */
  size_t lo = (128 * KIB) << sh;
  return lo + test_rng_below(r, lo) + (size_t)test_rng_below(r, 16);
}

static void check_and_free(blk_t *b) {
  CHECK_MSG(pat_sparse_ok(b->p, b->tag, b->n), "block %p (%zu bytes, tag %u) lost its pattern", (void *)b->p, b->n,
            b->tag);
  ta_free(b->p);
}

static void drain(int self) {
  blk_t got[MAILBOX];
  unsigned n;
  pthread_mutex_lock(&box[self].lock);
  n = box[self].len;
  memcpy(got, box[self].q, n * sizeof got[0]);
  box[self].len = 0;
  pthread_mutex_unlock(&box[self].lock);
  for (unsigned i = 0; i < n; i++) check_and_free(&got[i]);
  atomic_fetch_add(&received, (long)n);
}

/* false if the mailbox is full (the caller frees it itself). */
static int pass_on(int to, const blk_t *b) {
  pthread_mutex_lock(&box[to].lock);
  int ok = box[to].len < MAILBOX;
  if (ok) box[to].q[box[to].len++] = *b;
  pthread_mutex_unlock(&box[to].lock);
  return ok;
}

static void *worker(void *arg) {
  int self = (int)(intptr_t)arg;
  test_rng_t r = {seed * 1000003u + (uint64_t)self};
  blk_t held[KEEP] = {{0}};
  uint32_t tag = (uint32_t)self << 24;
  for (long i = 0; i < ops; i++) {
    if (i % 8 == 0) drain(self);
    blk_t *b = &held[test_rng_below(&r, KEEP)];
    if (b->p != NULL) {
      uint64_t what = test_rng_below(&r, 6);
      if (what < 2) {
        /* a third of the blocks go to the next thread */
        if (pass_on((self + 1) % THREADS, b)) atomic_fetch_add(&passed, 1);
        else check_and_free(b);
      } else if (what == 2) {
        /* resize: keep the pattern on what survives, extend it over the rest */
        CHECK(pat_sparse_ok(b->p, b->tag, b->n));
        size_t n = pick_size(&r);
        unsigned char *q = ta_realloc(b->p, n);
        CHECK(q != NULL);
        size_t keep = n < b->n ? n : b->n;
        CHECK_MSG(pat_check(q, b->tag, 0, keep < 64 ? keep : 64) == (keep < 64 ? keep : 64), "realloc lost the head");
        b->p = q;
        b->n = n;
        pat_sparse_fill(q, b->tag, n);
        continue;
      } else {
        check_and_free(b);
      }
      b->p = NULL;
    }
    b->n = pick_size(&r);
    b->tag = ++tag;
    b->p = ta_malloc(b->n);
    CHECK(b->p != NULL);
    CHECK(ta_owns(b->p));
    pat_sparse_fill(b->p, b->tag, b->n);
  }
  for (int k = 0; k < KEEP; k++)
    if (held[k].p) check_and_free(&held[k]);
  return NULL;
}

int main(void) {
  seed = test_seed(12);
  ops = test_scale(3000);
  for (int t = 0; t < THREADS; t++) pthread_mutex_init(&box[t].lock, NULL);
  pthread_t th[THREADS];
  for (int t = 0; t < THREADS; t++) CHECK(pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t) == 0);
  for (int t = 0; t < THREADS; t++) CHECK(pthread_join(th[t], NULL) == 0);
  for (int t = 0; t < THREADS; t++) drain(t); /* what arrived after its thread's last look */
  CHECK_EQ_SZ(atomic_load(&passed), atomic_load(&received));
  ta_stats_t s;
  ta_stats_get(&s);
  CHECK_MSG(s.large_blocks == 0, "%zu large blocks still live", (size_t)s.large_blocks);
  printf("%d threads x %ld ops, %ld blocks passed between threads\n", THREADS, ops, (long)atomic_load(&passed));
  return 0;
}
