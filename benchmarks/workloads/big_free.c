/* Workload big_free: fill 1 GiB with blocks of 64–4096 B (log-uniform), free them all, and report the
 * resident set at once (rss_right_after_free), after 2 s idle (rss_after_sleep) and after
 * malloc_trim(0): how much of a big, completely freed heap goes back, and whether it takes a timer or a
 * request. */
#include "wl.h"

#include <stdlib.h>

enum { MIN_SIZE = 64, MAX_SIZE = 4096 };

/* Block i's size: log-uniform from bench_hash64, so no size table is needed. */
static size_t block_size(uint64_t h) {
  bench_rng_t r = {h};
  return bench_rng_log_uniform(&r, MIN_SIZE, MAX_SIZE);
}

int main(int argc, char **argv) {
  wl_args_t a;
  wl_init(&a, "big_free", 1, argc, argv);
  size_t target = wl_scaled(&a, 1024.0 * 1024 * 1024, 1 << 20);
  uint64_t salt = a.seed * 0x9e3779b97f4a7c15ull;
  size_t n = 0;
  void **p = wl_table((target / MIN_SIZE + 1) * sizeof *p);

  for (size_t bytes = 0; bytes < target; n++) {
    uint64_t h = bench_hash64(n ^ salt);
    size_t sz = block_size(h);
    p[n] = wl_malloc(sz);
    wl_fill(p[n], sz, h);
    bytes += sz;
  }
  wl_report("rss_peak_kib", bench_rss_kib());
  for (size_t i = 0; i < n; i++) {
    uint64_t h = bench_hash64(i ^ salt);
    wl_check(p[i], block_size(h), h, "big_free");
    free(p[i]);
  }
  wl_report("rss_right_after_free_kib", bench_rss_kib());
  wl_sleep(2.0 * a.scale);
  wl_report("rss_after_sleep_kib", bench_rss_kib());
  bench_trim();
  wl_report("rss_after_trim_kib", bench_rss_kib());
  wl_free_table(p, (target / MIN_SIZE + 1) * sizeof *p);
  return 0;
}
