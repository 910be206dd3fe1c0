/* Thread churn: 100,000 short-lived threads (divided by TA_TEST_SCALE), created a few at a time, each
 * doing malloc / free / malloc(32) and handing its last block to main, which frees half of them at
 * once and half later, while newer threads run. Exited threads' arenas must be reused, so the arena
 * count, the segments and (without sanitizers) the resident size stay bounded. */
#include "stress.h"

#define AT_ONCE 4
#define RSS_BOUND ((size_t)64 << 20)
#define SEGMENT_BOUND ((size_t)64 << 20)
#define ARENA_BOUND 64

typedef struct job_s {
  uint64_t index;   /* which thread of the run: seeds its sizes and names its block */
  unsigned char *q; /* out: the block handed to main, 32 bytes patterned with `index` */
} job_t;

static uint64_t seed;

static void *churn_main(void *arg) {
  job_t *j = arg;
  test_rng_t r = {seed ^ (j->index * 0x9e3779b97f4a7c15ull)};
  size_t n = test_rng_below(&r, 16) == 0 ? tb_log_uniform(&r, 12, 19) : tb_log_uniform(&r, 0, 12);
  unsigned char *p = ta_malloc(n);
  CHECK(p != NULL);
  st_fill(p, n, j->index);
  ST_CHECK(p, n, j->index);
  ta_free(p);
  j->q = ta_malloc(32);
  CHECK(j->q != NULL);
  st_fill(j->q, 32, j->index);
  return NULL;
}

/* Blocks of exited threads wait here and are freed DELAY batches later, while new threads run and
 * adopt the exited threads' arenas: frees into an arena race with its new owner. */
#define DELAY 8
static job_t delayed[DELAY][AT_ONCE];
static unsigned delayed_n[DELAY];

static void free_delayed(unsigned slot) {
  for (unsigned m = 0; m < delayed_n[slot]; m++) {
    ST_CHECK(delayed[slot][m].q, 32, delayed[slot][m].index);
    ta_free(delayed[slot][m].q);
  }
  delayed_n[slot] = 0;
}

static void run_threads(uint64_t first, uint64_t count) {
  unsigned batch = 0;
  for (uint64_t i = first; i < first + count; i += AT_ONCE, batch++) {
    pthread_t th[AT_ONCE];
    job_t jobs[AT_ONCE];
    unsigned k = 0;
    for (; k < AT_ONCE && i + k < first + count; k++) {
      jobs[k].index = i + k;
      jobs[k].q = NULL;
      CHECK_MSG(pthread_create(&th[k], NULL, churn_main, &jobs[k]) == 0, "pthread_create #%llu",
                (unsigned long long)(i + k));
    }
    unsigned slot = batch % DELAY;
    free_delayed(slot); /* while this batch runs */
    for (unsigned m = 0; m < k; m++) {
      CHECK(pthread_join(th[m], NULL) == 0);
      ST_CHECK(jobs[m].q, 32, jobs[m].index);
      if (m % 2 == 0) {
        ta_free(jobs[m].q); /* a block of an exited thread's arena, freed at once */
      } else {
        delayed[slot][delayed_n[slot]++] = jobs[m];
      }
    }
    if (batch % 64 == 0) st_checkpoint(); /* main's arena and those of the exited threads */
  }
  for (unsigned slot = 0; slot < DELAY; slot++) free_delayed(slot);
}

int main(void) {
  seed = test_seed(0xc4124ull);
  uint64_t total = (uint64_t)test_scale(100000);
  uint64_t warm = total / 10;
  run_threads(0, warm);
  size_t rss0 = st_rss_bytes();
  ta_stats_t s0 = st_stats();
  run_threads(warm, total - warm);
  size_t rss1 = st_rss_bytes();
  ta_stats_t s1 = st_stats();
  fprintf(stderr, "%llu threads; arenas %zu -> %zu; segment bytes %zu -> %zu; rss %zu -> %zu KiB\n",
          (unsigned long long)total, s0.arenas, s1.arenas, s0.segment_bytes, s1.segment_bytes, rss0 >> 10,
          rss1 >> 10);
  CHECK_MSG(s1.arenas <= ARENA_BOUND, "%zu arenas made for at most %d live threads", s1.arenas, AT_ONCE + 1);
  CHECK_MSG(s1.segment_bytes <= s0.segment_bytes + SEGMENT_BOUND, "segments grew from %zu to %zu bytes",
            s0.segment_bytes, s1.segment_bytes);
  if (!TA_TEST_SANITIZED)
    CHECK_MSG(rss1 <= rss0 + RSS_BOUND, "resident size grew from %zu to %zu KiB", rss0 >> 10, rss1 >> 10);
  return 0;
}
