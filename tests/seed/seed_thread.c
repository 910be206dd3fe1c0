/* Seed behaviour 4: a second thread's small blocks come from its own arena, whose segments are
 * mmapped: they lie outside [heap], in anonymous memory, while the main thread's stay in [heap].
 * Standard names; override builds only. */
#include <pthread.h>
#include <stdlib.h>

#include "maps.h"
#include "tamalloc.h"

static const size_t sizes[] = {1, 16, 40, 64, 100, 1000, 4096, 10000, 65536, (128 << 10) - 1};
#define N_SIZES (sizeof sizes / sizeof sizes[0])

static void *thread_blocks[N_SIZES];

static void *second_thread(void *arg) {
  (void)arg;
  for (size_t i = 0; i < N_SIZES; i++) {
    thread_blocks[i] = malloc(sizes[i]);
    CHECK(thread_blocks[i] != NULL);
    memset(thread_blocks[i], 0x7e, sizes[i]);
  }
  heap_t h = heap_now();
  CHECK(h.exists); /* the main thread's arena made it */
  for (size_t i = 0; i < N_SIZES; i++) {
    void *p = thread_blocks[i];
    CHECK(ta_owns(p) == 1);
    CHECK_MSG(!in_heap(&h, p), "second thread: malloc(%zu) = %p is in [heap] %#lx-%#lx", sizes[i], p,
              (unsigned long)h.lo, (unsigned long)h.hi);
    map_t m;
    CHECK_MSG(maps_find((uintptr_t)p, &m), "second thread: malloc(%zu) = %p is in no mapping", sizes[i], p);
    CHECK_MSG(map_is_anon(&m), "second thread: malloc(%zu) = %p is in '%s', not anonymous memory", sizes[i], p,
              m.name);
  }
  for (size_t i = 0; i < N_SIZES; i += 2) free(thread_blocks[i]); /* the rest: main frees them */
  return NULL;
}

int main(void) {
  void *mine[N_SIZES];
  for (size_t i = 0; i < N_SIZES; i++) {
    mine[i] = malloc(sizes[i]);
    CHECK(mine[i] != NULL);
  }
  heap_t h = heap_now();
  for (size_t i = 0; i < N_SIZES; i++)
    CHECK_MSG(in_heap(&h, mine[i]), "main thread: malloc(%zu) = %p is not in [heap]", sizes[i], mine[i]);

  pthread_t th;
  CHECK(pthread_create(&th, NULL, second_thread, NULL) == 0);
  CHECK(pthread_join(th, NULL) == 0);
  for (size_t i = 1; i < N_SIZES; i += 2) {
    const unsigned char *b = thread_blocks[i];
    CHECK(b[0] == 0x7e && b[sizes[i] - 1] == 0x7e);
    free(thread_blocks[i]);
  }
  for (size_t i = 0; i < N_SIZES; i++) free(mine[i]);
  return 0;
}
