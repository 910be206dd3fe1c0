/* ta_stats_json: snprintf's contract (the length needed, truncation that still NUL-terminates, no byte
 * written past len), one JSON object with every member of the schema (README, "Statistics"), and
 * numbers that agree with ta_stats_get, ta_stats_class and ta_getopt taken just before with nothing
 * running. A thread that exits with live blocks leaves a pooled arena that the report lists. Run with
 * the background thread off, so that nothing changes between the snapshots compared. */
#include "stats.h"

#define BIG (1 << 20)
#define KEPT 300 /* blocks the exiting thread leaves live */

static char buf[BIG];
static char small_buf[BIG];
static void *kept[KEPT];

static void *leave_blocks(void *arg) {
  (void)arg;
  for (int i = 0; i < KEPT; i++) {
    kept[i] = ta_malloc(200);
    CHECK(kept[i] != NULL);
    memset(kept[i], 7, 200);
  }
  return NULL;
}

/* snprintf semantics: NULL/0, 1 byte, a few bytes, one short, exact, with canaries after len. */
static void test_truncation(void) {
  size_t need = ta_stats_json(NULL, 0);
  CHECK_MSG(need > 100 && need < BIG, "ta_stats_json(NULL, 0) = %zu", need);
  size_t full = ta_stats_json(buf, BIG);
  CHECK_MSG(full == need, "ta_stats_json needs %zu bytes, then %zu with nothing running", need, full);
  CHECK_EQ_SZ(strlen(buf), full);

  const size_t lens[] = {1, 2, 10, 64, need / 2, need - 1, need, need + 1};
  for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
    size_t len = lens[k];
    memset(small_buf, '#', len + 64);
    size_t got = ta_stats_json(small_buf, len);
    CHECK_MSG(got == need, "ta_stats_json(buf, %zu) returned %zu, want the full length %zu", len, got, need);
    size_t wrote = len <= need ? len - 1 : need;
    CHECK_MSG(small_buf[wrote] == '\0', "ta_stats_json(buf, %zu): no NUL at offset %zu", len, wrote);
    CHECK_MSG(memcmp(small_buf, buf, wrote) == 0, "ta_stats_json(buf, %zu) wrote something else than a prefix", len);
    for (size_t i = len; i < len + 64; i++)
      CHECK_MSG(small_buf[i] == '#', "ta_stats_json(buf, %zu) wrote past len, at offset %zu", len, i);
  }
  /* len 0 with a real buffer writes nothing at all. */
  small_buf[0] = '#';
  CHECK_EQ_SZ(ta_stats_json(small_buf, 0), need);
  CHECK(small_buf[0] == '#');
  /* And a truncated report does not parse as a whole one. */
  (void)ta_stats_json(small_buf, need / 2);
  CHECK(js_parse(small_buf, strlen(small_buf)) < 0);
}

/* The report against the other views of the same moment. */
static void test_agrees(const char *what) {
  ta_stats_t st = ss_stats();
  size_t len;
  int root = ss_json_snapshot(buf, BIG, &len);
  ss_check_stats_json(root, true);

  CHECK_MSG(js_u64(root, "totals.live_bytes") == st.live_bytes, "%s: totals.live_bytes %llu, ta_stats_get %zu", what,
            js_u64(root, "totals.live_bytes"), st.live_bytes);
  CHECK_MSG(js_u64(root, "totals.live_blocks") == st.live_blocks, "%s: totals.live_blocks %llu, ta_stats_get %zu",
            what, js_u64(root, "totals.live_blocks"), st.live_blocks);
  CHECK_EQ_SZ(js_u64(root, "totals.committed_bytes"), st.committed_bytes);
  CHECK_EQ_SZ(js_u64(root, "totals.resident_bytes"), st.resident_bytes);
  CHECK_EQ_SZ(js_u64(root, "totals.large_blocks"), st.large_blocks);
  CHECK_EQ_SZ(js_u64(root, "totals.large_bytes"), st.large_bytes);
  double frag = js_num(root, "totals.fragmentation");
  CHECK_MSG(fabs(frag - st.fragmentation) < 0.01, "%s: totals.fragmentation %g, ta_stats_get %g", what, frag,
            st.fragmentation);
  CHECK_EQ_SZ(js_u64(root, "segments.brk.count"), st.segments_brk);
  CHECK_EQ_SZ(js_u64(root, "segments.brk.count") + js_u64(root, "segments.mmap.count"), st.segments);
  CHECK_EQ_SZ(js_u64(root, "segments.brk.reserved_bytes") + js_u64(root, "segments.mmap.reserved_bytes"),
              st.segment_bytes);
  CHECK_EQ_SZ(js_u64(root, "trim.purged_bytes"), st.purged_bytes);
  CHECK_EQ_SZ(js_u64(root, "trim.purge_calls"), st.purge_calls);
  CHECK_EQ_SZ(js_u64(root, "events.segment_grows"), st.segment_grows);
  CHECK_EQ_SZ(js_u64(root, "events.remote_frees_collected"), st.remote_frees_collected);
  CHECK_EQ_SZ(js_u64(root, "events.arena_adoptions"), st.arena_adoptions);
  CHECK_EQ_SZ(js_u64(root, "events.arenas_created"), st.arenas);

  for (size_t k = 0; k < sizeof ss_config_keys / sizeof ss_config_keys[0]; k++)
    CHECK_MSG(ss_config_value(root, k) == ta_getopt(ss_config_opts[k]), "%s: config.%s = %lld, ta_getopt says %ld",
              what, ss_config_keys[k], ss_config_value(root, k), ta_getopt(ss_config_opts[k]));

  /* Every class with live blocks is listed, with ta_stats_class's numbers. */
  int classes = js_path(root, "classes");
  unsigned n = ta_stats_classes();
  for (unsigned c = 0; c < n; c++) {
    size_t bs, lb, ly;
    CHECK(ta_stats_class(c, &bs, &lb, &ly) == 0);
    int found = -1;
    for (int e = js_nodes[classes].first; e >= 0; e = js_nodes[e].next)
      if (js_u64(e, "class") == c) found = e;
    if (lb == 0) {
      CHECK_MSG(found < 0, "%s: class %u is listed with no live blocks", what, c);
      continue;
    }
    CHECK_MSG(found >= 0, "%s: class %u (%zu bytes) has %zu live blocks but is not in classes[]", what, c, bs, lb);
    CHECK_MSG(js_u64(found, "live_blocks") == lb && js_u64(found, "live_bytes") == ly,
              "%s: class %u: JSON %llu blocks/%llu bytes, ta_stats_class %zu/%zu", what, c,
              js_u64(found, "live_blocks"), js_u64(found, "live_bytes"), lb, ly);
  }

  /* arenas[]: one entry per arena created; as many pooled as ta_stats_get counts. */
  int arenas = js_path(root, "arenas");
  CHECK_MSG((size_t)js_nodes[arenas].count == st.arenas, "%s: %d arenas listed, ta_stats_get counts %zu", what,
            js_nodes[arenas].count, st.arenas);
  size_t pooled = 0;
  for (int a = js_nodes[arenas].first; a >= 0; a = js_nodes[a].next) pooled += js_str_is(js_get(a, "state"), "pooled");
  CHECK_MSG(pooled == st.arenas_pooled, "%s: %zu arenas listed as pooled, ta_stats_get counts %zu", what, pooled,
            st.arenas_pooled);

  ss_python_check(SS_PY_JSON
                  "\nd=json.load(open(sys.argv[1]))"
                  "\nassert d['version']==1"
                  "\nassert sum(c['live_bytes'] for c in d['classes'])==d['totals']['live_bytes']"
                  "\nassert sum(c['live_blocks'] for c in d['classes'])==d['totals']['live_blocks']"
                  "\nassert 0<=d['totals']['fragmentation']<=1",
                  buf, len, "ta_stats_json's report");
}

