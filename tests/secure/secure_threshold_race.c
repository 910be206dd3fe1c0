/* realloc of a mapped block while the mmap threshold moves under it. The secure layer decides that
 * a large block stays large (and is resized by the router's mremap path) from the threshold it reads;
 * the router reads it again. When another thread raises it between the two reads (a freed mapping
 * of more than 1 MiB raises it to 32 MiB at once), the router moves the block into the arenas, and
 * the secure layer must take the block it got for what it is, not look it up as a mapping: it did,
 * and aborted with "realloc(): invalid pointer" (secure_stress_pingpong, 2 runs in 100).
 *
 * Here one thread flips the threshold between 128 KiB and 32 MiB as fast as it can while the main
 * thread reallocs one block among sizes of 160 KiB-1 MiB, checking the bytes kept each time.
 * Bounded by count. Before the fix it aborted within the first few thousand reallocs (every run). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "test.h"
#include "tamalloc.h"

enum { REALLOCS = 40000 };

static atomic_bool done;

static void *flipper(void *arg) {
  (void)arg;
  for (long i = 0; !atomic_load_explicit(&done, memory_order_relaxed); i++)
    CHECK(ta_mallopt(TA_OPT_MMAP_THRESHOLD, (i & 1) ? 32l << 20 : 128l << 10) == 1);
  return NULL;
}

static unsigned char pattern(size_t i, unsigned gen) { return (unsigned char)(i * 131 + gen); }

int main(void) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, flipper, NULL) == 0);
  test_rng_t r = {test_seed(0x7e5e)};
  size_t n = 160 << 10;
  unsigned gen = 1;
  unsigned char *p = ta_malloc(n);
  CHECK(p != NULL);
  for (size_t i = 0; i < n; i += 997) p[i] = pattern(i, gen);
  p[n - 1] = pattern(n - 1, gen);
  long reallocs = test_scale(REALLOCS);
  for (long k = 0; k < reallocs; k++) {
    size_t m = (160 << 10) + (size_t)test_rng_below(&r, (1 << 20) - (160 << 10));
    unsigned char *q = ta_realloc(p, m);
    CHECK(q != NULL);
    size_t kept = n < m ? n : m;
    for (size_t i = 0; i < kept; i += 997)
      CHECK_MSG(q[i] == pattern(i, gen), "realloc %ld (%zu -> %zu): byte %zu lost", k, n, m, i);
    if (kept == n) CHECK_MSG(q[n - 1] == pattern(n - 1, gen), "realloc %ld: last byte lost", k);
    gen++;
    for (size_t i = 0; i < m; i += 997) q[i] = pattern(i, gen);
    q[m - 1] = pattern(m - 1, gen); /* the last byte asked for is the block's: no guard there */
    p = q;
    n = m;
  }
  atomic_store_explicit(&done, true, memory_order_relaxed);
  CHECK(pthread_join(t, NULL) == 0);
  ta_free(p);
  printf("%ld reallocs with the threshold moving: every byte kept\n", reallocs);
  return 0;
}
