/* The adaptive mmap threshold after large frees (src/config.c, src/large.c), in a process that never
 * set it:
 *  - `rule`: a freed mapping within the size classes raises the threshold to its own size, as glibc
 *    does; one past the largest class (1 MiB) raises it to the most it adapts to (32 MiB).
 *  - `growing`: after one such free, blocks of growing sizes (3 .. 21 MiB, each a new largest) are
 *    made, touched whole and freed: each is made of the pages the one before it left (no munmap of a
 *    block, and page faults for about the largest block only, not for every block). Under glibc's
 *    rule each was above the threshold, a fresh mapping unmapped on free: 50 MiB faulted in.
 * ta_* names only, so it runs in sanitizer builds too. */
#include <sys/resource.h>

#include "large_util.h"
#include "src/config.h"
#include "src/os.h"

static long faults(void) {
  struct rusage ru;
  CHECK(getrusage(RUSAGE_SELF, &ru) == 0);
  return ru.ru_minflt;
}

/* A block of n bytes, written whole and freed. */
static void touch_free(size_t n, uint32_t tag) {
  unsigned char *p = ta_malloc(n);
  CHECK(p != NULL);
  pat_fill(p, tag, 0, n);
  CHECK(pat_check(p, tag, 0, n) == n);
  ta_free(p);
}

static void rule(void) {
  CHECK_EQ_SZ((size_t)ta_getopt(TA_OPT_MMAP_THRESHOLD), TA_MMAP_THRESHOLD_DEFAULT);
  /* A mapping of 1 MiB: usable 1 MiB - 16, within the classes. */
  touch_free(MIB - 32, 1);
  CHECK_EQ_SZ((size_t)ta_getopt(TA_OPT_MMAP_THRESHOLD), MIB - 16);
  /* A mapping of 1 MiB + 4 KiB: past the largest class. */
  touch_free(MIB + 1, 2);
  CHECK_EQ_SZ((size_t)ta_getopt(TA_OPT_MMAP_THRESHOLD), TA_MMAP_THRESHOLD_MAX);
  /* A block above the most it adapts to raises nothing, and is still a mapping given back. */
  unsigned long unmaps = ta_os_calls(TA_OS_MUNMAP);
  touch_free(TA_MMAP_THRESHOLD_MAX + 1, 3);
  CHECK(ta_os_calls(TA_OS_MUNMAP) > unmaps);
  CHECK_EQ_SZ((size_t)ta_getopt(TA_OPT_MMAP_THRESHOLD), TA_MMAP_THRESHOLD_MAX);
  printf("rule: 1 MiB - 16 -> itself, 1 MiB + 4080 -> %zu\n", TA_MMAP_THRESHOLD_MAX);
}

static void growing(void) {
  CHECK(ta_mallopt(TA_OPT_DECAY_MS, -1) == 1); /* retained pages wait: no trim in between */
  touch_free(2 * MIB, 1);                       /* a mapping of its own; its free adapts */
  static const size_t sizes[] = {3 * MIB, 5 * MIB, 8 * MIB, 13 * MIB, 21 * MIB};
  size_t total = 0;
  unsigned long unmaps = ta_os_calls(TA_OS_MUNMAP);
  long f0 = faults();
  for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    touch_free(sizes[i], 10 + i);
    total += sizes[i];
  }
  long f = faults() - f0;
  unsigned long u = ta_os_calls(TA_OS_MUNMAP) - unmaps;
  fprintf(stderr, "growing: %zu MiB touched in 5 blocks: %ld page faults, %lu munmap calls\n", total / MIB, f, u);
  CHECK_MSG(u == 0, "%lu munmap calls: a freed block's pages were given back, not kept for the next", u);
#ifndef __SANITIZE_THREAD__ /* its shadow faults in with the memory touched */
  /* The largest block's pages (21 MiB) and AddressSanitizer's shadow of what is touched (an eighth
   * of 50 MiB) fit; faulting every block in (50 MiB) does not. */
  size_t bound = (21 * MIB + total / 8 + 2 * MIB) / 4096;
  CHECK_MSG(f < (long)bound, "%ld page faults for %zu MiB touched, want under %zu: the blocks did not reuse pages", f,
            total / MIB, bound);
#endif
  printf("growing: %ld page faults, %lu munmaps\n", f, u);
}

int main(int argc, char **argv) {
  return TEST_RUN_MODES(argc, argv, {"rule", rule}, {"growing", growing});
}
