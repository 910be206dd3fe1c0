/* Helpers of the trim tests: resident memory and the [heap] mapping, read from /proc/self without
 * allocating (open/read into static buffers), so that reading does not move what is measured. */
#ifndef TA_TRIM_UTIL_H
#define TA_TRIM_UTIL_H

#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

static char trim_buf[1 << 20];

static inline size_t read_file(const char *path) {
  int fd = open(path, O_RDONLY);
  CHECK(fd >= 0);
  size_t n = 0;
  ssize_t r;
  while (n < sizeof trim_buf - 1 && (r = read(fd, trim_buf + n, sizeof trim_buf - 1 - n)) > 0) n += (size_t)r;
  close(fd);
  trim_buf[n] = '\0';
  return n;
}

/* Resident set size in bytes (statm's second field). */
static inline size_t rss_bytes(void) {
  read_file("/proc/self/statm");
  char *p = trim_buf;
  while (*p && *p != ' ') p++;
  return (size_t)strtoull(p, NULL, 10) * (size_t)sysconf(_SC_PAGESIZE);
}

/* The [heap] mapping's end, 0 if there is none. */
static inline uintptr_t heap_end(void) {
  read_file("/proc/self/maps");
  for (char *line = trim_buf; *line;) {
    char *eol = strchr(line, '\n');
    if (eol) *eol = '\0';
    if (strstr(line, "[heap]")) {
      char *dash = strchr(line, '-');
      return (uintptr_t)strtoull(dash + 1, NULL, 16);
    }
    if (!eol) break;
    line = eol + 1;
  }
  return 0;
}

static inline void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Polls until RSS is at most `limit`, for up to `max_ms`; returns the last RSS seen. */
static inline size_t rss_wait_below(size_t limit, long max_ms) {
  size_t r = rss_bytes();
  for (long t = 0; r > limit && t < max_ms; t += 50) {
    sleep_ms(50);
    r = rss_bytes();
  }
  return r;
}

#define MIB ((size_t)1 << 20)

/* The tests' own bookkeeping (pointer tables, bitmaps), mapped directly so that it is none of
 * tamalloc's memory: `touch` makes every page resident now, so that RSS read afterwards already
 * holds it and what follows measures tamalloc alone. */
static inline void *trim_map(size_t bytes, int touch) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  CHECK(p != MAP_FAILED);
  if (touch) memset(p, 0, bytes);
  return p;
}
static inline void trim_unmap(void *p, size_t bytes) { CHECK(munmap(p, bytes) == 0); }

#endif
