/* Batch micro benchmarks: allocate N blocks (16-256 B, a fixed mix), then free them all in LIFO,
 * FIFO or random order. The order decides how well freed memory lines up with the allocator's free
 * lists and pages. One op = one allocation plus its free. */
#include "micro.h"

#include <stdlib.h>

typedef enum order_e { ORDER_LIFO, ORDER_FIFO, ORDER_RANDOM } order_t;

static void bm_batch(tb_state *s, void *user) {
  order_t order = (order_t)(intptr_t)user;
  size_t n = (size_t)tb_range(s, 0);
  void **p = malloc(n * sizeof *p);
  size_t *size = malloc(n * sizeof *size);
  size_t *perm = malloc(n * sizeof *perm);
  if (!p || !size || !perm) {
    tb_skip_with_error(s, "out of memory for the batch tables");
    /* falls through: the loop below runs no iterations after an error */
  }
  bench_rng_t rng = {n};
  for (size_t i = 0; p && size && perm && i < n; i++) {
    size[i] = 16 + bench_rng_below(&rng, 241);
    perm[i] = i;
  }
  for (size_t i = n; p && size && perm && i > 1; i--) { /* Fisher-Yates, for ORDER_RANDOM */
    size_t j = bench_rng_below(&rng, i);
    size_t t = perm[i - 1];
    perm[i - 1] = perm[j];
    perm[j] = t;
  }
  for (int64_t k; (k = tb_batch(s)) > 0;) {
    for (int64_t it = 0; it < k; it++) {
      for (size_t i = 0; i < n; i++) p[i] = tb_escape(malloc(size[i]));
      switch (order) {
      case ORDER_LIFO:
        for (size_t i = n; i-- > 0;) free(p[i]);
        break;
      case ORDER_FIFO:
        for (size_t i = 0; i < n; i++) free(p[i]);
        break;
      case ORDER_RANDOM:
        for (size_t i = 0; i < n; i++) free(p[perm[i]]);
        break;
      }
    }
  }
  tb_set_items_processed(s, tb_iterations(s) * (int64_t)n);
  free(perm);
  free(size);
  free(p);
}

void mb_register_batch(void) {
  static const struct {
    const char *name;
    order_t order;
  } kinds[] = {{"batch_lifo", ORDER_LIFO}, {"batch_fifo", ORDER_FIFO}, {"batch_random", ORDER_RANDOM}};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    tb_bench *b = tb_register(kinds[i].name, bm_batch, (void *)(intptr_t)kinds[i].order);
    tb_bench_arg(tb_bench_arg(b, 1000), 100000);
  }
}
