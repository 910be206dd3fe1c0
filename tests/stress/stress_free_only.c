/* A thread that only frees: main allocates batches of blocks, a worker that never allocates checks and
 * frees them. Main must get that memory back (through the pages' cross-thread free lists), so over
 * many rounds the segments and (without sanitizers) the resident size stay bounded. */
#include "stress.h"

#define IN_FLIGHT 2 /* batches queued or being freed at most */
#define GROWTH_BOUND ((size_t)64 << 20)

typedef struct batch_s {
  st_block_t *blocks; /* the test's own array (not tamalloc's) */
  size_t count;
} batch_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static batch_t queue[IN_FLIGHT];
static size_t q_head, q_count; /* ring of batches waiting */
static size_t busy;            /* batches taken by the worker and not yet freed */
static int finished;           /* main has no more batches */
static uint64_t seed;

static void *freer(void *arg) {
  (void)arg;
  test_rng_t r = {seed ^ 0xf4eeull};
  for (;;) {
    CHECK(pthread_mutex_lock(&mu) == 0);
    while (q_count == 0 && !finished) CHECK(pthread_cond_wait(&cv, &mu) == 0);
    if (q_count == 0) {
      CHECK(pthread_mutex_unlock(&mu) == 0);
      return NULL;
    }
    batch_t b = queue[q_head];
    q_head = (q_head + 1) % IN_FLIGHT;
    q_count--;
    busy++;
    CHECK(pthread_mutex_unlock(&mu) == 0);
    for (size_t i = 0; i < b.count; i++) {
      st_check_block(&b.blocks[i]);
      st_free_block(&b.blocks[i], &r);
    }
    st_checkpoint();
    CHECK(pthread_mutex_lock(&mu) == 0);
    busy--;
    CHECK(pthread_cond_broadcast(&cv) == 0);
    CHECK(pthread_mutex_unlock(&mu) == 0);
  }
}

int main(void) {
  seed = test_seed(0xf1ee0ull);
  long rounds = test_scale(600);
  enum { PER_BATCH = 8192 };
  /* One array per batch that can be in flight, plus the one being filled. */
  static st_block_t arrays[IN_FLIGHT + 2][PER_BATCH];
  test_rng_t r = {seed};
  pthread_t th;
  CHECK(pthread_create(&th, NULL, freer, NULL) == 0);
  size_t rss0 = 0, seg0 = 0, peak_rss = 0, peak_seg = 0;
  uint64_t id = 1;
  long warm = rounds / 10 > 0 ? rounds / 10 : 1;
  for (long round = 0; round < rounds; round++) {
    st_block_t *blocks = arrays[round % (IN_FLIGHT + 2)];
    /* Mostly small blocks, some medium: about 2.5 MiB a batch. */
    for (size_t i = 0; i < PER_BATCH; i++) {
      st_block_t *b = &blocks[i];
      b->n = test_rng_below(&r, 64) == 0 ? tb_log_uniform(&r, 12, 16) : tb_log_uniform(&r, 0, 9);
      b->align = 0;
      b->p = ta_malloc(b->n);
      CHECK(b->p != NULL);
      b->id = id++;
      st_fill(b->p, b->n, b->id);
    }
    CHECK(pthread_mutex_lock(&mu) == 0);
    /* At most IN_FLIGHT batches queued or being freed, so the arrays are never reused too early. */
    while (q_count + busy >= IN_FLIGHT) CHECK(pthread_cond_wait(&cv, &mu) == 0);
    queue[(q_head + q_count) % IN_FLIGHT] = (batch_t){blocks, PER_BATCH};
    q_count++;
    CHECK(pthread_cond_broadcast(&cv) == 0);
    CHECK(pthread_mutex_unlock(&mu) == 0);

    if (round % 16 == 0) st_checkpoint();
    if (round == warm) {
      rss0 = st_rss_bytes();
      seg0 = st_stats().segment_bytes;
    } else if (round > warm) {
      size_t rss = st_rss_bytes(), seg = st_stats().segment_bytes;
      if (rss > peak_rss) peak_rss = rss;
      if (seg > peak_seg) peak_seg = seg;
    }
  }
  CHECK(pthread_mutex_lock(&mu) == 0);
  finished = 1;
  CHECK(pthread_cond_broadcast(&cv) == 0);
  CHECK(pthread_mutex_unlock(&mu) == 0);
  CHECK(pthread_join(th, NULL) == 0);
  fprintf(stderr, "%ld rounds of %d blocks; segment bytes %zu -> peak %zu; rss %zu -> peak %zu KiB\n",
          rounds, PER_BATCH, seg0, peak_seg, rss0 >> 10, peak_rss >> 10);
  if (rounds > warm + 1) {
    CHECK_MSG(peak_seg <= seg0 + GROWTH_BOUND, "segments grew from %zu to %zu bytes", seg0, peak_seg);
    if (!TA_TEST_SANITIZED)
      CHECK_MSG(peak_rss <= rss0 + GROWTH_BOUND, "resident size grew from %zu to %zu KiB", rss0 >> 10,
                peak_rss >> 10);
  }
  return 0;
}
