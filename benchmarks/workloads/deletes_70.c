/* Workload deletes_70: the pattern of a cache server after a mass expiry (redis deleting most keys):
 * 2 M values of 16–4096 B (log-uniform), a random 70% freed, 2 s idle, then malloc_trim(0). The 30%
 * survivors are scattered over every page, so memory comes back only from an allocator that can release
 * the free parts of partly used pages or spans. Reports the resident set at the peak, after the idle
 * wait and after the trim. */
#include "wl.h"

#include <stdlib.h>

enum { MIN_SIZE = 16, MAX_SIZE = 4096 };

static size_t block_size(uint64_t h) {
  bench_rng_t r = {h};
  return bench_rng_log_uniform(&r, MIN_SIZE, MAX_SIZE);
}
static int deleted(uint64_t h) { return (h >> 40) % 10 < 7; }

int main(int argc, char **argv) {
  wl_args_t a;
  wl_init(&a, "deletes_70", 1, argc, argv);
  size_t n = wl_scaled(&a, 2e6, 1000);
  uint64_t salt = a.seed * 0x9e3779b97f4a7c15ull;
  void **p = wl_table(n * sizeof *p);

  for (size_t i = 0; i < n; i++) {
    uint64_t h = bench_hash64(i ^ salt);
    size_t sz = block_size(h);
    p[i] = wl_malloc(sz);
    wl_fill(p[i], sz, h);
  }
  wl_report("rss_peak_kib", bench_rss_kib());
  for (size_t i = 0; i < n; i++) {
    uint64_t h = bench_hash64(i ^ salt);
    if (!deleted(h)) continue;
    wl_check(p[i], block_size(h), h, "deletes_70");
    free(p[i]);
  }
  wl_sleep(2.0 * a.scale);
  wl_report("rss_after_sleep_kib", bench_rss_kib());
  bench_trim();
  wl_report("rss_after_trim_kib", bench_rss_kib());
  for (size_t i = 0; i < n; i++) {
    uint64_t h = bench_hash64(i ^ salt);
    if (deleted(h)) continue;
    wl_check(p[i], block_size(h), h, "deletes_70 (survivor)");
    free(p[i]);
  }
  wl_free_table(p, n * sizeof *p);
  return 0;
}
