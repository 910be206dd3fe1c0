/* Looking at the process's own memory without disturbing it: /proc/self/maps, /proc/self/statm and
 * smaps_rollup are read with open/read into static buffers and parsed by hand, so no probe allocates
 * (stdio would, and these tests watch where allocations land). Only a failed CHECK prints. */
#ifndef TA_TEST_MAPS_H
#define TA_TEST_MAPS_H

#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

#define MAPS_BUF_SIZE ((size_t)4 << 20)

typedef struct map_s {
  uintptr_t lo, hi; /* [lo, hi): the mapping's range */
  char perms[5];    /* "rw-p" and the like */
  unsigned long inode;
  char name[80];    /* path, "[heap]", "[stack]", ... or "" for anonymous memory */
} map_t;

static char maps_buf[MAPS_BUF_SIZE];
static size_t maps_len;

/* Reads a whole /proc file into `buf`; returns its length. */
static inline size_t proc_read(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  CHECK_MSG(fd >= 0, "cannot open %s", path);
  size_t len = 0;
  for (;;) {
    ssize_t k = read(fd, buf + len, cap - 1 - len);
    CHECK(k >= 0);
    if (k == 0) break;
    len += (size_t)k;
    CHECK_MSG(len < cap - 1, "%s is larger than the buffer", path);
  }
  close(fd);
  buf[len] = '\0';
  return len;
}

static inline void maps_snapshot(void) { maps_len = proc_read("/proc/self/maps", maps_buf, sizeof maps_buf); }

static inline uintptr_t parse_hex(const char **s) {
  uintptr_t v = 0;
  for (;; (*s)++) {
    char c = **s;
    if (c >= '0' && c <= '9') v = v * 16 + (uintptr_t)(c - '0');
    else if (c >= 'a' && c <= 'f') v = v * 16 + (uintptr_t)(c - 'a' + 10);
    else return v;
  }
}

static inline unsigned long parse_dec(const char **s) {
  unsigned long v = 0;
  while (**s >= '0' && **s <= '9') v = v * 10 + (unsigned long)(*(*s)++ - '0');
  return v;
}

/* Parses the line at *cur into m and advances *cur to the next line; 0 at the end. Line format:
 * "lo-hi perms offset dev inode   name". */
static inline int maps_next(const char **cur, map_t *m) {
  const char *s = *cur;
  if (*s == '\0') return 0;
  m->lo = parse_hex(&s);
  CHECK(*s == '-');
  s++;
  m->hi = parse_hex(&s);
  CHECK(*s == ' ');
  s++;
  for (int i = 0; i < 4; i++) m->perms[i] = *s++;
  m->perms[4] = '\0';
  while (*s == ' ') s++;
  (void)parse_hex(&s); /* offset */
  while (*s == ' ') s++;
  while (*s != ' ' && *s != '\n' && *s) s++; /* dev */
  while (*s == ' ') s++;
  m->inode = parse_dec(&s);
  while (*s == ' ') s++;
  size_t k = 0;
  while (*s != '\n' && *s != '\0') {
    if (k + 1 < sizeof m->name) m->name[k++] = *s;
    s++;
  }
  m->name[k] = '\0';
  if (*s == '\n') s++;
  *cur = s;
  return 1;
}

/* Anonymous memory: no file behind it, and not one of the kernel's special areas ([anon:name] from
 * prctl naming still counts as anonymous). */
static inline int map_is_anon(const map_t *m) {
  if (m->inode != 0) return 0;
  if (m->name[0] == '\0') return 1;
  return strncmp(m->name, "[anon:", 6) == 0;
}

/* The [heap] range in the last snapshot (the union of its lines: permissions can split it);
 * 0 if there is none. */
static inline int maps_heap(uintptr_t *lo, uintptr_t *hi) {
  const char *cur = maps_buf;
  map_t m;
  int found = 0;
  while (maps_next(&cur, &m)) {
    if (strcmp(m.name, "[heap]") != 0) continue;
    if (!found || m.lo < *lo) *lo = m.lo;
    if (!found || m.hi > *hi) *hi = m.hi;
    found = 1;
  }
  return found;
}

/* The mapping containing addr in the last snapshot; 0 if none. */
static inline int maps_find(uintptr_t addr, map_t *out) {
  const char *cur = maps_buf;
  while (maps_next(&cur, out))
    if (out->lo <= addr && addr < out->hi) return 1;
  return 0;
}

/* The heap as it is now. */
typedef struct heap_s {
  int exists;
  uintptr_t lo, hi;
} heap_t;

static inline heap_t heap_now(void) {
  heap_t h = {0, 0, 0};
  maps_snapshot();
  h.exists = maps_heap(&h.lo, &h.hi);
  return h;
}

static inline int in_heap(const heap_t *h, const void *p) {
  return h->exists && h->lo <= (uintptr_t)p && (uintptr_t)p < h->hi;
}

/* Resident bytes. smaps_rollup counts the page tables exactly; statm's field 2 may lag by the
 * per-CPU counter batches on recent kernels, so it is the fallback. */
static char proc_small_buf[64 * 1024];

static inline size_t resident_bytes(void) {
  int fd = open("/proc/self/smaps_rollup", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    close(fd);
    proc_read("/proc/self/smaps_rollup", proc_small_buf, sizeof proc_small_buf);
    const char *s = strstr(proc_small_buf, "\nRss:");
    CHECK(s != NULL);
    s += 5;
    while (*s == ' ') s++;
    return (size_t)parse_dec(&s) * 1024;
  }
  proc_read("/proc/self/statm", proc_small_buf, sizeof proc_small_buf);
  const char *s = proc_small_buf;
  (void)parse_dec(&s);
  while (*s == ' ') s++;
  return (size_t)parse_dec(&s) * (size_t)sysconf(_SC_PAGESIZE);
}

/* Keeps the compiler from proving a block unused (the seed tests are built with -fno-builtin too). */
static void *volatile seed_sink;

#endif
