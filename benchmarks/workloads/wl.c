/* The shared frame of the workloads; the contract of each function is in wl.h. */
#include "wl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static const char *wl_name = "workload";

static void wl_usage(const char *name) {
  fprintf(stderr,
          "usage: %s [--scale F] [--threads N] [--seed N] [--which]\n"
          "  --scale F    work multiplier (1 = full run, 0.1 = --quick)\n"
          "  --threads N  worker threads (multithreaded workloads)\n"
          "  --seed N     PRNG seed\n"
          "  --which      print which object provides malloc, then exit\n",
          name);
}

void wl_init(wl_args_t *a, const char *name, int default_threads, int argc, char **argv) {
  wl_name = name;
  a->name = name;
  a->scale = 1.0;
  a->threads = default_threads;
  a->seed = 1;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    char *end = NULL;
    if (strcmp(arg, "--which") == 0) {
      bench_print_probe();
      exit(0);
    } else if (strcmp(arg, "--scale") == 0 && val) {
      a->scale = strtod(val, &end);
      if (*end || !(a->scale > 0)) goto bad;
      i++;
    } else if (strcmp(arg, "--threads") == 0 && val) {
      long t = strtol(val, &end, 10);
      if (*end || t < 1 || t > 1024) goto bad;
      a->threads = (int)t;
      i++;
    } else if (strcmp(arg, "--seed") == 0 && val) {
      a->seed = strtoull(val, &end, 0);
      if (*end) goto bad;
      i++;
    } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      wl_usage(name);
      exit(0);
    } else {
      goto bad;
    }
    continue;
  bad:
    fprintf(stderr, "%s: bad argument '%s'\n", name, arg);
    wl_usage(name);
    exit(64);
  }
}

size_t wl_scaled(const wl_args_t *a, double n, size_t min) {
  double v = n * a->scale;
  return v < (double)min ? min : (size_t)v;
}

void wl_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: FAILED: ", wl_name);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  fflush(stderr);
  exit(2);
}

void *wl_malloc(size_t n) {
  void *p = malloc(n);
  if (!p) wl_fail("malloc(%zu) returned NULL", n);
  return p;
}

void *wl_realloc(void *p, size_t n) {
  void *q = realloc(p, n);
  if (!q) wl_fail("realloc(%p, %zu) returned NULL", p, n);
  return q;
}

/* The word stored at `off`: differs by offset, so a block copied or shifted is caught too. */
static inline uint64_t wl_word(uint64_t tag, size_t off) { return tag ^ ((uint64_t)off * 0xff51afd7ed558ccdull); }

/* Word positions: the head at 0, one word at each 4 KiB boundary clear of the tail, the tail at n - 8.
 * Blocks under 16 bytes (where head and tail would overlap) get a byte pattern instead. */
void wl_fill(void *p, size_t n, uint64_t tag) {
  unsigned char *b = p;
  if (n < 16) {
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(tag >> (8 * (i & 7))) ^ (unsigned char)i;
    return;
  }
  uint64_t w = wl_word(tag, 0);
  memcpy(b, &w, 8);
  for (size_t off = 4096; off + 16 <= n; off += 4096) {
    w = wl_word(tag, off);
    memcpy(b + off, &w, 8);
  }
  w = wl_word(tag, n - 8);
  memcpy(b + n - 8, &w, 8);
}

void wl_check(const void *p, size_t n, uint64_t tag, const char *what) {
  const unsigned char *b = p;
  if (n < 16) {
    for (size_t i = 0; i < n; i++)
      if (b[i] != ((unsigned char)(tag >> (8 * (i & 7))) ^ (unsigned char)i))
        wl_fail("%s: block %p (%zu B) byte %zu overwritten", what, p, n, i);
    return;
  }
  uint64_t w;
  memcpy(&w, b, 8);
  if (w != wl_word(tag, 0)) wl_fail("%s: block %p (%zu B) head overwritten", what, p, n);
  for (size_t off = 4096; off + 16 <= n; off += 4096) {
    memcpy(&w, b + off, 8);
    if (w != wl_word(tag, off)) wl_fail("%s: block %p (%zu B) overwritten at offset %zu", what, p, n, off);
  }
  memcpy(&w, b + n - 8, 8);
  if (w != wl_word(tag, n - 8)) wl_fail("%s: block %p (%zu B) tail overwritten", what, p, n);
}

void wl_report(const char *key, long value) {
  printf("%s=%ld\n", key, value);
  fflush(stdout);
}

void wl_sleep(double seconds) {
  struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

double wl_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void *wl_table(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) wl_fail("mmap of a %zu-byte table: %s", bytes, strerror(errno));
  return p;
}

void wl_free_table(void *p, size_t bytes) {
  if (munmap(p, bytes) != 0) wl_fail("munmap: %s", strerror(errno));
}

void wl_thread_start(pthread_t *t, void *(*fn)(void *), void *arg) {
  int e = pthread_create(t, NULL, fn, arg);
  if (e) wl_fail("pthread_create: %s", strerror(e));
}

void wl_thread_join(pthread_t t) {
  int e = pthread_join(t, NULL);
  if (e) wl_fail("pthread_join: %s", strerror(e));
}

typedef struct wl_slot_s {
  void *p;      /* live block */
  uint64_t tag; /* pattern tag written into it */
  size_t n;     /* its size in bytes */
} wl_slot_t;

static void slot_refill(wl_slot_t *s, size_t n, uint64_t *next_tag) {
  s->n = n;
  s->tag = ++*next_tag;
  s->p = wl_malloc(n);
  wl_fill(s->p, n, s->tag);
}

void wl_replace_churn(size_t live, const size_t *sizes, size_t table_len, size_t ops, bench_rng_t *rng,
                      uint64_t seed, const char *what) {
  wl_slot_t *slots = wl_table(sizeof(wl_slot_t) * live);
  uint64_t next_tag = seed * 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < live; i++) slot_refill(&slots[i], sizes[bench_rng_below(rng, table_len)], &next_tag);
  for (size_t k = 0; k < ops; k++) {
    uint64_t r = bench_rng_next(rng);
    wl_slot_t *s = &slots[(r >> 16) % live];
    wl_check(s->p, s->n, s->tag, what);
    free(s->p);
    slot_refill(s, sizes[r & (table_len - 1)], &next_tag);
  }
  for (size_t i = 0; i < live; i++) {
    wl_check(slots[i].p, slots[i].n, slots[i].tag, what);
    free(slots[i].p);
  }
  wl_free_table(slots, sizeof(wl_slot_t) * live);
}
