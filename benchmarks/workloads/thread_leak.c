/* Workload thread_leak: thousands of short threads, --threads at a time; each allocates 48 blocks of
 * 16 B – 4 KiB and frees them, and leaks 4 more of 16–256 B (never freed, as a program that forgets a
 * little per request thread). What matters is the rest of the thread's memory: an allocator that keeps a
 * dead thread's page or heap for the sake of the 4 leaked blocks grows by far more than the leak itself.
 * Reports the resident set halfway and at the end; the leaked blocks are checked at the end. */
#include "wl.h"

#include <stdlib.h>

enum {
  BLOCKS = 48, /* blocks each thread allocates and frees */
  LEAKED = 4   /* blocks each thread leaks */
};

/* One thread's leak, written by it before it exits, read by the main thread after the join. */
typedef struct leak_s {
  void *p[LEAKED];    /* the leaked blocks */
  uint16_t n[LEAKED]; /* their sizes */
} leak_t;

typedef struct job_s {
  uint64_t tag0;      /* PRNG seed; block i of the thread carries tag0 + i */
  leak_t *leak;       /* where the thread records its leak (wl_table memory) */
  pthread_t thread;
} job_t;

static void *short_thread(void *arg) {
  job_t *j = arg;
  bench_rng_t rng = {j->tag0};
  void *p[BLOCKS];
  uint16_t n[BLOCKS];
  for (int i = 0; i < BLOCKS; i++) {
    n[i] = (uint16_t)bench_rng_log_uniform(&rng, 16, 4096);
    p[i] = wl_malloc(n[i]);
    wl_fill(p[i], n[i], j->tag0 + (uint64_t)i);
  }
  for (int i = 0; i < LEAKED; i++) {
    j->leak->n[i] = (uint16_t)bench_rng_log_uniform(&rng, 16, 256);
    j->leak->p[i] = wl_malloc(j->leak->n[i]);
    wl_fill(j->leak->p[i], j->leak->n[i], j->tag0 + BLOCKS + (uint64_t)i);
  }
  for (int i = 0; i < BLOCKS; i++) {
    wl_check(p[i], n[i], j->tag0 + (uint64_t)i, "thread_leak");
    free(p[i]);
  }
  return NULL;
}

int main(int argc, char **argv) {
  wl_args_t a;
  wl_init(&a, "thread_leak", 4, argc, argv);
  size_t total = wl_scaled(&a, 20000, 16);
  size_t wave = (size_t)a.threads;
  leak_t *leaks = wl_table(sizeof(leak_t) * total);
  job_t *jobs = wl_table(sizeof(job_t) * wave);
  uint64_t tag_base = a.seed << 40;

  wl_report("rss_start_kib", bench_rss_kib());
  for (size_t started = 0; started < total;) {
    size_t k = total - started < wave ? total - started : wave;
    for (size_t i = 0; i < k; i++) {
      jobs[i].tag0 = tag_base + (started + i) * 64;
      jobs[i].leak = &leaks[started + i];
      wl_thread_start(&jobs[i].thread, short_thread, &jobs[i]);
    }
    for (size_t i = 0; i < k; i++) wl_thread_join(jobs[i].thread);
    if (started < total / 2 && started + k >= total / 2) wl_report("rss_half_kib", bench_rss_kib());
    started += k;
  }
  wl_report("rss_end_kib", bench_rss_kib());
  for (size_t t = 0; t < total; t++)
    for (int i = 0; i < LEAKED; i++)
      wl_check(leaks[t].p[i], leaks[t].n[i], tag_base + t * 64 + BLOCKS + (uint64_t)i, "thread_leak (leaked)");
  wl_free_table(jobs, sizeof(job_t) * wave);
  wl_free_table(leaks, sizeof(leak_t) * total);
  return 0;
}
