/* Issue test 6: decay does not thrash. Freeing and allocating the same 64 MiB 1,000 times makes far
 * fewer madvise (and brk) calls than iterations: memory freed a moment ago is reused, not purged.
 * Issue 11 tightens it: memory that a big free gives back at once must not make the loop thrash
 * either, so the madvise and munmap calls together are at most a few dozen (48). Run by the main
 * thread (its heap is on brk) and, with `thread`, by a second thread, whose heap is mmap segments:
 * there a release is an madvise or a munmap, never a brk. (The munmap count also holds the trims of
 * the over-mapped segment mappings, two at most per segment: 18 for this heap today.) */
#include <pthread.h>

#include "src/os.h"
#include "tamalloc.h"
#include "trim_util.h"

#define BLOCKS 1024 /* of 64 KiB: 64 MiB */

static void *loop(void *arg) {
  (void)arg;
  static void *v[BLOCKS];
  for (int iter = 0; iter < 1000; iter++) {
    for (int i = 0; i < BLOCKS; i++) {
      v[i] = ta_malloc(60000);
      CHECK(v[i] != NULL);
      *(volatile char *)v[i] = 1;
    }
    for (int i = 0; i < BLOCKS; i++) ta_free(v[i]);
  }
  return NULL;
}

int main(int argc, char **argv) {
  int threaded = argc > 1 && strcmp(argv[1], "thread") == 0;
  ta_free(ta_malloc(1)); /* main owns the brk arena, so a second thread's heap is mmap segments */
  unsigned long purge0 = ta_os_calls(TA_OS_PURGE), brk0 = ta_os_calls(TA_OS_BRK);
  unsigned long mmap0 = ta_os_calls(TA_OS_MMAP), munmap0 = ta_os_calls(TA_OS_MUNMAP);
  if (threaded) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, loop, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
  } else {
    loop(NULL);
  }
  unsigned long purges = ta_os_calls(TA_OS_PURGE) - purge0, brks = ta_os_calls(TA_OS_BRK) - brk0;
  unsigned long mmaps = ta_os_calls(TA_OS_MMAP) - mmap0, munmaps = ta_os_calls(TA_OS_MUNMAP) - munmap0;
  printf("%s, 1000 iterations: %lu madvise, %lu munmap, %lu brk, %lu mmap calls (madvise + munmap limit 48)\n",
         threaded ? "second thread" : "main thread", purges, munmaps, brks, mmaps);
  CHECK(purges < 100);
  CHECK_MSG(purges + munmaps <= 48, "%lu madvise + %lu munmap calls", purges, munmaps);
  CHECK(brks < 100);
  CHECK(mmaps < 100);
  return 0;
}
