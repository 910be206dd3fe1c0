/* Issue test 6: decay does not thrash. Freeing and allocating the same 64 MiB 1,000 times makes far
 * fewer madvise (and brk) calls than iterations: memory freed a moment ago is reused, not purged. */
#include "src/os.h"
#include "tamalloc.h"
#include "trim_util.h"

#define BLOCKS 1024 /* of 64 KiB: 64 MiB */

int main(void) {
  static void *v[BLOCKS];
  unsigned long purge0 = ta_os_calls(TA_OS_PURGE), brk0 = ta_os_calls(TA_OS_BRK);
  unsigned long mmap0 = ta_os_calls(TA_OS_MMAP);
  for (int iter = 0; iter < 1000; iter++) {
    for (int i = 0; i < BLOCKS; i++) {
      v[i] = ta_malloc(60000);
      CHECK(v[i] != NULL);
      *(volatile char *)v[i] = 1;
    }
    for (int i = 0; i < BLOCKS; i++) ta_free(v[i]);
  }
  unsigned long purges = ta_os_calls(TA_OS_PURGE) - purge0, brks = ta_os_calls(TA_OS_BRK) - brk0;
  unsigned long mmaps = ta_os_calls(TA_OS_MMAP) - mmap0;
  printf("1000 iterations: %lu madvise, %lu brk, %lu mmap calls\n", purges, brks, mmaps);
  CHECK(purges < 100);
  CHECK(brks < 100);
  CHECK(mmaps < 100);
  return 0;
}
