/* Workload 7, fragmentation and memory return: fill ~1 GiB with small blocks, free a random 90%, then
 * the rest, then call malloc_trim(0), reporting the resident set at each point. The survivors of the
 * first free are scattered over every page, so an allocator that can only return whole empty pages
 * keeps most of the peak until the end; the last two points show what it gives back, and when. */
#include "wl.h"

#include <stdlib.h>

/* Size and fate of block i are functions of bench_hash64(i), so the only table needed is the pointers. */
static inline size_t block_size(uint64_t h) { return 16 + h % 241; } /* 16 .. 256 B, mean 136 */
static inline int survives_first_free(uint64_t h) { return (h >> 32) % 10 == 0; }

int main(int argc, char **argv) {
  wl_args_t a;
  wl_init(&a, "fragmentation", 1, argc, argv);
  size_t target = wl_scaled(&a, 1024.0 * 1024 * 1024, 1 << 20);
  size_t n = target / 136;
  uint64_t salt = a.seed * 0x9e3779b97f4a7c15ull;
  void **p = wl_table(n * sizeof *p);

  wl_report("rss_start_kib", bench_rss_kib());
  for (size_t i = 0; i < n; i++) {
    uint64_t h = bench_hash64(i ^ salt);
    size_t sz = block_size(h);
    p[i] = wl_malloc(sz);
    wl_fill(p[i], sz, h);
  }
  wl_report("rss_peak_kib", bench_rss_kib());

  for (size_t i = 0; i < n; i++) {
    uint64_t h = bench_hash64(i ^ salt);
    if (survives_first_free(h)) continue;
    wl_check(p[i], block_size(h), h, "fragmentation");
    free(p[i]);
  }
  wl_report("rss_after_free90_kib", bench_rss_kib());

  for (size_t i = 0; i < n; i++) {
    uint64_t h = bench_hash64(i ^ salt);
    if (!survives_first_free(h)) continue;
    wl_check(p[i], block_size(h), h, "fragmentation");
    free(p[i]);
  }
  wl_free_table(p, n * sizeof *p);
  wl_report("rss_after_free_all_kib", bench_rss_kib());

  bench_trim();
  wl_report("rss_after_trim_kib", bench_rss_kib());
  return 0;
}
