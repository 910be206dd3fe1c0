/* Issue 11, test 2: threads that come and go in waves leave nothing behind. 10 rounds; in each, 500
 * threads in waves of 50 alive together: each allocates 300 blocks of 16 B - 32 KiB (log-uniform:
 * an octave at random, then a size within it), writes every page of each, frees them in a random
 * order and waits at a barrier of its wave before it exits. After each round (every thread joined)
 * RSS is read; the plateau, the largest of rounds 2-10, may exceed the RSS at the start by at most
 * 8 MiB. Default settings (decay 1 s), and no waiting between rounds: what the exiting threads freed
 * must not have to wait for the decay timer. TA_TEST_SCALE divides the threads per round (waves stay
 * 50 strong). */
#include <pthread.h>

#include "tamalloc.h"
#include "trim_util.h"

enum { ROUNDS = 10, WAVE = 50, BLOCKS = 300 };

static pthread_barrier_t barrier;

typedef struct {
  uint64_t seed;
} job_t;

static void *worker(void *arg) {
  job_t *job = arg;
  test_rng_t rng = {job->seed};
  unsigned char *v[BLOCKS];
  for (int i = 0; i < BLOCKS; i++) {
    size_t lo = (size_t)16 << test_rng_below(&rng, 11); /* 16 B .. 16 KiB */
    size_t sz = lo + test_rng_below(&rng, lo);          /* .. 32 KiB - 1 */
    v[i] = ta_malloc(sz);
    CHECK(v[i] != NULL);
    for (size_t off = 0; off < sz; off += 4096) v[i][off] = (unsigned char)i;
    v[i][sz - 1] = (unsigned char)i;
  }
  for (int i = BLOCKS - 1; i > 0; i--) { /* Fisher-Yates */
    int j = (int)test_rng_below(&rng, (uint64_t)i + 1);
    unsigned char *t = v[i];
    v[i] = v[j];
    v[j] = t;
  }
  for (int i = 0; i < BLOCKS; i++) ta_free(v[i]);
  int rc = pthread_barrier_wait(&barrier);
  CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD);
  return NULL;
}

int main(void) {
  uint64_t seed = test_seed(11);
  long per_round = test_scale(500) / WAVE * WAVE;
  if (per_round < WAVE) per_round = WAVE;
  CHECK(pthread_barrier_init(&barrier, NULL, WAVE) == 0);
  ta_free(ta_malloc(1)); /* tamalloc's start-up is part of the baseline */
  size_t start = rss_bytes();
  size_t rss[ROUNDS], seg_resident[ROUNDS];
  static job_t jobs[WAVE];
  pthread_t t[WAVE];
  for (int r = 0; r < ROUNDS; r++) {
    for (long w = 0; w < per_round / WAVE; w++) {
      for (int i = 0; i < WAVE; i++) {
        jobs[i].seed = seed ^ ((uint64_t)r << 40) ^ ((uint64_t)w << 20) ^ (uint64_t)i;
        CHECK(pthread_create(&t[i], NULL, worker, &jobs[i]) == 0);
      }
      for (int i = 0; i < WAVE; i++) CHECK(pthread_join(t[i], NULL) == 0);
    }
    rss[r] = rss_bytes();
    ta_stats_t st;
    ta_stats_get(&st);
    seg_resident[r] = st.resident_bytes;
  }
  size_t plateau = 0;
  printf("%ld threads per round in waves of %d; rss start %zu KiB, rounds:", per_round, WAVE, start / 1024);
  for (int r = 0; r < ROUNDS; r++) {
    printf(" %zu", rss[r] / 1024);
    if (r >= 1 && rss[r] > plateau) plateau = rss[r];
  }
  printf(" KiB; plateau %zu KiB, %+ld KiB over the start (limit +%zu KiB)\n", plateau / 1024,
         ((long)plateau - (long)start) / 1024, 8 * MIB / 1024);
  fflush(stdout);
  size_t seg_plateau = 0;
  for (int r = 1; r < ROUNDS; r++)
    if (seg_resident[r] > seg_plateau) seg_plateau = seg_resident[r];
  printf("resident segment memory (ta_stats) plateau %zu KiB\n", seg_plateau / 1024);
  /* Under a sanitizer the process's RSS also grows with the sanitizer's own per-thread records, a
   * few KiB per thread ever made; tamalloc's share is what its statistics say is resident. */
  if (TA_TEST_SANITIZED)
    CHECK_MSG(seg_plateau <= 8 * MIB, "resident segment plateau %zu MiB", seg_plateau / MIB);
  else
    CHECK_MSG(plateau <= start + 8 * MIB, "plateau %zu MiB, start %zu MiB", plateau / MIB, start / MIB);
  pthread_barrier_destroy(&barrier);
  return 0;
}
