/* Blocks whose OS pages a purge released come back into use. 200,000 blocks of 64-4096 B, a random
 * 90% freed, ta_trim(0) (which releases the free OS pages inside partly used pages, taking their
 * blocks off the lists) from this thread (`own`: the owner's deep purge) or from another thread while
 * this one waits (`collector`: the collector, whose first block of a list may become a ghost head);
 * then as many blocks of the same sizes again. The segments must not grow (the released blocks are
 * listed again, not stranded until their whole span empties), no new block may overlap a survivor,
 * and every survivor keeps its contents. */
#include <pthread.h>

#include "tamalloc.h"
#include "trim_util.h"

#define N 200000

static void *trim_thread(void *arg) {
  (void)arg;
  ta_trim(0);
  return NULL;
}

static void fill(unsigned char *p, size_t n, size_t tag) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(tag * 31 + i);
}
static int intact(const unsigned char *p, size_t n, size_t tag) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(tag * 31 + i)) return 0;
  return 1;
}

int main(int argc, char **argv) {
  CHECK(argc == 2);
  int collector = strcmp(argv[1], "collector") == 0;
  CHECK(collector || strcmp(argv[1], "own") == 0);
  test_rng_t rng = {test_seed(17)};
  size_t n = (size_t)test_scale(N);
  unsigned char **v = trim_map(n * sizeof *v, 0);
  size_t *sz = trim_map(n * sizeof *sz, 0);
  unsigned char *live = trim_map(n, 0);
  for (size_t i = 0; i < n; i++) {
    sz[i] = 64 + test_rng_below(&rng, 4096 - 64 + 1);
    v[i] = ta_malloc(sz[i]);
    CHECK(v[i] != NULL);
    fill(v[i], sz[i], i);
  }
  for (size_t i = 0; i < n; i++) {
    live[i] = test_rng_below(&rng, 10) == 0;
    if (!live[i]) ta_free(v[i]);
  }
  ta_stats_t before, after;
  ta_stats_get(&before);
  if (collector) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, trim_thread, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
  } else {
    CHECK(ta_trim(0) == 1);
  }
  ta_stats_t trimmed;
  ta_stats_get(&trimmed);
  /* Allocate the freed blocks' sizes again, this thread, as the owner. */
  for (size_t i = 0; i < n; i++) {
    if (live[i]) continue;
    v[i] = ta_malloc(sz[i]);
    CHECK(v[i] != NULL);
    fill(v[i], sz[i], i + n);
  }
  ta_stats_get(&after);
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) bad += !intact(v[i], sz[i], live[i] ? i : i + n);
  printf("%s: segments %zu before the trim, %zu after it, %zu after re-allocating; resident %zu -> %zu MiB; "
         "%zu damaged blocks\n",
         argv[1], before.segments, trimmed.segments, after.segments, trimmed.resident_bytes / MIB,
         after.resident_bytes / MIB, bad);
  CHECK_MSG(trimmed.purged_bytes > before.purged_bytes, "the trim released nothing inside live pages");
  CHECK(bad == 0);
  CHECK_MSG(after.segments <= before.segments, "re-allocating the freed sizes needed %zu new segments",
            after.segments - before.segments);
  CHECK(ta_validate() == 0);
  for (size_t i = 0; i < n; i++) ta_free(v[i]);
  return 0;
}
