/* Statistics while 4 threads allocate and free (some blocks freed by another thread than the one that
 * allocated them): the main thread meanwhile takes ta_stats_get and ta_stats_json snapshots, and now
 * and then a text report and a heap map. No snapshot may crash or tear: each JSON parses and has the
 * schema, and the numbers stay sane. After the threads are joined and every block is freed, the live
 * counters are back where they started. Deterministic by seed (per thread). Registered twice: with the
 * background thread purging meanwhile, and without it ("quiet", where the final report must add up). */
#include "stats.h"

#include <stdatomic.h>

#define WORKERS 4
#define SLOTS 256
#define BIG (1 << 20)

static uint64_t seed;
static long ops_per_worker;
static atomic_int workers_done;
static st_mailbox_t mailbox[WORKERS];
static char buf[BIG];

static void *worker_main(void *arg) {
  unsigned me = (unsigned)(uintptr_t)arg;
  test_rng_t r = {seed + 977 * (me + 1)};
  st_block_t slots[SLOTS];
  memset(slots, 0, sizeof slots);
  uint64_t id = ((uint64_t)(me + 1) << 48) + 1;
  for (long op = 0; op < ops_per_worker; op++)
    st_churn_step(slots, SLOTS, &mailbox[me], &mailbox[(me + 1) % WORKERS], &r, &id, st_size);
  for (size_t i = 0; i < SLOTS; i++)
    if (slots[i].p) st_free_block(&slots[i], &r);
  atomic_fetch_add(&workers_done, 1);
  return NULL;
}

static void check_snapshot(long iteration) {
  ta_stats_t s = ss_stats();
  CHECK_MSG(s.live_bytes <= s.segment_bytes, "snapshot %ld: live_bytes %zu > segment_bytes %zu", iteration,
            s.live_bytes, s.segment_bytes);
  CHECK_MSG(s.committed_bytes <= s.segment_bytes, "snapshot %ld: committed %zu > segment bytes %zu", iteration,
            s.committed_bytes, s.segment_bytes);
  CHECK_MSG(s.resident_bytes <= s.segment_bytes, "snapshot %ld: resident %zu > segment bytes %zu", iteration,
            s.resident_bytes, s.segment_bytes);
  CHECK_MSG(s.segments_brk <= s.segments && s.segment_bytes >= s.segments * 4096,
            "snapshot %ld: %zu segments (%zu brk) in %zu bytes", iteration, s.segments, s.segments_brk, s.segment_bytes);
  CHECK_MSG(s.arenas_pooled <= s.arenas && s.arenas <= 64, "snapshot %ld: %zu arenas, %zu pooled", iteration,
            s.arenas, s.arenas_pooled);
  CHECK_MSG(s.fragmentation >= 0.0 && s.fragmentation <= 1.0, "snapshot %ld: fragmentation %g", iteration,
            s.fragmentation);
  CHECK_MSG(s.live_blocks <= s.live_bytes / 16, "snapshot %ld: %zu live blocks in %zu bytes", iteration,
            s.live_blocks, s.live_bytes);

  size_t len;
  int root = ss_json_snapshot(buf, BIG, &len);
  ss_check_stats_json(root, false);
  if (iteration == 10)
    ss_python_check(SS_PY_JSON, buf, len, "a snapshot taken while 4 threads allocate");
}

int main(int argc, char **argv) {
  bool quiet = argc > 1 && strcmp(argv[1], "quiet") == 0;
  seed = test_seed(20240611);
  ops_per_worker = test_scale(150000);
  FILE *devnull = fopen("/dev/null", "w");
  CHECK(devnull != NULL);
  ta_free(ta_malloc(1));
  ta_stats_t start = ss_stats();

  for (int i = 0; i < WORKERS; i++) st_mailbox_init(&mailbox[i]);
  pthread_t t[WORKERS];
  for (int i = 0; i < WORKERS; i++) CHECK(pthread_create(&t[i], NULL, worker_main, (void *)(uintptr_t)i) == 0);
  long iterations = 0;
  while (atomic_load(&workers_done) < WORKERS) {
    check_snapshot(iterations);
    if (iterations % 8 == 0) ta_stats_print(devnull);
    if (iterations % 8 == 4) ta_heap_map(devnull);
    iterations++;
  }
  for (int i = 0; i < WORKERS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  fprintf(stderr, "%ld snapshots while the workers ran\n", iterations);
  CHECK_MSG(iterations >= 2, "only %ld snapshots while the workers ran", iterations);

  /* Blocks still in mailboxes: freed here, by a thread that did not allocate them. */
  test_rng_t r = {seed};
  st_block_t got[ST_MAILBOX_CAP];
  for (int i = 0; i < WORKERS; i++) {
    size_t k = st_mailbox_take(&mailbox[i], got, ST_MAILBOX_CAP);
    for (size_t j = 0; j < k; j++) {
      st_check_block(&got[j]);
      st_free_block(&got[j], &r);
    }
  }
  check_snapshot(-1);
  /* With the background thread off (argument "quiet") nothing runs now: the parts must add up. */
  if (quiet) ss_check_stats_json(ss_json_snapshot(buf, BIG, NULL), true);

  ta_stats_t end = ss_stats();
  fprintf(stderr, "live blocks: %zu at the start, %zu at the end; arenas %zu (%zu pooled); remote frees collected %zu\n",
          start.live_blocks, end.live_blocks, end.arenas, end.arenas_pooled, end.remote_frees_collected);
  if (end.live_blocks > start.live_blocks + SS_SLACK) { /* diagnosis for the failure below */
    ta_trim(0);
    ta_stats_t after = ss_stats();
    fprintf(stderr, "after ta_trim(0): live_blocks %zu, remote frees collected %zu\n", after.live_blocks,
            after.remote_frees_collected);
  }
  CHECK_MSG(end.live_blocks <= start.live_blocks + SS_SLACK && end.live_blocks + SS_SLACK >= start.live_blocks,
            "every block freed, yet live_blocks is %zu (%zu at the start)", end.live_blocks, start.live_blocks);
  CHECK_MSG(end.live_bytes <= start.live_bytes + SS_SLACK * 4096,
            "every block freed, yet live_bytes is %zu (%zu at the start)", end.live_bytes, start.live_bytes);
  CHECK_MSG(end.large_blocks == start.large_blocks, "every block freed, yet %zu large blocks (%zu at the start)",
            end.large_blocks, start.large_blocks);
  fclose(devnull);
  return 0;
}
