/* Workload 2, mixed sizes: one thread replaces random blocks whose sizes are log-uniform from 16 B to
 * 1 MiB, so the traffic crosses the small/large router line (128 KiB) all the time — the mix of a
 * document processor or an image pipeline. Every page of every block is touched. */
#include "wl.h"

#include <stdlib.h>

enum { LIVE = 1024, SIZE_TABLE = 4096 };

int main(int argc, char **argv) {
  wl_args_t a;
  wl_init(&a, "mixed_sizes", 1, argc, argv);
  size_t ops = wl_scaled(&a, 1e6, 2000);
  bench_rng_t rng = {a.seed};

  static size_t sizes[SIZE_TABLE];
  for (int i = 0; i < SIZE_TABLE; i++) sizes[i] = bench_rng_log_uniform(&rng, 16, 1 << 20);

  wl_replace_churn(LIVE, sizes, SIZE_TABLE, ops, &rng, a.seed, "mixed_sizes");
  return 0;
}
