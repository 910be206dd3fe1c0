/* Workload 4, larson-style server: each of --threads lanes owns a table of blocks that a thread churns
 * (free a random slot, allocate a new size into it); every so often the thread hands the table to a
 * new thread and exits, as a server's connection threads come and go. The new thread frees blocks its
 * dead predecessor allocated, which exercises orphaned per-thread state. */
#include "wl.h"

#include <stdlib.h>

enum {
  SLOTS = 2000,          /* blocks per lane */
  OPS_PER_THREAD = 10000 /* replacements before a thread hands over and exits */
};

/* A lane's state passes from thread to thread; only the current thread touches it. */
typedef struct lane_s {
  void *p[SLOTS];      /* live blocks */
  uint64_t tag[SLOTS]; /* their pattern tags */
  uint32_t n[SLOTS];   /* their sizes in bytes */
  bench_rng_t rng;     /* the lane's PRNG */
  uint64_t next_tag;   /* last tag used */
  size_t generations;  /* threads still to start after the current one */
  pthread_t prev;      /* the thread that handed over, joined by its successor */
  int has_prev;        /* 0 while the lane's first thread runs */
  pthread_t last;      /* the lane's final thread; valid once `done` is set */
  int done;            /* set under done_lock when the final thread finishes its work */
} lane_t;

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;

static uint32_t lane_size(uint64_t r) {
  uint32_t n = 16u << (r % 7);            /* 16 B .. 1 KiB, power-of-two classes ... */
  return n + (uint32_t)(r >> 44) % n;     /* ... spread within each class */
}

static void lane_churn(lane_t *l) {
  for (int k = 0; k < OPS_PER_THREAD; k++) {
    uint64_t r = bench_rng_next(&l->rng);
    size_t i = (r >> 20) % SLOTS;
    wl_check(l->p[i], l->n[i], l->tag[i], "larson");
    free(l->p[i]);
    l->n[i] = lane_size(r);
    l->tag[i] = ++l->next_tag;
    l->p[i] = wl_malloc(l->n[i]);
    wl_fill(l->p[i], l->n[i], l->tag[i]);
  }
}

static void *lane_thread(void *arg) {
  lane_t *l = arg;
  if (l->has_prev) wl_thread_join(l->prev);
  lane_churn(l);
  if (l->generations > 0) {
    l->generations--;
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
  wl_init(&a, "larson", 4, argc, argv);
  size_t total_ops = wl_scaled(&a, 16e6, 1);
  size_t lanes = (size_t)a.threads;
  size_t gens = total_ops / OPS_PER_THREAD / lanes;
  if (gens < 2) gens = 2; /* at least one hand-over per lane */

  lane_t *lane = wl_table(sizeof(lane_t) * lanes);
  for (size_t li = 0; li < lanes; li++) {
    lane_t *l = &lane[li];
    l->rng.s = a.seed * 7919 + li;
    l->next_tag = (a.seed + li) << 40;
    l->generations = gens - 1;
    for (size_t i = 0; i < SLOTS; i++) {
      l->n[i] = lane_size(bench_rng_next(&l->rng));
      l->tag[i] = ++l->next_tag;
      l->p[i] = wl_malloc(l->n[i]);
      wl_fill(l->p[i], l->n[i], l->tag[i]);
    }
  }
  for (size_t li = 0; li < lanes; li++) {
    pthread_t t;
    wl_thread_start(&t, lane_thread, &lane[li]);
  }
  for (size_t li = 0; li < lanes; li++) {
    pthread_mutex_lock(&done_lock);
    while (!lane[li].done) pthread_cond_wait(&done_cond, &done_lock);
    pthread_mutex_unlock(&done_lock);
    wl_thread_join(lane[li].last);
    for (size_t i = 0; i < SLOTS; i++) {
      wl_check(lane[li].p[i], lane[li].n[i], lane[li].tag[i], "larson");
      free(lane[li].p[i]);
    }
  }
  wl_free_table(lane, sizeof(lane_t) * lanes);
  return 0;
}
