/* Shared helpers for the benchmark programs; see bench.h for the contract of each. */
#include "bench.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Weak, so the programs link and run whether or not the C library (or the allocator under test)
 * defines malloc_trim; the address is null when nothing does. */
extern int malloc_trim(size_t pad) __attribute__((weak));

size_t bench_rng_log_uniform(bench_rng_t *r, size_t lo, size_t hi) {
  double u = (double)(bench_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); /* [0, 1) from 53 bits */
  double v = exp(log((double)lo) + u * (log((double)hi + 1.0) - log((double)lo)));
  size_t n = (size_t)v;
  if (n < lo) n = lo;
  if (n > hi) n = hi;
  return n;
}

long bench_rss_kib(void) {
  /* open/read into the stack, not stdio: fopen would allocate through the allocator being measured. */
  char buf[128];
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t got = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (got <= 0) return 0;
  buf[got] = '\0';
  const char *q = strchr(buf, ' '); /* the resident count is the second field */
  if (!q) return 0;
  long resident = strtol(q + 1, NULL, 10);
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

int bench_trim(void) { return malloc_trim ? malloc_trim(0) : -1; }

void bench_print_probe(void) {
  Dl_info info;
  void *(*fn)(size_t) = malloc; /* resolved through the GOT: whichever object won the interposition */
  const char *from = "?";
  if (dladdr((void *)fn, &info) && info.dli_fname) from = info.dli_fname;
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  self[n > 0 ? n : 0] = '\0';
  printf("malloc_from=%s\nself=%s\n", from, self);
  fflush(stdout);
}
