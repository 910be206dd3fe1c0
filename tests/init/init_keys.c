/* Thread-specific-data destructors that allocate and free at thread exit, for every round glibc
 * runs (PTHREAD_DESTRUCTOR_ITERATIONS): one key created in a constructor before tamalloc's own key
 * (so in the later rounds it runs after tamalloc tore the thread's state down), one created after.
 * Thread churn with such destructors must not crash, deadlock, leak, or make arenas without bound.
 * Usage: init_keys churn | last_round */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include "src/init.h" /* ta_init_state, ta_thread_key: to check the key order this test relies on */
#include "init_names.h"
#include "test.h"

#define ROUNDS PTHREAD_DESTRUCTOR_ITERATIONS
#define KIB ((size_t)1 << 10)

static pthread_key_t early_key; /* created before tamalloc's key: its index is lower */
static pthread_key_t late_key;  /* created after it */
static int state_at_early_key = -1;

typedef struct {
  uint32_t magic;
  uint32_t round; /* the destructor round that will receive this block (0: set during the thread) */
  size_t size;
  pthread_key_t key;
} tsd_block_t;
#define TSD_MAGIC 0x75d0b10cu

static atomic_long destructor_calls, destructor_errors;

/* Block sizes by round: small, a medium span, a large (mmap) block, small again. */
static size_t round_size(unsigned round) {
  static const size_t sizes[] = {64, 24 * KIB, 200 * KIB, 512};
  return sizes[round % 4];
}

static tsd_block_t *tsd_new(pthread_key_t key, uint32_t round) {
  size_t n = round_size(round);
  tsd_block_t *b = TN(malloc)(n);
  if (b == NULL) return NULL;
  b->magic = TSD_MAGIC;
  b->round = round;
  b->size = n;
  b->key = key;
  memset(b + 1, (int)(round + 1), n - sizeof *b);
  return b;
}

static bool tsd_ok(const tsd_block_t *b) {
  if (b->magic != TSD_MAGIC || b->size != round_size(b->round)) return false;
  const unsigned char *c = (const unsigned char *)(b + 1);
  return c[0] == (unsigned char)(b->round + 1) && c[b->size - sizeof *b - 1] == (unsigned char)(b->round + 1);
}

static void tsd_destructor(void *v) {
  tsd_block_t *b = v;
  atomic_fetch_add(&destructor_calls, 1);
  if (!tsd_ok(b)) {
    atomic_fetch_add(&destructor_errors, 1);
    return;
  }
  /* Allocate and free something unrelated, of every kind. */
  for (unsigned k = 0; k < 4; k++) {
    void *s = TN(malloc)(round_size(k) + k);
    if (s == NULL) atomic_fetch_add(&destructor_errors, 1);
    TN(free)(hide(s));
  }
  uint32_t next = b->round + 1;
  pthread_key_t key = b->key;
  TN(free)(b);
  if (next < ROUNDS) {
    tsd_block_t *nb = tsd_new(key, next);
    if (nb == NULL || pthread_setspecific(key, nb) != 0) atomic_fetch_add(&destructor_errors, 1);
  }
}

__attribute__((constructor(101))) static void make_early_key(void) {
  state_at_early_key = atomic_load(&ta_init_state);
  CHECK(pthread_key_create(&early_key, tsd_destructor) == 0);
}

static void *churn_thread(void *arg) {
  uintptr_t i = (uintptr_t)arg;
  if (i % 2 == 0) { /* half the threads allocate during their life too */
    void *p = TN(malloc)(i % 5000 + 1);
    TN(free)(hide(p));
  }
  tsd_block_t *a = tsd_new(early_key, 0), *b = tsd_new(late_key, 0);
  CHECK(a != NULL && b != NULL);
  CHECK(pthread_setspecific(early_key, a) == 0 && pthread_setspecific(late_key, b) == 0);
  return NULL;
}

