/* Helpers shared by every benchmark program (workloads and micro): a seeded PRNG, resident-set
 * reading, and the allocator probe the runner uses to check that each column measures the allocator
 * it names. Only the standard malloc API is used here, so the code runs under every allocator. */
#ifndef BENCH_H
#define BENCH_H

#include <stddef.h>
#include <stdint.h>

/* splitmix64: deterministic by seed, so a failing run reproduces with the same --seed. */
typedef struct bench_rng_s {
  uint64_t s; /* state; any value is valid */
} bench_rng_t;

static inline uint64_t bench_rng_next(bench_rng_t *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0. The modulo bias is irrelevant at the ranges used here. */
static inline uint64_t bench_rng_below(bench_rng_t *r, uint64_t n) { return bench_rng_next(r) % n; }

/* A 64-bit mix (murmur3's finaliser): a block's size and fate as a function of its index, so a
 * workload of millions of blocks needs no table but the pointers. */
static inline uint64_t bench_hash64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

/* Log-uniform in [lo, hi]: every power of two between them is equally likely, the way real
 * programs' request sizes spread. lo >= 1. */
size_t bench_rng_log_uniform(bench_rng_t *r, size_t lo, size_t hi);

/* Keeps the compiler from proving an allocation unused (and deleting the malloc/free pair). */
static inline void bench_escape(void *p) { __asm__ volatile("" : : "g"(p) : "memory"); }

/* Resident set size of this process now, in KiB, from /proc/self/statm; 0 if unreadable. Allocates
 * nothing, so reading it does not disturb what it measures. */
long bench_rss_kib(void);

/* Calls malloc_trim(0) when the process has one (glibc always does; with another allocator in charge
 * it trims glibc's own, unused heap, which is harmless). Returns its result, or -1 when absent. */
int bench_trim(void);

/* Prints "malloc_from=<object defining malloc>" and "self=<this executable>" on stdout: the runner
 * compares them with what the column claims (linked library, LD_PRELOAD, or the binary itself). */
void bench_print_probe(void);

#endif
