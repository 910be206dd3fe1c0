/* Workload large_loop: 8 live blocks of 5–25 MiB; one at a time, a random one is checked and freed and
 * a new one of a random size allocated and touched on every page. Sizes well above every allocator's
 * mmap threshold: an allocator that maps and unmaps each block pays the page faults of every byte every
 * time, one that caches large blocks reuses them. Time and peak RSS are the measurement. */
#include "wl.h"

#include <stdlib.h>

enum { LIVE = 8, MIN_SIZE = 5 << 20, MAX_SIZE = 25 << 20 };

int main(int argc, char **argv) {
  wl_args_t a;
  wl_init(&a, "large_loop", 1, argc, argv);
  size_t iters = wl_scaled(&a, 1000, 40);
  bench_rng_t rng = {a.seed};
  void *p[LIVE];
  size_t n[LIVE];
  uint64_t tag[LIVE], next_tag = a.seed << 40;

  for (int i = 0; i < LIVE; i++) {
    n[i] = MIN_SIZE + bench_rng_below(&rng, MAX_SIZE - MIN_SIZE + 1);
    tag[i] = ++next_tag;
    p[i] = wl_malloc(n[i]);
    wl_fill(p[i], n[i], tag[i]);
  }
  for (size_t k = 0; k < iters; k++) {
    int i = (int)bench_rng_below(&rng, LIVE);
    wl_check(p[i], n[i], tag[i], "large_loop");
    free(p[i]);
    n[i] = MIN_SIZE + bench_rng_below(&rng, MAX_SIZE - MIN_SIZE + 1);
    tag[i] = ++next_tag;
    p[i] = wl_malloc(n[i]);
    wl_fill(p[i], n[i], tag[i]);
  }
  for (int i = 0; i < LIVE; i++) {
    wl_check(p[i], n[i], tag[i], "large_loop");
    free(p[i]);
  }
  return 0;
}
