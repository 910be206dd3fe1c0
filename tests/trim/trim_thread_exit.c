/* Issue test 5: a thread allocates 256 MiB, frees it and exits; no thread adopts its arena, yet its
 * memory goes back on schedule (the pooled arena is trimmed like any other). */
#include <pthread.h>

#include "tamalloc.h"
#include "trim_util.h"

static void *worker(void *arg) {
  (void)arg;
  size_t n = 256 * MIB / 1024;
  void **v = ta_malloc(n * sizeof *v);
  CHECK(v != NULL);
  for (size_t i = 0; i < n; i++) {
    v[i] = ta_malloc(1000);
    CHECK(v[i] != NULL);
    memset(v[i], 3, 1000);
  }
  for (size_t i = 0; i < n; i++) ta_free(v[i]);
  ta_free(v);
  return NULL;
}

int main(void) {
  size_t before = rss_bytes();
  pthread_t t;
  CHECK(pthread_create(&t, NULL, worker, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  size_t after_exit = rss_bytes();
  size_t end = rss_wait_below(before + 16 * MIB, 10000);
  printf("rss before %zu MiB, at thread exit %zu MiB, later %zu MiB\n", before / MIB, after_exit / MIB, end / MIB);
  CHECK(end <= before + 16 * MIB);
  return 0;
}
