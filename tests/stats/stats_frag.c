/* The fragmentation figure and resident bytes: 100,000 small blocks, every other one freed, leave
 * half of the touched pages empty of live data, so fragmentation (share of resident segment bytes not
 * holding live blocks) is above 0.3 in ta_stats_get and in the JSON, and close to 1 - live/resident.
 * Freeing the rest and ta_trim(0) gives pages back: resident segment bytes drop, purge counters rise.
 * Registered only without a sanitizer, with decay "never" and no background thread, so that only
 * ta_trim purges. */
#include "stats.h"

#define N 100000
#define SIZE 64

static void *blocks[N];
static char buf[1 << 20];

int main(void) {
  ta_free(ta_malloc(1));
  ta_stats_t a = ss_stats();
  for (size_t i = 0; i < N; i++) {
    blocks[i] = ta_malloc(SIZE);
    CHECK(blocks[i] != NULL);
    memset(blocks[i], (int)i | 1, SIZE);
  }
  ta_stats_t full = ss_stats();
  CHECK_MSG(full.resident_bytes >= a.resident_bytes + (size_t)N * SIZE * 9 / 10,
            "%d blocks of %d bytes written, resident segment bytes went from %zu to %zu", N, SIZE, a.resident_bytes,
            full.resident_bytes);
  CHECK_MSG(full.fragmentation < 0.3, "every block live, yet fragmentation is %g (resident %zu, live %zu)",
            full.fragmentation, full.resident_bytes, full.live_bytes);

  for (size_t i = 0; i < N; i += 2) ta_free(blocks[i]);
  ta_stats_t half = ss_stats();
  CHECK_MSG(half.fragmentation > 0.3, "every other block freed, yet fragmentation is %g (resident %zu, live %zu)",
            half.fragmentation, half.resident_bytes, half.live_bytes);
  double expect = 1.0 - (double)half.live_bytes / (double)half.resident_bytes;
  CHECK_MSG(fabs(half.fragmentation - expect) < 0.05, "fragmentation %g, but 1 - live/resident = %g",
            half.fragmentation, expect);
  int root = ss_json_snapshot(buf, sizeof buf, NULL);
  ss_check_stats_json(root, true);
  CHECK_MSG(js_num(root, "totals.fragmentation") > 0.3, "JSON totals.fragmentation %g after freeing every other block",
            js_num(root, "totals.fragmentation"));
  /* The main thread's arena carries the figure too. */
  double worst = 0;
  for (int e = js_nodes[js_path(root, "arenas")].first; e >= 0; e = js_nodes[e].next) {
    double f = js_num(e, "fragmentation");
    if (f > worst) worst = f;
  }
  CHECK_MSG(worst > 0.3, "no arena in the JSON shows fragmentation above 0.3 (highest %g)", worst);

  for (size_t i = 1; i < N; i += 2) ta_free(blocks[i]);
  ta_stats_t freed = ss_stats();
  CHECK_MSG(ta_trim(0) == 1, "ta_trim(0) released nothing after %d blocks were freed", N);
  ta_stats_t trimmed = ss_stats();
  fprintf(stderr, "resident segment bytes: %zu full, %zu half, %zu freed, %zu trimmed\n", full.resident_bytes,
          half.resident_bytes, freed.resident_bytes, trimmed.resident_bytes);
  CHECK_MSG(trimmed.resident_bytes + (size_t)N * SIZE / 2 <= freed.resident_bytes,
            "ta_trim(0): resident segment bytes went from %zu only to %zu", freed.resident_bytes,
            trimmed.resident_bytes);
  CHECK_MSG(trimmed.purged_bytes > freed.purged_bytes && trimmed.purge_calls > freed.purge_calls,
            "ta_trim(0) released memory, yet purged_bytes %zu -> %zu, purge_calls %zu -> %zu", freed.purged_bytes,
            trimmed.purged_bytes, freed.purge_calls, trimmed.purge_calls);
  CHECK_MSG(trimmed.committed_bytes <= freed.committed_bytes, "ta_trim(0) raised committed bytes %zu -> %zu",
            freed.committed_bytes, trimmed.committed_bytes);
  root = ss_json_snapshot(buf, sizeof buf, NULL);
  ss_check_stats_json(root, true);
  unsigned long long res = js_u64(root, "segments.brk.resident_bytes") + js_u64(root, "segments.mmap.resident_bytes");
  CHECK_MSG(res + (size_t)N * SIZE / 2 <= freed.resident_bytes,
            "JSON segments resident bytes %llu after ta_trim(0), %zu before", res, freed.resident_bytes);
  return 0;
}
