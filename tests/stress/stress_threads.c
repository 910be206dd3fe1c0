/* Eight threads doing random ta_malloc / ta_calloc / ta_realloc / ta_aligned_alloc / ta_free with sizes
 * from 1 B to 1 MiB, every block patterned from its id and checked before each use, and one block in
 * ten handed to another thread to free. One thread calls ta_trim(0) now and then; the second and third
 * rounds run with decay 0, so pages are purged as soon as they are free, and the third caps the arenas
 * at two, so threads share them. Deterministic per thread by seed (the interleaving is not). */
#include "stress.h"

#define NTHREADS 8
#define SLOTS 384

static st_mailbox_t mailbox[NTHREADS];
static pthread_barrier_t done_barrier;
static uint64_t seed;
static long ops_per_thread;

typedef struct worker_s {
  unsigned tid;
  unsigned long allocs, frees, reallocs, handed, received; /* counters, for the summary */
} worker_t;

static void allocate(st_block_t *b, test_rng_t *r, uint64_t id) {
  size_t n = st_size(r);
  uint64_t how = test_rng_below(r, 100);
  b->align = 0;
  int zeroed = 0;
  if (how < 55) {
    b->p = ta_malloc(n);
  } else if (how < 70) {
    zeroed = 1;
    b->p = n % 8 == 0 ? ta_calloc(n / 8, 8) : ta_calloc(1, n);
  } else if (how < 85) {
    b->align = (size_t)16 << test_rng_below(r, 10); /* 16 .. 8 KiB */
    b->p = ta_aligned_alloc(b->align, n);
  } else {
    b->p = ta_realloc(NULL, n);
  }
  CHECK_MSG(b->p != NULL, "allocation of %zu bytes (kind %d) failed", n, (int)how);
  CHECK_ALIGNED(b->p, b->align > 16 ? b->align : 16);
  CHECK_MSG(ta_usable_size(b->p) >= n, "usable %zu < %zu", ta_usable_size(b->p), n);
  if (zeroed) {
    size_t bad = tb_first_nonzero(b->p, n);
    CHECK_MSG(bad == SIZE_MAX, "ta_calloc block of %zu: byte %zu not zero", n, bad);
  }
  if ((id & 63) == 0) CHECK(ta_owns(b->p) == 1);
  b->n = n;
  b->id = id;
  st_fill(b->p, n, id);
}

static void drain(worker_t *w, test_rng_t *r) {
  st_block_t got[64];
  size_t k;
  while ((k = st_mailbox_take(&mailbox[w->tid], got, 64)) > 0) {
    for (size_t i = 0; i < k; i++) {
      st_check_block(&got[i]);
      st_free_block(&got[i], r);
    }
    w->received += k;
  }
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  test_rng_t r = {seed + 0x1000 * (w->tid + 1)};
  st_block_t slots[SLOTS];
  memset(slots, 0, sizeof slots);
  uint64_t next_id = ((uint64_t)(w->tid + 1) << 48) + 1;
  for (long op = 0; op < ops_per_thread; op++) {
    if (op % 32 == 0) drain(w, &r);
    st_block_t *b = &slots[test_rng_below(&r, SLOTS)];
    if (b->p == NULL) {
      allocate(b, &r, next_id++);
      w->allocs++;
      continue;
    }
    st_check_block(b);
    uint64_t what = test_rng_below(&r, 100);
    if (what < 40) {
      st_free_block(b, &r);
      w->frees++;
    } else if (what < 70) {
      size_t n = st_size(&r);
      unsigned char *q = ta_realloc(b->p, n);
      CHECK_MSG(q != NULL, "ta_realloc(%zu -> %zu) failed", b->n, n);
      CHECK_ALIGNED(q, 16);
      CHECK(ta_usable_size(q) >= n);
      ST_CHECK_PREFIX(q, b->n, b->id, n);
      b->p = q;
      b->n = n;
      b->id = next_id++;
      b->align = 0; /* realloc keeps only the 16-byte guarantee */
      st_fill(q, n, b->id);
      w->reallocs++;
    } else if (what < 80) {
      unsigned to = (w->tid + 1 + (unsigned)test_rng_below(&r, NTHREADS - 1)) % NTHREADS;
      if (st_mailbox_put(&mailbox[to], b)) {
        b->p = NULL;
        w->handed++;
      } else {
        st_free_block(b, &r);
        w->frees++;
      }
    }
    /* else: only the check above */
    if (w->tid == 0 && op % 2000 == 1999) (void)ta_trim(0); /* purge while the others work */
    if (op % 8192 == 4095) st_checkpoint();
  }
  /* No thread sends after the barrier, so one last drain empties every mailbox for good. */
  int rc = pthread_barrier_wait(&done_barrier);
  CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD);
  drain(w, &r);
  for (size_t i = 0; i < SLOTS; i++) {
    if (slots[i].p == NULL) continue;
    st_check_block(&slots[i]);
    st_free_block(&slots[i], &r);
  }
  st_checkpoint();
  return NULL;
}

int main(void) {
  seed = test_seed(0x5712e55ull);
  ops_per_thread = test_scale(130000);
  /* Round 0 makes the arenas, round 1 meets them again with decay 0, round 2 runs the eight threads on
   * at most two arenas, so most threads share one. */
  for (int round = 0; round < 3; round++) {
    if (round == 2) CHECK(ta_mallopt(TA_OPT_ARENA_MAX, 2) == 1);
    pthread_t th[NTHREADS];
    worker_t w[NTHREADS];
    CHECK(pthread_barrier_init(&done_barrier, NULL, NTHREADS) == 0);
    for (unsigned i = 0; i < NTHREADS; i++) st_mailbox_init(&mailbox[i]); /* before any thread posts */
    for (unsigned i = 0; i < NTHREADS; i++) {
      memset(&w[i], 0, sizeof w[i]);
      w[i].tid = i;
      CHECK(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0);
    }
    unsigned long handed = 0, received = 0, allocs = 0;
    for (unsigned i = 0; i < NTHREADS; i++) {
      CHECK(pthread_join(th[i], NULL) == 0);
      handed += w[i].handed;
      received += w[i].received;
      allocs += w[i].allocs;
    }
    CHECK(pthread_barrier_destroy(&done_barrier) == 0);
    CHECK_MSG(handed == received, "%lu blocks handed over, %lu received", handed, received);
    CHECK(handed > 0);
    fprintf(stderr, "round %d: %lu allocations, %lu handed to another thread\n", round, allocs, handed);
    st_checkpoint(); /* main's arena and the eight exited threads', now in the pool */
    seed += 1;
    /* The next rounds purge free pages as soon as they are free, racing with their reuse. */
    CHECK(ta_mallopt(TA_OPT_DECAY_MS, 0) == 1);
  }
  CHECK(ta_mallopt(TA_OPT_ARENA_MAX, 0) == 1);
  ta_stats_t s = st_stats();
  CHECK_MSG(s.large_blocks == 0, "%zu large blocks still live after everything was freed", s.large_blocks);
  return 0;
}
