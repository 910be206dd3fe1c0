/* The profiler through the ta_* API, so that the sanitizer builds (no standard names) run its paths:
 * every block sampled (rate 1 byte), 4 threads allocate blocks of the profiler arena's classes and of
 * the mmap path, free a third of them on another thread (the profiler arena's remote frees), realloc
 * a third in place, by mremap or by a move; afterwards the profile holds the blocks still live, and
 * exactly those leave it when they are freed. */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tamalloc.h"
#include "test.h"

#define THREADS 4
#define PER 600

static char text[1 << 20];
static const char *path;
static void *slots[THREADS][PER];
static pthread_barrier_t barrier;

static size_t live_blocks(void) {
  CHECK(ta_prof_dump(path) == 0);
  int fd = open(path, O_RDONLY);
  CHECK(fd >= 0);
  ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  CHECK(n > 0);
  text[n] = '\0';
  size_t blocks, bytes;
  CHECK(sscanf(text, "heap profile: %zu: %zu [", &blocks, &bytes) == 2);
  return blocks;
}

static void *worker(void *arg) {
  int t = (int)(intptr_t)arg;
  test_rng_t r = {(uint64_t)t + 1};
  ta_free(ta_malloc(16)); /* starts this thread's countdown */
  for (int i = 0; i < PER; i++) {
    size_t n = i % 10 == 0 ? 150000 + test_rng_next(&r) % 100000 : 16 + test_rng_next(&r) % 70000;
    char *p = ta_malloc(n);
    CHECK(p != NULL);
    memset(p, t, n);
    if (i % 3 == 1) {
      size_t m = i % 2 ? n / 2 + 1 : n * 2;
      p = ta_realloc(p, m);
      CHECK(p != NULL);
      CHECK(p[m < n ? m - 1 : n - 1] == (char)t);
    }
    slots[t][i] = p;
  }
  pthread_barrier_wait(&barrier);
  /* a third of the neighbour's blocks: frees from another thread */
  for (int i = 0; i < PER; i += 3) {
    ta_free(slots[(t + 1) % THREADS][i]);
    slots[(t + 1) % THREADS][i] = NULL;
  }
  return NULL;
}

int main(int argc, char **argv) {
  CHECK(argc == 2);
  path = argv[1];
  CHECK(ta_mallopt(TA_OPT_PROF_SAMPLE, 1) == 1);
  CHECK(ta_mallopt(TA_OPT_PROF, 1) == 1);
  CHECK(pthread_barrier_init(&barrier, NULL, THREADS) == 0);
  pthread_t th[THREADS];
  for (int t = 0; t < THREADS; t++) CHECK(pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t) == 0);
  for (int t = 0; t < THREADS; t++) CHECK(pthread_join(th[t], NULL) == 0);
  size_t left = 0;
  for (int t = 0; t < THREADS; t++)
    for (int i = 0; i < PER; i++) left += slots[t][i] != NULL;
  /* with the standard names tamalloc's, glibc's thread start-up allocates a few sampled blocks that
   * stay live (its per-thread state, kept for reuse): counted, not the test's */
  size_t all = live_blocks();
  CHECK_MSG(all >= left && all <= left + 4 * THREADS, "%zu sampled blocks, %zu live", all, left);
  for (int t = 0; t < THREADS; t++)
    for (int i = 0; i < PER; i++) ta_free(slots[t][i]);
  CHECK_EQ_SZ(live_blocks(), all - left);
  CHECK(ta_mallopt(TA_OPT_PROF, 0) == 1);
  return 0;
}