int main(void) {
  void *warm = ta_malloc(64);
  CHECK(warm != NULL);
  test_truncation();
  test_agrees("fresh");
  /* The config object follows ta_mallopt. */
  long old_decay = ta_getopt(TA_OPT_DECAY_MS), old_max = ta_getopt(TA_OPT_ARENA_MAX);
  long old_thr = ta_getopt(TA_OPT_MMAP_THRESHOLD);
  CHECK(ta_mallopt(TA_OPT_DECAY_MS, -250) == 1 && ta_mallopt(TA_OPT_ARENA_MAX, 7) == 1);
  CHECK(ta_mallopt(TA_OPT_MMAP_THRESHOLD, 300000) == 1);
  test_agrees("after ta_mallopt");
  CHECK(ta_mallopt(TA_OPT_DECAY_MS, old_decay) == 1 && ta_mallopt(TA_OPT_ARENA_MAX, old_max) == 1);
  CHECK(ta_mallopt(TA_OPT_MMAP_THRESHOLD, old_thr) == 1);

  /* Blocks in several classes and two large ones. */
  static void *blocks[3000];
  for (size_t i = 0; i < 3000; i++) {
    blocks[i] = ta_malloc(16 + (i % 40) * 50);
    CHECK(blocks[i] != NULL);
  }
  void *large1 = ta_malloc(TB_MIB), *large2 = ta_malloc(3 * TB_MIB);
  CHECK(large1 != NULL && large2 != NULL);
  test_agrees("3000 blocks, 2 large");
  test_truncation();

  /* A thread exits with blocks live: its arena is pooled, the report lists it with them. */
  pthread_t t;
  CHECK(pthread_create(&t, NULL, leave_blocks, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  ta_stats_t st = ss_stats();
  CHECK_MSG(st.arenas >= 2 && st.arenas_pooled >= 1, "after a thread exited: %zu arenas, %zu pooled", st.arenas,
            st.arenas_pooled);
  test_agrees("a pooled arena");
  int root = ss_json_snapshot(buf, BIG, NULL);
  bool seen = false;
  for (int a = js_nodes[js_path(root, "arenas")].first; a >= 0; a = js_nodes[a].next)
    if (js_str_is(js_get(a, "state"), "pooled") && js_u64(a, "live_blocks") >= KEPT) seen = true;
  CHECK_MSG(seen, "no pooled arena in the report holds the %d blocks the exited thread left", KEPT);

  for (size_t i = 0; i < 3000; i += 2) ta_free(blocks[i]);
  ta_free(large1);
  test_agrees("half freed");
  for (size_t i = 1; i < 3000; i += 2) ta_free(blocks[i]);
  for (int i = 0; i < KEPT; i++) ta_free(kept[i]);
  ta_free(large2);
  ta_free(warm);
  test_agrees("all freed");
  return 0;
}
