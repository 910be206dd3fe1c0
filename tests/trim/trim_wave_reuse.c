/* Issue 11: inside a wave, threads reuse what finished threads of the same wave freed. 50 threads
 * are alive together; one at a time (a ticket passed along) each allocates 300 blocks of 16 B -
 * 32 KiB (~1.3 MB), writes every page, frees them all and waits at a barrier. With the 50 threads
 * still alive, the resident set may exceed the start by at most 16 MiB: the first few threads own
 * arenas, the rest start on a shared arena (probation, arenas/bind.c) and take the blocks the
 * threads before them freed. With an arena per thread from its first malloc the wave holds every
 * thread's pages (~65 MiB). The process runs on one CPU (affinity, set before any thread starts), so
 * the number of threads that bind at once is the same on every machine. */
#include <pthread.h>
#include <sched.h>

#include "tamalloc.h"
#include "trim_util.h"

enum { WAVE = 50, BLOCKS = 300 };

static pthread_barrier_t done, go;
static pthread_mutex_t turn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_cond = PTHREAD_COND_INITIALIZER;
static int turn;
static size_t touched[WAVE];

static void *worker(void *arg) {
  int me = (int)(intptr_t)arg;
  pthread_mutex_lock(&turn_lock);
  while (turn != me) pthread_cond_wait(&turn_cond, &turn_lock);
  pthread_mutex_unlock(&turn_lock);
  test_rng_t rng = {0x9e3779b97f4a7c15u ^ (uint64_t)me};
  unsigned char *v[BLOCKS];
  for (int i = 0; i < BLOCKS; i++) {
    size_t lo = (size_t)16 << test_rng_below(&rng, 11);
    size_t sz = lo + test_rng_below(&rng, lo);
    v[i] = ta_malloc(sz);
    CHECK(v[i] != NULL);
    for (size_t off = 0; off < sz; off += 4096) v[i][off] = (unsigned char)i;
    v[i][sz - 1] = (unsigned char)i;
    touched[me] += sz;
  }
  for (int i = 0; i < BLOCKS; i++) {
    CHECK(v[i][0] == (unsigned char)i);
    ta_free(v[i]);
  }
  pthread_mutex_lock(&turn_lock);
  turn++;
  pthread_cond_broadcast(&turn_cond);
  pthread_mutex_unlock(&turn_lock);
  int rc = pthread_barrier_wait(&done);
  CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD);
  rc = pthread_barrier_wait(&go);
  CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD);
  return NULL;
}

int main(void) {
  test_pin_one_cpu();
  CHECK(pthread_barrier_init(&done, NULL, WAVE + 1) == 0);
  CHECK(pthread_barrier_init(&go, NULL, WAVE + 1) == 0);
  ta_free(ta_malloc(1));
  size_t start = rss_bytes();
  ta_stats_t st;
  ta_stats_get(&st);
  size_t seg_start = st.resident_bytes;
  pthread_t t[WAVE];
  for (int i = 0; i < WAVE; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
  int rc = pthread_barrier_wait(&done);
  CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD);
  size_t rss = rss_bytes();
  ta_stats_get(&st);
  size_t seg = st.resident_bytes;
  rc = pthread_barrier_wait(&go);
  CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD);
  size_t sum = 0;
  for (int i = 0; i < WAVE; i++) {
    CHECK(pthread_join(t[i], NULL) == 0);
    sum += touched[i];
  }
  printf("%d threads alive, %zu KiB allocated by each on average; rss %+ld KiB over the start, resident "
         "segments %+ld KiB (limit +%zu KiB)\n",
         WAVE, sum / WAVE / 1024, ((long)rss - (long)start) / 1024, ((long)seg - (long)seg_start) / 1024,
         16 * MIB / 1024);
  /* Under a sanitizer RSS also holds its per-thread records: tamalloc's statistics tell its share. */
  if (TA_TEST_SANITIZED)
    CHECK_MSG(seg <= seg_start + 16 * MIB, "resident segments %zu MiB over the start", (seg - seg_start) / MIB);
  else
    CHECK_MSG(rss <= start + 16 * MIB, "rss %zu MiB over the start", (rss - start) / MIB);
  return 0;
}
