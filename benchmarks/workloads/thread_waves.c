/* Workload thread_waves: 10 rounds of 500 short threads, started in waves of 50; each thread allocates
 * 300 blocks of 16 B – 32 KiB (log-uniform), touching every page, frees them in random order, then waits
 * at a barrier until all 50 of its wave have done the same, and exits. Reports the resident set after
 * each round (rss_round01 ...) and the plateau, the largest of rounds 2–10: what the process settles
 * at when thread after thread leaves its freed memory behind. An allocator that reuses a dead thread's
 * memory stays flat; one that strands it grows round after round. */
#include "wl.h"

#include <stdio.h>
#include <stdlib.h>

enum {
  ROUNDS = 10,
  WAVE = 50,       /* threads alive at once, unless --threads */
  BLOCKS = 300,    /* blocks per thread */
  MIN_SIZE = 16,
  MAX_SIZE = 32 << 10
};

typedef struct job_s {
  uint64_t tag0;              /* PRNG seed; block i carries tag0 + i */
  pthread_barrier_t *barrier; /* the wave's */
  pthread_t thread;
} job_t;

static void *wave_thread(void *arg) {
  job_t *j = arg;
  bench_rng_t rng = {j->tag0};
  void *p[BLOCKS];
  uint32_t n[BLOCKS];
  uint16_t order[BLOCKS];
  for (int i = 0; i < BLOCKS; i++) {
    n[i] = (uint32_t)bench_rng_log_uniform(&rng, MIN_SIZE, MAX_SIZE);
    p[i] = wl_malloc(n[i]);
    wl_fill(p[i], n[i], j->tag0 + (uint64_t)i);
    order[i] = (uint16_t)i;
  }
  for (int i = BLOCKS - 1; i > 0; i--) { /* Fisher–Yates: the order of the frees */
    int k = (int)bench_rng_below(&rng, (uint64_t)i + 1);
    uint16_t t = order[i];
    order[i] = order[k];
    order[k] = t;
  }
  for (int i = 0; i < BLOCKS; i++) {
    int b = order[i];
    wl_check(p[b], n[b], j->tag0 + (uint64_t)b, "thread_waves");
    free(p[b]);
  }
  pthread_barrier_wait(j->barrier);
  return NULL;
}

int main(int argc, char **argv) {
  wl_args_t a;
  wl_init(&a, "thread_waves", WAVE, argc, argv);
  size_t waves = wl_scaled(&a, 500.0 / WAVE, 1); /* per round */
  unsigned wave = (unsigned)a.threads;
  job_t *jobs = wl_table(sizeof(job_t) * wave);
  pthread_barrier_t barrier;
  if (pthread_barrier_init(&barrier, NULL, wave) != 0) wl_fail("pthread_barrier_init failed");
  uint64_t tag = a.seed << 40;
  long plateau = 0;

  for (int r = 1; r <= ROUNDS; r++) {
    for (size_t w = 0; w < waves; w++) {
      for (unsigned i = 0; i < wave; i++) {
        jobs[i].tag0 = (tag += 1024);
        jobs[i].barrier = &barrier;
        wl_thread_start(&jobs[i].thread, wave_thread, &jobs[i]);
      }
      for (unsigned i = 0; i < wave; i++) wl_thread_join(jobs[i].thread);
    }
    long rss = bench_rss_kib();
    char key[32];
    snprintf(key, sizeof key, "rss_round%02d_kib", r);
    wl_report(key, rss);
    if (r >= 2 && rss > plateau) plateau = rss;
  }
  wl_report("rss_plateau_kib", plateau);
  pthread_barrier_destroy(&barrier);
  wl_free_table(jobs, sizeof(job_t) * wave);
  return 0;
}
