/* Threads on probation (arenas/bind.c): once a few arenas per CPU are bound, new threads allocate
 * from shared arenas under their locks, free into them as remote frees, and bind an arena of their
 * own after a few hundred allocations. 4 rounds of 40 threads alive together (8 of them keep their
 * arena bound for the whole test so that the others start on probation); each churns 1,200 steps
 * over 48 slots (crossing the end of its probation half way), and hands every fourth block to a
 * mailbox another thread frees, so blocks of the shared arenas are freed by threads bound, on
 * probation and exiting. Every block's pattern is checked before it is freed; the heap is validated
 * after each round. Work divided by TA_TEST_SCALE (rounds). */
#include <pthread.h>
#include <stdatomic.h>

#include "tamalloc.h"
#include "test.h"

enum { HOLDERS = 8, ROUND_THREADS = 40, STEPS = 1200, SLOTS = 48, BOXES = 64 };

static _Atomic(unsigned char *) box[BOXES];
static pthread_barrier_t hold;

/* A block of n >= 32 bytes: its tag at 0, n/2 and n-1, its size at 8. */
static unsigned char *alloc_tagged(test_rng_t *r) {
  size_t n = 32 + (size_t)test_rng_below(r, 3000);
  unsigned char *p = ta_malloc(n);
  CHECK(p != NULL);
  unsigned char tag = (unsigned char)test_rng_below(r, 256);
  p[0] = p[n / 2] = p[n - 1] = tag;
  memcpy(p + 8, &n, sizeof n);
  return p;
}

static void check_free(unsigned char *p) {
  size_t n;
  memcpy(&n, p + 8, sizeof n);
  CHECK_MSG(p[n / 2] == p[0] && p[n - 1] == p[0], "block %p lost its pattern", (void *)p);
  ta_free(p);
}

static void *holder(void *arg) {
  (void)arg;
  void *p = ta_malloc(64);
  CHECK(p != NULL);
  int rc = pthread_barrier_wait(&hold);
  CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD);
  ta_free(p);
  return NULL;
}

static void *worker(void *arg) {
  test_rng_t r = {(uint64_t)(uintptr_t)arg};
  unsigned char *slot[SLOTS] = {0};
  for (int i = 0; i < STEPS; i++) {
    unsigned k = (unsigned)test_rng_below(&r, SLOTS);
    if (slot[k] == NULL) {
      slot[k] = alloc_tagged(&r);
    } else if (i % 4 == 0) {
      unsigned char *old = atomic_exchange(&box[test_rng_below(&r, BOXES)], slot[k]);
      if (old != NULL) check_free(old);
      slot[k] = NULL;
    } else {
      check_free(slot[k]);
      slot[k] = NULL;
    }
  }
  for (unsigned k = 0; k < SLOTS; k++)
    if (slot[k] != NULL) check_free(slot[k]);
  return NULL;
}

int main(void) {
  uint64_t seed = test_seed(0x70726f62ull);
  long rounds = test_scale(4);
  CHECK(pthread_barrier_init(&hold, NULL, HOLDERS + 1) == 0);
  pthread_t h[HOLDERS], t[ROUND_THREADS];
  for (int i = 0; i < HOLDERS; i++) CHECK(pthread_create(&h[i], NULL, holder, NULL) == 0);
  for (long round = 0; round < rounds; round++) {
    for (uintptr_t i = 0; i < ROUND_THREADS; i++)
      CHECK(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(seed ^ ((uint64_t)round << 32) ^ i)) == 0);
    for (int i = 0; i < ROUND_THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
    CHECK(ta_validate() == 0);
  }
  for (int i = 0; i < BOXES; i++) {
    unsigned char *p = atomic_exchange(&box[i], NULL);
    if (p != NULL) check_free(p);
  }
  int rc = pthread_barrier_wait(&hold);
  CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD);
  for (int i = 0; i < HOLDERS; i++) CHECK(pthread_join(h[i], NULL) == 0);
  ta_stats_t st;
  ta_stats_get(&st);
  printf("%ld rounds of %d threads beside %d holders: %zu arenas made\n", rounds, ROUND_THREADS, HOLDERS, st.arenas);
  CHECK(ta_validate() == 0);
  return 0;
}
