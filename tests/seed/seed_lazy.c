/* Seed behaviour 3: a 512 MiB malloc costs address space, not memory: the resident size rises by less
 * than 1 MiB until the block is touched, by about 512 MiB once it is (memset), and falls back when it
 * is freed. Standard names; override builds only. */
#include <stdlib.h>

#include "maps.h"
#include "tamalloc.h"

#define MIB ((size_t)1 << 20)
#define BIG (512 * MIB)

/* With transparent huge pages always on, touching the header may fault in one 2 MiB page. */
static size_t untouched_allowance(void) {
  static char thp[256];
  int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return MIB;
  ssize_t k = read(fd, thp, sizeof thp - 1);
  close(fd);
  thp[k > 0 ? k : 0] = '\0';
  return strstr(thp, "[always]") ? 4 * MIB : MIB;
}

int main(void) {
  void *first = malloc(1);
  seed_sink = first;
  size_t allowance = untouched_allowance();

  size_t r0 = resident_bytes();
  unsigned char *p = malloc(BIG);
  seed_sink = p;
  size_t r1 = resident_bytes();
  CHECK(p != NULL);
  CHECK(ta_owns(p) == 1);
  CHECK_MSG(r1 < r0 + allowance, "malloc(512 MiB) raised the resident size by %zu KiB before any touch",
            (r1 - r0) >> 10);

  memset(p, 0x5a, BIG);
  size_t r2 = resident_bytes();
  CHECK_MSG(r2 >= r1 + 500 * MIB, "touching 512 MiB raised the resident size by only %zu MiB",
            (r2 - r1) >> 20);
  CHECK(p[0] == 0x5a && p[BIG / 2] == 0x5a && p[BIG - 1] == 0x5a);

  free(p);
  size_t r3 = resident_bytes();
  CHECK_MSG(r3 + 500 * MIB <= r2, "freeing the 512 MiB block gave back only %zu MiB",
            r2 > r3 ? (r2 - r3) >> 20 : 0);
  free(first);
  return 0;
}
