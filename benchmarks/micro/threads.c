/* Multithreaded micro benchmarks. cross_thread_free: thread 0 allocates, thread 1 frees, through a
 * single-producer single-consumer ring, so every free is remote. mt_churn: 1, 2, 4 and 8 threads each
 * replace random blocks of a small private set — the scaling of the thread-local paths. large: big
 * blocks at 1..8 threads. All are timed by the wall clock; one op = one allocation plus its free, counted over all threads. */
#include "micro.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

enum {
  RING = 4096,   /* ring slots (power of two) */
  PUBLISH = 32   /* the producer publishes its index every PUBLISH blocks: fewer shared-line writes */
};

/* The ring between the two threads of cross_thread_free. Reset by thread 0 before the timed loop;
 * google-benchmark's start barrier orders that before thread 1's first look. */
static struct {
  _Alignas(64) void *slot[RING];      /* blocks in flight */
  _Alignas(64) atomic_size_t head;    /* next slot to consume; written by the consumer */
  _Alignas(64) atomic_size_t tail;    /* next slot to fill; written by the producer */
} ring;

static void bm_cross_thread_free(tb_state *s, void *user) {
  (void)user;
  if (tb_threads(s) != 2) {
    tb_skip_with_error(s, "needs exactly 2 threads");
    for (; tb_batch(s) > 0;) {}
    return;
  }
  int producer = tb_thread_index(s) == 0;
  if (producer) {
    atomic_store(&ring.head, 0);
    atomic_store(&ring.tail, 0);
  }
  bench_rng_t rng = {12345};
  for (int64_t k; (k = tb_batch(s)) > 0;) {
    if (producer) {
      size_t tail = 0, head_seen = 0;
      for (int64_t i = 0; i < k; i++) {
        while (tail - head_seen >= RING) { /* full: wait for the consumer */
          head_seen = atomic_load_explicit(&ring.head, memory_order_acquire);
          if (tail - head_seen >= RING) sched_yield();
        }
        ring.slot[tail % RING] = malloc(16 + bench_rng_below(&rng, 241));
        tail++;
        if (tail % PUBLISH == 0 || i == k - 1) atomic_store_explicit(&ring.tail, tail, memory_order_release);
      }
    } else {
      size_t head = 0, tail_seen = 0;
      for (int64_t i = 0; i < k; i++) {
        while (head == tail_seen) { /* empty: wait for the producer */
          tail_seen = atomic_load_explicit(&ring.tail, memory_order_acquire);
          if (head == tail_seen) sched_yield();
        }
        free(ring.slot[head % RING]);
        head++;
        if (head % PUBLISH == 0 || i == k - 1) atomic_store_explicit(&ring.head, head, memory_order_release);
      }
    }
  }
  tb_set_items_processed(s, producer ? tb_iterations(s) : 0);
}

enum { CHURN_SLOTS = 256 };

static void bm_mt_churn(tb_state *s, void *user) {
  (void)user;
  void *slot[CHURN_SLOTS];
  bench_rng_t rng = {(uint64_t)tb_thread_index(s) + 1};
  for (int i = 0; i < CHURN_SLOTS; i++) slot[i] = malloc(16 + bench_rng_below(&rng, 497));
  for (int64_t k; (k = tb_batch(s)) > 0;) {
    for (int64_t i = 0; i < k; i++) {
      uint64_t r = bench_rng_next(&rng);
      size_t j = r % CHURN_SLOTS;
      free(slot[j]);
      slot[j] = tb_escape(malloc(16 + (r >> 32) % 497)); /* 16 .. 512 B */
    }
  }
  for (int i = 0; i < CHURN_SLOTS; i++) free(slot[i]);
  tb_set_items_processed(s, tb_iterations(s));
}

/* large/N: malloc(N) + write its first byte + free, N = 256 KiB, 1 MiB or 4 MiB, in 1, 2, 4 and 8
 * threads: the large path under contention. Touching one byte makes an allocator that hands out fresh
 * mappings pay a page fault per op, as a program that uses its buffers would. (With tamalloc's
 * adaptive threshold, 256 KiB and 1 MiB go to the bins after the first free; 4 MiB, above the
 * largest class, is served by the retained mappings and the large-block registry.) */
static void bm_large(tb_state *s, void *user) {
  (void)user;
  size_t n = (size_t)tb_range(s, 0);
  for (int64_t k; (k = tb_batch(s)) > 0;) {
    for (int64_t i = 0; i < k; i++) {
      volatile char *p = malloc(n);
      if (!p) {
        tb_skip_with_error(s, "malloc returned NULL");
        break;
      }
      p[0] = (char)i;
      free(tb_escape((void *)p));
    }
  }
  tb_set_items_processed(s, tb_iterations(s));
}

void mb_register_threads(void) {
  tb_bench_real_time(tb_bench_threads(tb_register("cross_thread_free", bm_cross_thread_free, NULL), 2));
  tb_bench_real_time(tb_bench_thread_range(tb_register("mt_churn", bm_mt_churn, NULL), 1, 8));
  tb_bench_real_time(
      tb_bench_thread_range(tb_bench_arg(tb_bench_arg(tb_bench_arg(tb_register("large", bm_large, NULL), 256 << 10), 1 << 20), 4 << 20), 1, 8));
}
