/* After 1 GiB of large blocks (128 KiB .. 8 MiB, every page touched) is freed, resident memory comes
 * back to within 32 MiB of where it started: `decay`, by itself within a few seconds (the runner
 * sets TAMALLOC_DECAY_MS=200: retained mappings go back after the decay time, while the program
 * only sleeps); `trim`, at once with ta_trim(0). The blocks are made and freed by several threads,
 * so the retained mappings sit in several cache shards. ta_* names only; RSS read from /proc
 * without allocating. */
#include <pthread.h>

#include "large_util.h"

#define THREADS 4
#define TOTAL ((size_t)1 << 30)
#define SLACK (32 * MIB)

typedef struct {
  unsigned char *p[1024];
  size_t n;
  uint64_t seed;
} part_t;

static part_t parts[THREADS];

static void *make(void *arg) {
  part_t *pt = arg;
  test_rng_t r = {pt->seed};
  size_t bytes = 0;
  while (bytes < TOTAL / THREADS && pt->n < 1024) {
    size_t n = ((128 * KIB) << test_rng_below(&r, 7)) + test_rng_below(&r, 4096);
    unsigned char *p = ta_malloc(n);
    CHECK(p != NULL);
    memset(p, 0x6b, n);
    pt->p[pt->n++] = p;
    bytes += n;
  }
  return NULL;
}

static void *unmake(void *arg) {
  part_t *pt = arg;
  for (size_t i = 0; i < pt->n; i++) {
    CHECK(pt->p[i][0] == 0x6b);
    ta_free(pt->p[i]);
  }
  pt->n = 0;
  return NULL;
}

static void each_thread(void *(*fn)(void *)) {
  pthread_t th[THREADS];
  for (int t = 0; t < THREADS; t++) CHECK(pthread_create(&th[t], NULL, fn, &parts[t]) == 0);
  for (int t = 0; t < THREADS; t++) CHECK(pthread_join(th[t], NULL) == 0);
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "trim";
  uint64_t seed = test_seed(1212);
  for (int t = 0; t < THREADS; t++) parts[t].seed = seed + (uint64_t)t;
  size_t before = rss_bytes();
  /* Twice: the second round meets a threshold the first one's frees raised, so its frees below the
   * threshold retain their mappings (up to the cache's limits). */
  for (int round = 0; round < 2; round++) {
    each_thread(make);
    size_t peak = rss_bytes();
    CHECK_MSG(peak >= before + TOTAL / 2, "RSS %zu MiB after allocating 1 GiB: the blocks were not touched?",
              peak / MIB);
    each_thread(unmake);
    size_t after = rss_bytes();
    fprintf(stderr, "round %d: RSS before %zu MiB, peak %zu MiB, after the frees %zu MiB, retained %ld MiB\n",
            round, before / MIB, peak / MIB, after / MIB, (long)(ta_getopt(TA_OPT_MMAP_THRESHOLD) >> 20));
  }
  size_t end;
  if (strcmp(mode, "trim") == 0) {
    CHECK(ta_trim(0) == 1 || rss_bytes() <= before + SLACK);
    end = rss_bytes();
  } else {
    CHECK(ta_getopt(TA_OPT_DECAY_MS) == 200);
    end = rss_wait_below(before + SLACK, 5000);
  }
  fprintf(stderr, "%s: RSS %zu MiB at the end (started at %zu MiB)\n", mode, end / MIB, before / MIB);
  CHECK_MSG(end <= before + SLACK, "RSS %zu MiB, more than %zu MiB above the start", end / MIB,
            (before + SLACK) / MIB);
  return 0;
}
