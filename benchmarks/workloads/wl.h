/* The frame every whole-program workload shares: command line (--scale, --threads, --seed, --which),
 * the block pattern that makes a misbehaving allocator fail loudly, and key=value reporting.
 * A workload is one main() that calls wl_init, does its work through malloc/free/realloc only, and
 * returns 0; any pattern mismatch calls wl_fail, which exits with status 2. */
#ifndef WL_H
#define WL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/bench.h"

/* Parsed command line; fields are read-only after wl_init. */
typedef struct wl_args_s {
  const char *name; /* workload name, for messages */
  double scale;     /* work multiplier: 1.0 is the full run, --quick passes 0.1 */
  int threads;      /* worker threads; the workload's default unless --threads */
  uint64_t seed;    /* PRNG seed; 1 unless --seed */
} wl_args_t;

/* Parses argv (exits 64 on a bad flag, 0 after printing the probe for --which). */
void wl_init(wl_args_t *a, const char *name, int default_threads, int argc, char **argv);

/* n scaled by a->scale, at least `min`. */
size_t wl_scaled(const wl_args_t *a, double n, size_t min);

/* Prints the message and exits 2: the allocator broke a block's contents or a library call failed. */
void wl_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* malloc that fails the run on NULL (workloads never expect allocation failure). */
void *wl_malloc(size_t n);
void *wl_realloc(void *p, size_t n);

/* The pattern: the tag, mixed with the offset, in the first and last 8 bytes of the block and at every
 * 4 KiB boundary (so every page of a large block is touched); blocks under 16 bytes get a byte
 * pattern. Distinct tags make two live blocks sharing memory visible. */
void wl_fill(void *p, size_t n, uint64_t tag);
/* Checks what wl_fill wrote; calls wl_fail naming `what` on a mismatch. */
void wl_check(const void *p, size_t n, uint64_t tag, const char *what);

/* Prints "key=value" on stdout for the runner to collect. Keys ending in _kib are memory points (the
 * memory table), keys ending in _ops_per_s throughputs (the throughput table). */
void wl_report(const char *key, long value);

/* Sleeps `seconds` of wall time (an idle server, in the workloads that wait for an allocator's
 * delayed return of memory). */
void wl_sleep(double seconds);

/* Monotonic clock, seconds. */
double wl_now(void);

/* The mmap'd, allocator-independent array for bookkeeping that must not count against the allocator
 * (pointer tables of millions of entries); zeroed. wl_free_table returns it to the kernel. */
void *wl_table(size_t bytes);
void wl_free_table(void *p, size_t bytes);

/* Random replacement: `live` blocks with sizes drawn from sizes[0 .. table_len) (a power of two),
 * then `ops` times a random block is checked, freed and replaced by one of a new size; at the end
 * all are checked and freed. The bookkeeping lives in wl_table memory, outside the allocator. */
void wl_replace_churn(size_t live, const size_t *sizes, size_t table_len, size_t ops, bench_rng_t *rng,
                      uint64_t seed, const char *what);

/* pthread_create and pthread_join that fail the run on error. */
void wl_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);
void wl_thread_join(pthread_t t);

#endif
