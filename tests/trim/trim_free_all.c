/* Issue test 1: allocate 1 GiB in 64..4096-byte blocks, free them all. With `trim`, RSS after
 * malloc_trim(0) is within 16 MiB of what it was before; with `decay`, it gets there by itself within
 * a few decay periods (TAMALLOC_DECAY_MS is set by the test runner), also when the allocating thread
 * then only sleeps (`sleeper`: a worker allocates and frees, then sleeps while main watches). */
#include <pthread.h>

#include "tamalloc.h"
#include "trim_util.h"

static void **blocks;
static size_t nblocks;

static void alloc_and_free(void) {
  test_rng_t rng = {test_seed(7)};
  size_t total = 0, cap = 1 << 20;
  blocks = ta_malloc(cap * sizeof *blocks);
  CHECK(blocks != NULL);
  while (total < ((size_t)1 << 30)) {
    size_t n = 64 + test_rng_below(&rng, 4096 - 64 + 1);
    void *p = ta_malloc(n);
    CHECK(p != NULL);
    memset(p, 0x5a, n);
    if (nblocks == cap) {
      cap *= 2;
      blocks = ta_realloc(blocks, cap * sizeof *blocks);
      CHECK(blocks != NULL);
    }
    blocks[nblocks++] = p;
    total += n;
  }
  for (size_t i = 0; i < nblocks; i++) ta_free(blocks[i]);
  ta_free(blocks);
}

static volatile int worker_done;
static void *worker(void *arg) {
  (void)arg;
  alloc_and_free();
  __atomic_store_n(&worker_done, 1, __ATOMIC_RELEASE);
  sleep_ms(60 * 1000); /* only sleeps from now on */
  return NULL;
}

int main(int argc, char **argv) {
  CHECK(argc == 2);
  const char *mode = argv[1];
  size_t before = rss_bytes();
  size_t limit = before + 16 * MIB;
  if (strcmp(mode, "sleeper") == 0) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, worker, NULL) == 0);
    pthread_detach(t);
    while (!__atomic_load_n(&worker_done, __ATOMIC_ACQUIRE)) sleep_ms(10);
  } else {
    alloc_and_free();
  }
  size_t after_free = rss_bytes();
  size_t end;
  if (strcmp(mode, "trim") == 0) {
    CHECK(ta_trim(0) == 1);
    end = rss_bytes();
  } else {
    end = rss_wait_below(limit, 10000);
  }
  printf("%s: rss before %zu MiB, after free %zu MiB, end %zu MiB (limit %zu MiB)\n", mode,
         before / MIB, after_free / MIB, end / MIB, limit / MIB);
  CHECK(end <= limit);
  return 0;
}
