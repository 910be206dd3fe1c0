/* ta_mallopt and ta_getopt: the mmap threshold moves the router line (observed through the count of
 * large blocks in ta_stats_get), ta_getopt reflects what was set, bad values and unknown options are
 * refused, and a block outlives a change of threshold. Through ta_* only. */
#include "blocks.h"

static size_t large_blocks(void) {
  ta_stats_t st;
  ta_stats_get(&st);
  return st.large_blocks;
}

/* Allocates n bytes and says whether the router sent them down the mmap path. */
static int goes_large(size_t n) {
  size_t before = large_blocks();
  void *p = ta_malloc(n);
  CHECK_MSG(p != NULL, "ta_malloc(%zu) returned NULL", n);
  memset(p, 0x42, n);
  size_t after = large_blocks();
  CHECK_MSG(after == before || after == before + 1, "large blocks went from %zu to %zu", before, after);
  ta_free(p);
  CHECK_MSG(large_blocks() == before, "freeing a %zu-byte block left large blocks at %zu (was %zu)", n,
            large_blocks(), before);
  return after == before + 1;
}

static void set_threshold(long v) {
  CHECK_MSG(ta_mallopt(TA_OPT_MMAP_THRESHOLD, v) == 1, "ta_mallopt(MMAP_THRESHOLD, %ld) refused", v);
  CHECK_MSG(ta_getopt(TA_OPT_MMAP_THRESHOLD) == v, "ta_getopt(MMAP_THRESHOLD) = %ld after setting %ld",
            ta_getopt(TA_OPT_MMAP_THRESHOLD), v);
}

static void test_default_router(void) {
  CHECK_MSG(ta_getopt(TA_OPT_MMAP_THRESHOLD) == (long)TB_ROUTER_LINE,
            "default mmap threshold %ld, want %zu", ta_getopt(TA_OPT_MMAP_THRESHOLD), TB_ROUTER_LINE);
  CHECK(!goes_large(1));
  CHECK(!goes_large(64 * TB_KIB));
  CHECK(!goes_large(TB_ROUTER_LINE - 1));
  CHECK(goes_large(TB_ROUTER_LINE));
  CHECK(goes_large(TB_MIB));
  CHECK(goes_large(32 * TB_MIB));
}

static void test_moved_router(void) {
  set_threshold(TB_MIB);
  CHECK(!goes_large(TB_ROUTER_LINE));
  CHECK(!goes_large(512 * TB_KIB));
  CHECK(!goes_large(TB_MIB - 1));
  CHECK(goes_large(TB_MIB));
  CHECK(goes_large(TB_MIB + 1));

  set_threshold(64 * TB_KIB);
  CHECK(!goes_large(64 * TB_KIB - 1));
  CHECK(goes_large(64 * TB_KIB));
  CHECK(goes_large(100 * TB_KIB));

  set_threshold(TB_ROUTER_LINE);
  CHECK(!goes_large(TB_ROUTER_LINE - 1));
  CHECK(goes_large(TB_ROUTER_LINE));
}

/* A block keeps working after the threshold that routed it has changed: resize, free. */
static void test_blocks_outlive_threshold(void) {
  size_t baseline = large_blocks();
  unsigned char *big = ta_malloc(200 * TB_KIB); /* large under the default */
  CHECK(big != NULL);
  tb_fill(big, 200 * TB_KIB, 1, SIZE_MAX);
  set_threshold(TB_MIB);
  unsigned char *mid = ta_malloc(200 * TB_KIB); /* from an arena now */
  CHECK(mid != NULL);
  tb_fill(mid, 200 * TB_KIB, 2, SIZE_MAX);
  big = ta_realloc(big, 300 * TB_KIB);
  CHECK(big != NULL);
  TB_CHECK(big, 200 * TB_KIB, 1, SIZE_MAX);
  set_threshold(64 * TB_KIB);
  mid = ta_realloc(mid, 250 * TB_KIB);
  CHECK(mid != NULL);
  TB_CHECK(mid, 200 * TB_KIB, 2, SIZE_MAX);
  set_threshold(TB_ROUTER_LINE);
  ta_free(big);
  ta_free(mid);
  CHECK_MSG(large_blocks() == baseline, "after freeing both blocks %zu large blocks are live, not %zu",
            large_blocks(), baseline);
}

static void test_refused(void) {
  long thr = ta_getopt(TA_OPT_MMAP_THRESHOLD);
  CHECK(ta_mallopt(TA_OPT_MMAP_THRESHOLD, -1) == 0);
  CHECK(ta_mallopt(TA_OPT_MMAP_THRESHOLD, -4096) == 0);
  CHECK(ta_getopt(TA_OPT_MMAP_THRESHOLD) == thr);
  CHECK(ta_mallopt(0, 1) == 0);
  CHECK(ta_mallopt(999, 1) == 0);
  CHECK(ta_getopt(TA_OPT_MMAP_THRESHOLD) == thr);
}

/* The other options read back what was set; the old values are restored. */
static void test_round_trips(void) {
  static const struct {
    int opt;
    long value;
  } cases[] = {
      {TA_OPT_TRIM_THRESHOLD, 1 << 20}, {TA_OPT_TRIM_THRESHOLD, 256 << 10},
      {TA_OPT_TOP_PAD, 64 << 10},       {TA_OPT_TOP_PAD, 0},
      {TA_OPT_DECAY_MS, 0},             {TA_OPT_DECAY_MS, 250},
      {TA_OPT_DECAY_MS, -1},            {TA_OPT_ARENA_MAX, 4},
      {TA_OPT_ARENA_MAX, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    long old = ta_getopt(cases[i].opt);
    CHECK_MSG(ta_mallopt(cases[i].opt, cases[i].value) == 1, "ta_mallopt(%d, %ld) refused", cases[i].opt,
              cases[i].value);
    CHECK_MSG(ta_getopt(cases[i].opt) == cases[i].value, "ta_getopt(%d) = %ld after setting %ld",
              cases[i].opt, ta_getopt(cases[i].opt), cases[i].value);
    /* The allocator keeps working under the new setting. */
    void *p = ta_malloc(1000), *q = ta_malloc(300 * TB_KIB);
    CHECK(p != NULL && q != NULL);
    ta_free(p);
    ta_free(q);
    CHECK(ta_mallopt(cases[i].opt, old) == 1);
    CHECK(ta_getopt(cases[i].opt) == old);
  }
}

int main(void) {
  test_default_router();
  test_moved_router();
  test_blocks_outlive_threshold();
  test_refused();
  test_round_trips();
  set_threshold(TB_ROUTER_LINE);
  return 0;
}
