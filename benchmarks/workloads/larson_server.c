/* Workload larson_server: Larson's server benchmark in the configuration the public allocator suites
 * run (`larson 5 8 1000 5000 100 4141 2`): 2 threads each own 5000 slots of 8–1000 B blocks, all
 * allocated by the main thread; a thread replaces random slots (free the block, allocate a new size)
 * and after 100 rounds (a round = as many replacements as it has slots) hands its live blocks to a new
 * thread and exits. The run is bounded by time, 5 s at full scale, and scored by throughput: the
 * replacements per second, reported as throughput_ops_per_s. */
#include "wl.h"

#include <stdatomic.h>
#include <stdlib.h>

enum {
  SLOTS = 5000,        /* blocks per thread */
  ROUNDS = 100,        /* rounds of replacement before a thread hands over */
  MIN_SIZE = 8,
  MAX_SIZE = 1000,
  STOP_EVERY = 256     /* replacements between looks at the stop flag */
};

/* One thread's blocks, passed from thread to thread; only the current thread touches it. */
typedef struct lane_s {
  void *p[SLOTS];      /* live blocks */
  uint64_t tag[SLOTS]; /* their pattern tags */
  uint16_t n[SLOTS];   /* their sizes in bytes */
  bench_rng_t rng;     /* the lane's PRNG */
  uint64_t next_tag;   /* last tag used */
  uint64_t ops;        /* replacements done by all the lane's threads */
  uint64_t threads;    /* threads the lane has had */
  pthread_t prev;      /* the thread that handed over, joined by its successor */
  int has_prev;        /* 0 while the lane's first thread runs */
  pthread_t last;      /* the lane's final thread; valid once `done` is set */
  int done;            /* set under done_lock when the final thread stops */
} lane_t;

static atomic_int stop;
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;

static void lane_set(lane_t *l, size_t i) {
  l->n[i] = (uint16_t)(MIN_SIZE + bench_rng_below(&l->rng, MAX_SIZE - MIN_SIZE + 1));
  l->tag[i] = ++l->next_tag;
  l->p[i] = wl_malloc(l->n[i]);
  wl_fill(l->p[i], l->n[i], l->tag[i]);
}

static void *lane_thread(void *arg) {
  lane_t *l = arg;
  if (l->has_prev) wl_thread_join(l->prev);
  l->threads++;
  int stopped = 0;
  for (size_t k = 0; k < (size_t)ROUNDS * SLOTS && !stopped; k++) {
    size_t i = bench_rng_below(&l->rng, SLOTS);
    wl_check(l->p[i], l->n[i], l->tag[i], "larson_server");
    free(l->p[i]);
    lane_set(l, i);
    l->ops++;
    if (k % STOP_EVERY == STOP_EVERY - 1) stopped = atomic_load_explicit(&stop, memory_order_relaxed);
  }
  if (!stopped) {
    l->prev = pthread_self();
    l->has_prev = 1;
    pthread_t next;
    wl_thread_start(&next, lane_thread, l); /* pthread_create publishes the lane to the successor */
    return NULL;
  }
  pthread_mutex_lock(&done_lock);
  l->last = pthread_self();
  l->done = 1;
  pthread_cond_broadcast(&done_cond);
  pthread_mutex_unlock(&done_lock);
  return NULL;
}

int main(int argc, char **argv) {
  wl_args_t a;
  wl_init(&a, "larson_server", 2, argc, argv);
  double seconds = 5.0 * a.scale;
  size_t lanes = (size_t)a.threads;

  lane_t *lane = wl_table(sizeof(lane_t) * lanes);
  for (size_t li = 0; li < lanes; li++) {
    lane[li].rng.s = 4141 * a.seed + li;
    lane[li].next_tag = (a.seed + li) << 40;
    for (size_t i = 0; i < SLOTS; i++) lane_set(&lane[li], i);
  }
  double t0 = wl_now();
  for (size_t li = 0; li < lanes; li++) {
    pthread_t t;
    wl_thread_start(&t, lane_thread, &lane[li]);
  }
  wl_sleep(seconds);
  atomic_store(&stop, 1);
  uint64_t ops = 0, threads = 0;
  for (size_t li = 0; li < lanes; li++) {
    pthread_mutex_lock(&done_lock);
    while (!lane[li].done) pthread_cond_wait(&done_cond, &done_lock);
    pthread_mutex_unlock(&done_lock);
    wl_thread_join(lane[li].last);
    ops += lane[li].ops;
    threads += lane[li].threads;
  }
  double elapsed = wl_now() - t0;
  wl_report("throughput_ops_per_s", (long)((double)ops / elapsed));
  wl_report("threads", (long)threads);
  wl_report("rss_end_kib", bench_rss_kib());
  for (size_t li = 0; li < lanes; li++)
    for (size_t i = 0; i < SLOTS; i++) {
      wl_check(lane[li].p[i], lane[li].n[i], lane[li].tag[i], "larson_server");
      free(lane[li].p[i]);
    }
  wl_free_table(lane, sizeof(lane_t) * lanes);
  return 0;
}
