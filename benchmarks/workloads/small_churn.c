/* Workload 1, small churn: one thread keeps ~100k small objects alive and replaces random ones — the
 * steady state of an interpreter or a parser's AST. Measures the single-thread fast paths under a
 * working set larger than the caches. */
#include "wl.h"

#include <stdlib.h>

enum { LIVE = 100000, SIZE_TABLE = 4096 };

int main(int argc, char **argv) {
  wl_args_t a;
  wl_init(&a, "small_churn", 1, argc, argv);
  size_t ops = wl_scaled(&a, 10e6, 10000);
  bench_rng_t rng = {a.seed};

  /* Sizes drawn from a precomputed log-uniform table so the loop costs an allocation, not an exp(). */
  static size_t sizes[SIZE_TABLE];
  for (int i = 0; i < SIZE_TABLE; i++) sizes[i] = bench_rng_log_uniform(&rng, 8, 256);

  wl_replace_churn(LIVE, sizes, SIZE_TABLE, ops, &rng, a.seed, "small_churn");
  return 0;
}
