/* Single-thread micro benchmarks of one call pattern each: a malloc/free pair per size, calloc,
 * realloc growth, aligned allocation and the 127/128 KiB router edge. One op = one allocation
 * (and its free), so ns/op compares directly across sizes and allocators. */
#include "micro.h"

#include <stdlib.h>

/* malloc(n) + free, n = range(0): the fast path when the same block comes straight back. */
static void bm_pair(tb_state *s, void *user) {
  (void)user;
  size_t n = (size_t)tb_range(s, 0);
  for (int64_t k; (k = tb_batch(s)) > 0;)
    for (int64_t i = 0; i < k; i++) free(tb_escape(malloc(n)));
  tb_set_items_processed(s, tb_iterations(s));
}

/* calloc(1, n) + free: adds the zeroing (or the knowledge that fresh pages are already zero). */
static void bm_calloc(tb_state *s, void *user) {
  (void)user;
  size_t n = (size_t)tb_range(s, 0);
  for (int64_t k; (k = tb_batch(s)) > 0;)
    for (int64_t i = 0; i < k; i++) free(tb_escape(calloc(1, n)));
  tb_set_items_processed(s, tb_iterations(s));
}

/* A block grown from 16 B to 4 KiB by range(0) bytes at a time, one realloc per step, writing the
 * new last byte each time (a string builder). One op = one realloc. */
static void bm_realloc_steps(tb_state *s, void *user) {
  (void)user;
  size_t step = (size_t)tb_range(s, 0);
  int64_t reallocs = 0;
  for (int64_t k; (k = tb_batch(s)) > 0;) {
    for (int64_t i = 0; i < k; i++) {
      char *p = malloc(16);
      for (size_t n = 16 + step; n <= 4096; n += step) {
        p = realloc(p, n);
        p[n - 1] = (char)n;
        reallocs++;
      }
      free(tb_escape(p));
    }
  }
  tb_set_items_processed(s, reallocs);
}

/* A block doubled from 64 B to 1 MiB (a growing vector), a byte written at each new end. */
static void bm_realloc_double(tb_state *s, void *user) {
  (void)user;
  int64_t reallocs = 0;
  for (int64_t k; (k = tb_batch(s)) > 0;) {
    for (int64_t i = 0; i < k; i++) {
      char *p = malloc(64);
      for (size_t n = 128; n <= (1u << 20); n *= 2) {
        p = realloc(p, n);
        p[n - 1] = (char)n;
        reallocs++;
      }
      free(tb_escape(p));
    }
  }
  tb_set_items_processed(s, reallocs);
}

/* aligned_alloc(range(0), size) + free, size the alignment or 64 B, whichever is larger. */
static void bm_aligned(tb_state *s, void *user) {
  (void)user;
  size_t align = (size_t)tb_range(s, 0);
  size_t n = align < 64 ? 64 : align;
  for (int64_t k; (k = tb_batch(s)) > 0;)
    for (int64_t i = 0; i < k; i++) free(tb_escape(aligned_alloc(align, n)));
  tb_set_items_processed(s, tb_iterations(s));
}

void mb_register_single(void) {
  static const int64_t pair_sizes[] = {8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536};
  tb_bench *b = tb_register("pair", bm_pair, NULL);
  for (size_t i = 0; i < sizeof pair_sizes / sizeof pair_sizes[0]; i++) tb_bench_arg(b, pair_sizes[i]);

  b = tb_register("calloc", bm_calloc, NULL);
  tb_bench_arg(tb_bench_arg(tb_bench_arg(tb_bench_arg(b, 16), 256), 4096), 65536);

  tb_bench_arg(tb_bench_arg(tb_register("realloc_steps", bm_realloc_steps, NULL), 16), 64);
  tb_register("realloc_double", bm_realloc_double, NULL);

  b = tb_register("aligned", bm_aligned, NULL);
  tb_bench_arg(tb_bench_arg(tb_bench_arg(tb_bench_arg(b, 16), 64), 256), 4096);

  /* The router line: 127 KiB stays with the arenas, 128 KiB takes the large (mmap) path. */
  b = tb_register("router_edge", bm_pair, NULL);
  tb_bench_arg(tb_bench_arg(b, 127 << 10), 128 << 10);
}
