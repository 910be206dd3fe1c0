/* Workload 5, thread churn: thousands of short-lived threads, --threads at a time, each allocating a
 * few dozen blocks, freeing most and handing the rest back to the main thread, which frees them after
 * the thread is gone. Measures per-thread setup and teardown (thread caches, heaps, arena assignment)
 * and frees of blocks whose owner thread has exited. */
#include "wl.h"

#include <stdlib.h>

enum {
  BLOCKS = 64, /* blocks each thread allocates */
  KEPT = 8     /* of which it hands back this many */
};

/* What a short thread returns; allocated by it, freed by the main thread. */
typedef struct result_s {
  void *p[KEPT];      /* blocks handed back */
  uint32_t n[KEPT];   /* their sizes */
  uint64_t tag0;      /* block i carries tag0 + i */
} result_t;

typedef struct job_s {
  uint64_t seed;      /* PRNG seed and tag base of the thread */
  pthread_t thread;   /* the thread */
  result_t *result;   /* set by the thread before it exits */
} job_t;

static void *short_thread(void *arg) {
  job_t *j = arg;
  bench_rng_t rng = {j->seed};
  void *p[BLOCKS];
  uint32_t n[BLOCKS];
  uint64_t tag0 = j->seed << 8;
  for (int i = 0; i < BLOCKS; i++) {
    n[i] = (uint32_t)bench_rng_log_uniform(&rng, 16, 4096);
    p[i] = wl_malloc(n[i]);
    wl_fill(p[i], n[i], tag0 + (uint64_t)i);
  }
  result_t *res = wl_malloc(sizeof *res);
  res->tag0 = tag0;
  for (int i = 0; i < BLOCKS; i++) {
    wl_check(p[i], n[i], tag0 + (uint64_t)i, "thread_churn");
    if (i < KEPT) {
      res->p[i] = p[i];
      res->n[i] = n[i];
    } else {
      free(p[i]);
    }
  }
  j->result = res;
  return NULL;
}

int main(int argc, char **argv) {
  wl_args_t a;
  wl_init(&a, "thread_churn", 4, argc, argv);
  size_t total = wl_scaled(&a, 20000, 8);
  size_t wave = (size_t)a.threads;
  job_t *jobs = wl_malloc(sizeof(job_t) * wave);
  uint64_t seed = a.seed << 32;
  for (size_t started = 0; started < total;) {
    size_t k = total - started < wave ? total - started : wave;
    for (size_t i = 0; i < k; i++) {
      jobs[i].seed = ++seed;
      jobs[i].result = NULL;
      wl_thread_start(&jobs[i].thread, short_thread, &jobs[i]);
    }
    for (size_t i = 0; i < k; i++) {
      wl_thread_join(jobs[i].thread);
      result_t *res = jobs[i].result;
      for (int b = 0; b < KEPT; b++) {
        wl_check(res->p[b], res->n[b], res->tag0 + (uint64_t)b, "thread_churn (after exit)");
        free(res->p[b]);
      }
      free(res);
    }
    started += k;
  }
  free(jobs);
  return 0;
}