static void check_key_order(void) {
  void *p = TN(malloc)(16); /* tamalloc is initialised from here on */
  TN(free)(hide(p));
  CHECK(pthread_key_create(&late_key, tsd_destructor) == 0);
  /* Under meson test --setup mt a preloaded library's constructor allocates before ours runs, so
   * tamalloc's key comes first; the destructor rounds are exercised all the same. */
  if (getenv("TA_TEST_MT") != NULL) return;
  CHECK_MSG(state_at_early_key == 0, "tamalloc was initialised before the first constructor ran");
  CHECK_MSG(early_key < ta_thread_key && ta_thread_key < late_key,
            "key order early %u < tamalloc %u < late %u does not hold", early_key, ta_thread_key, late_key);
}

static void churn(long threads, void *(*body)(void *), const char *what) {
  enum { BATCH = 8 };
  for (long done = 0; done < threads; done += BATCH) {
    pthread_t t[BATCH];
    for (uintptr_t i = 0; i < BATCH; i++) CHECK(pthread_create(&t[i], NULL, body, (void *)(done + i)) == 0);
    for (int i = 0; i < BATCH; i++) CHECK(pthread_join(t[i], NULL) == 0);
  }
  ta_stats_t s;
  ta_stats_get(&s);
  printf("%s: %ld threads, %ld destructor calls, %zu arenas, %zu segments, %zu large blocks live\n", what,
         threads, atomic_load(&destructor_calls), s.arenas, s.segments, s.large_blocks);
  CHECK_MSG(atomic_load(&destructor_errors) == 0, "%ld destructor errors", atomic_load(&destructor_errors));
  CHECK_MSG(s.arenas <= 16, "%zu arenas after churning %ld threads: arenas are not reused", s.arenas, threads);
  CHECK_MSG(s.large_blocks == 0, "%zu large blocks still live: destructors' blocks leaked", s.large_blocks);
  CHECK_MSG(s.segments <= 64, "%zu segments after the churn", s.segments);
}

static void case_churn(void) {
  check_key_order();
  long threads = test_scale(2000);
  threads = (threads + 7) / 8 * 8;
  churn(threads, churn_thread, "churn");
  CHECK_MSG(atomic_load(&destructor_calls) == threads * 2 * ROUNDS, "%ld destructor calls, want %ld",
            atomic_load(&destructor_calls), threads * 2 * ROUNDS);
}

/* A thread that never allocates, whose late destructor first allocates in the last round glibc
 * runs: tamalloc's own destructor has already had its turn by then. */
static pthread_key_t lazy_key;
static char lazy_marker;

static void lazy_destructor(void *v) {
  uintptr_t round = (uintptr_t)v - (uintptr_t)&lazy_marker; /* 0, 1, 2, ... without allocating */
  atomic_fetch_add(&destructor_calls, 1);
  if (round + 1 < ROUNDS) {
    pthread_setspecific(lazy_key, &lazy_marker + round + 1);
    return;
  }
  void *p = TN(malloc)(100), *q = TN(malloc)(200 * KIB);
  if (p == NULL || q == NULL) atomic_fetch_add(&destructor_errors, 1);
  TN(free)(hide(p));
  TN(free)(hide(q));
}

static void *lazy_thread(void *arg) {
  (void)arg;
  CHECK(pthread_setspecific(lazy_key, &lazy_marker) == 0);
  return NULL;
}

static void case_last_round(void) {
  check_key_order();
  CHECK(pthread_key_create(&lazy_key, lazy_destructor) == 0);
  CHECK(lazy_key > ta_thread_key);
  churn(test_scale(400) / 8 * 8 + 8, lazy_thread, "last round");
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 2 && strcmp(argv[1], "churn") == 0)
    case_churn();
  else if (argc == 2 && strcmp(argv[1], "last_round") == 0)
    case_last_round();
  else {
    fprintf(stderr, "usage: %s churn | last_round\n", argv[0]);
    return 2;
  }
  return 0;
}
