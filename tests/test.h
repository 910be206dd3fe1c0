/* The one test header: CHECK macros, a deterministic PRNG, and the knobs every test shares.
 * A failed CHECK prints file:line and the expression, then exits 1 (meson counts it as a failure). */
#ifndef TA_TEST_H
#define TA_TEST_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                  \
  do {                                                                                               \
    if (!(cond)) {                                                                                   \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                       \
      fflush(stderr);                                                                                \
      exit(1);                                                                                       \
    }                                                                                                \
  } while (0)

#define CHECK_MSG(cond, ...)                                                                         \
  do {                                                                                               \
    if (!(cond)) {                                                                                   \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);                       \
      fprintf(stderr, __VA_ARGS__);                                                                  \
      fputc('\n', stderr);                                                                           \
      fflush(stderr);                                                                                \
      exit(1);                                                                                       \
    }                                                                                                \
  } while (0)

#define CHECK_EQ_SZ(a, b)                                                                            \
  CHECK_MSG((size_t)(a) == (size_t)(b), "%zu != %zu", (size_t)(a), (size_t)(b))

#define CHECK_ALIGNED(p, a) CHECK_MSG(((uintptr_t)(p) & ((a) - 1)) == 0, "%p not aligned to %zu", (void *)(p), (size_t)(a))

/* splitmix64: tests are deterministic by seed so that a failure reproduces. */
typedef struct { uint64_t s; } test_rng_t;
static inline uint64_t test_rng_next(test_rng_t *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static inline uint64_t test_rng_below(test_rng_t *r, uint64_t n) { return test_rng_next(r) % n; }

/* TA_TEST_SCALE=N divides the work of long tests by N (sanitizer builds are slower). */
static inline long test_scale(long work) {
  const char *s = getenv("TA_TEST_SCALE");
  long d = s ? atol(s) : 1;
  if (d < 1) d = 1;
  long w = work / d;
  return w > 0 ? w : 1;
}

/* Seed from TA_TEST_SEED, else the given default; printed so a failure can be replayed. */
static inline uint64_t test_seed(uint64_t dflt) {
  const char *s = getenv("TA_TEST_SEED");
  uint64_t v = s ? strtoull(s, NULL, 0) : dflt;
  fprintf(stderr, "seed: TA_TEST_SEED=%llu\n", (unsigned long long)v);
  return v;
}

/* A test program of several modes, one per meson test: runs the one argv[1] names (the first of
 * `modes` when there is no argument). Returns main's status: 0, or 2 for a mode it does not know. */
typedef struct {
  const char *name;
  void (*run)(void);
} test_mode_t;
static inline int test_run_mode(int argc, char **argv, const test_mode_t *modes, size_t count) {
  const char *mode = argc > 1 ? argv[1] : modes[0].name;
  for (size_t i = 0; i < count; i++)
    if (strcmp(mode, modes[i].name) == 0) {
      modes[i].run();
      return 0;
    }
  fprintf(stderr, "unknown mode %s\n", mode);
  return 2;
}
#define TEST_RUN_MODES(argc, argv, ...)                                                             \
  test_run_mode(argc, argv, (const test_mode_t[]){__VA_ARGS__},                                      \
                sizeof((const test_mode_t[]){__VA_ARGS__}) / sizeof(test_mode_t))

/* Runs the process (threads started later too) on one of the CPUs it may use, so that what tamalloc
 * sizes by the CPU count (the shared arenas of arenas/bind.c) is the same on every machine. Call it
 * before the first allocation. Needs _GNU_SOURCE and <sched.h>. */
#ifdef CPU_SET
static inline void test_pin_one_cpu(void) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CHECK(sched_getaffinity(0, sizeof set, &set) == 0);
  int cpu = 0;
  while (!CPU_ISSET(cpu, &set)) cpu++;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  CHECK(sched_setaffinity(0, sizeof set, &set) == 0);
}
#endif

#endif
