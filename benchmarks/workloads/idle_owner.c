/* Workload idle_owner: thread A allocates 256 MiB of 1000-byte blocks and then waits, alive but idle,
 * on a condition variable; the main thread frees every block (each a free of a block whose owner is
 * still alive and will never allocate again), sleeps 3 s, and reports the resident set; then calls
 * malloc_trim(0) and reports it again, then lets A exit. Shows whether memory freed into an idle
 * thread's heap comes home without the owner's help: after a wait, and when asked. */
#include "wl.h"

#include <stdlib.h>

enum { BLOCK = 1000 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int allocated, release; /* under lock: A has filled the table; A may exit */

typedef struct owner_s {
  void **p;      /* the blocks, in wl_table memory */
  size_t n;      /* how many */
  uint64_t tag0; /* block i carries tag0 + i */
} owner_t;

static void *owner_thread(void *arg) {
  owner_t *o = arg;
  for (size_t i = 0; i < o->n; i++) {
    o->p[i] = wl_malloc(BLOCK);
    wl_fill(o->p[i], BLOCK, o->tag0 + i);
  }
  pthread_mutex_lock(&lock);
  allocated = 1;
  pthread_cond_broadcast(&cond);
  while (!release) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  return NULL;
}

int main(int argc, char **argv) {
  wl_args_t a;
  wl_init(&a, "idle_owner", 1, argc, argv);
  owner_t o = {.n = wl_scaled(&a, 256.0 * 1024 * 1024, 1 << 20) / BLOCK, .tag0 = a.seed << 40};
  o.p = wl_table(o.n * sizeof *o.p);

  pthread_t t;
  wl_thread_start(&t, owner_thread, &o);
  pthread_mutex_lock(&lock);
  while (!allocated) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  wl_report("rss_peak_kib", bench_rss_kib());

  for (size_t i = 0; i < o.n; i++) {
    wl_check(o.p[i], BLOCK, o.tag0 + i, "idle_owner");
    free(o.p[i]);
  }
  wl_report("rss_after_free_kib", bench_rss_kib());
  wl_sleep(3.0 * a.scale);
  wl_report("rss_after_sleep_kib", bench_rss_kib());
  bench_trim();
  wl_report("rss_after_trim_kib", bench_rss_kib());

  pthread_mutex_lock(&lock);
  release = 1;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
  wl_thread_join(t);
  wl_free_table(o.p, o.n * sizeof *o.p);
  return 0;
}
