/* A thread that allocates one small block of each class makes resident at most one OS page per
 * class (plus the segment header): a span is carved, its free-list links written, one OS page at a
 * time, so a class a thread barely uses costs it one page, not two. Short threads, each with its
 * own arena, pay this per class they touch (thread_churn, larson: peak RSS above glibc's). Read
 * from ta_stats (mincore of the segments), in a fresh thread whose arena maps a fresh segment. */
#include <pthread.h>
#include <stdbool.h>

#include "tamalloc.h"
#include "trim_util.h"

enum { MAX_SIZE = 2048, MAX_CLASSES = 128 };

static void *worker(void *arg) {
  size_t *out = arg;
  static void *blocks[MAX_SIZE / 16];
  size_t sizes[MAX_CLASSES], classes = 0, n = 0;
  ta_stats_t st;
  ta_free(ta_malloc(MAX_SIZE + 1)); /* the arena and its segment, with a class none of those below share */
  ta_stats_get(&st);
  size_t before = st.resident_bytes;
  for (size_t sz = 16; sz <= MAX_SIZE; sz += 16) {
    void *p = ta_malloc(sz);
    CHECK(p != NULL);
    size_t u = ta_usable_size(p);
    bool seen = false;
    for (size_t i = 0; i < classes && !seen; i++) seen = sizes[i] == u;
    if (seen) { /* the class has its block: this one goes back where it came from */
      ta_free(p);
      continue;
    }
    CHECK(classes < MAX_CLASSES);
    sizes[classes++] = u;
    blocks[n++] = p;
  }
  ta_stats_get(&st);
  out[0] = st.resident_bytes - before;
  out[1] = classes;
  for (size_t i = 0; i < n; i++) ta_free(blocks[i]);
  return NULL;
}

int main(void) {
  ta_free(ta_malloc(1));
  size_t out[2];
  pthread_t t;
  CHECK(pthread_create(&t, NULL, worker, out) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  size_t limit = out[1] * 4096 + 8192; /* a page per class, and the descriptors' page */
  printf("%zu classes of 16-%d B, one block each: %zu KiB made resident (limit %zu KiB)\n", out[1], MAX_SIZE,
         out[0] / 1024, limit / 1024);
  CHECK_MSG(out[0] <= limit, "%zu KiB resident for %zu classes", out[0] / 1024, out[1]);
  return 0;
}
