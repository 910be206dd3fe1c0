/* The live counters move by what the program holds: 10,000 blocks of 100 bytes show in the totals and
 * in their size class (112 bytes), a block of every class shows in that class, calloc/realloc move
 * blocks between classes, a 1 MiB block shows in the large counters, and everything returns when
 * freed. Through ta_* only; nothing in this program allocates between the snapshots it compares. */
#include "stats.h"

#define N_SMALL 10000

static void test_class_table(void) {
  unsigned n = ta_stats_classes();
  CHECK_MSG(n > 8 && n < 1000, "ta_stats_classes() = %u", n);
  size_t prev = 0;
  for (unsigned c = 0; c < n; c++) {
    size_t bs = 0, lb = 0, ly = 0;
    CHECK_MSG(ta_stats_class(c, &bs, &lb, &ly) == 0, "ta_stats_class(%u) refused", c);
    CHECK_MSG(bs > prev && bs % 16 == 0, "class %u has block size %zu after %zu", c, bs, prev);
    CHECK_MSG(ly == lb * bs, "class %u: %zu live bytes in %zu blocks of %zu", c, ly, lb, bs);
    prev = bs;
  }
  size_t bs = 7, lb = 7, ly = 7;
  CHECK(ta_stats_class(n, &bs, &lb, &ly) == -1);
  CHECK(ta_stats_class(n + 1000, &bs, &lb, &ly) == -1);
  CHECK(ta_stats_class(UINT_MAX, &bs, &lb, &ly) == -1);
}

static void *small[N_SMALL];

static void test_small_blocks(void) {
  unsigned cls = ss_class_of_size(112);
  size_t cb0, cy0, cb1, cy1, cb2, cy2;
  ta_stats_t a = ss_stats();
  ss_class(cls, &cb0, &cy0);
  for (size_t i = 0; i < N_SMALL; i++) {
    small[i] = ta_malloc(100);
    CHECK(small[i] != NULL);
    memset(small[i], (int)i, 100);
  }
  ta_stats_t b = ss_stats();
  ss_class(cls, &cb1, &cy1);
  CHECK_MSG(b.live_blocks >= a.live_blocks + N_SMALL && b.live_blocks <= a.live_blocks + N_SMALL + SS_SLACK,
            "live_blocks went from %zu to %zu over %d allocations", a.live_blocks, b.live_blocks, N_SMALL);
  CHECK_MSG(b.live_bytes >= a.live_bytes + (size_t)N_SMALL * 100 && b.live_bytes <= a.live_bytes + (size_t)N_SMALL * 128,
            "live_bytes went from %zu to %zu over %d blocks of 100 bytes", a.live_bytes, b.live_bytes, N_SMALL);
  CHECK_MSG(cb1 == cb0 + N_SMALL, "class of 112 bytes: live blocks went from %zu to %zu", cb0, cb1);
  CHECK_MSG(cy1 == cy0 + (size_t)N_SMALL * 112, "class of 112 bytes: live bytes went from %zu to %zu", cy0, cy1);
  CHECK_MSG(b.committed_bytes >= b.live_bytes, "committed %zu < live %zu", b.committed_bytes, b.live_bytes);
  CHECK_MSG(b.segment_bytes >= b.committed_bytes, "segment bytes %zu < committed %zu", b.segment_bytes,
            b.committed_bytes);
  CHECK_MSG(b.resident_bytes <= b.committed_bytes, "resident %zu > committed %zu", b.resident_bytes, b.committed_bytes);
  CHECK_MSG(b.segments >= 1 && b.segments >= b.segments_brk, "%zu segments, %zu on brk", b.segments, b.segments_brk);
  CHECK_MSG(b.arenas >= 1 && b.arenas_pooled <= b.arenas, "%zu arenas, %zu pooled", b.arenas, b.arenas_pooled);
  CHECK_MSG(b.segment_grows >= b.segments, "%zu segment grows, %zu segments", b.segment_grows, b.segments);
  CHECK_MSG(b.fragmentation >= 0.0 && b.fragmentation <= 1.0, "fragmentation %g", b.fragmentation);
  CHECK_MSG(b.large_blocks == a.large_blocks, "small blocks moved large_blocks from %zu to %zu", a.large_blocks,
            b.large_blocks);

  for (size_t i = 0; i < N_SMALL; i++) ta_free(small[i]);
  ta_stats_t c = ss_stats();
  ss_class(cls, &cb2, &cy2);
  CHECK_MSG(cb2 == cb0 && cy2 == cy0, "class of 112 bytes after freeing: %zu blocks, %zu bytes (was %zu, %zu)", cb2,
            cy2, cb0, cy0);
  CHECK_MSG(c.live_blocks == a.live_blocks, "live_blocks %zu after freeing all, %zu before", c.live_blocks,
            a.live_blocks);
  CHECK_MSG(c.live_bytes == a.live_bytes, "live_bytes %zu after freeing all, %zu before", c.live_bytes, a.live_bytes);
}

/* One block of each class, sized exactly to the class, with the mmap line moved above the largest
 * class so that all of them come from arenas. */
static void *one[256];

static void test_every_class(void) {
  long old = ta_getopt(TA_OPT_MMAP_THRESHOLD);
  CHECK(ta_mallopt(TA_OPT_MMAP_THRESHOLD, (long)TB_MIB + 1) == 1);
  unsigned n = ta_stats_classes();
  CHECK(n <= 256);
  ta_stats_t a = ss_stats();
  size_t total = 0;
  for (unsigned c = 0; c < n; c++) {
    size_t bs, b0, y0, b1, y1;
    CHECK(ta_stats_class(c, &bs, &b0, &y0) == 0);
    one[c] = ta_malloc(bs);
    CHECK(one[c] != NULL);
    memset(one[c], 0x5a, bs < 4096 ? bs : 4096);
    ss_class(c, &b1, &y1);
    CHECK_MSG(b1 == b0 + 1 && y1 == y0 + bs, "ta_malloc(%zu): class %u went from %zu blocks/%zu bytes to %zu/%zu", bs,
              c, b0, y0, b1, y1);
    total += bs;
  }
  ta_stats_t b = ss_stats();
  CHECK_MSG(b.live_blocks == a.live_blocks + n, "one block per class: live_blocks %zu -> %zu for %u classes",
            a.live_blocks, b.live_blocks, n);
  CHECK_MSG(b.live_bytes == a.live_bytes + total, "one block per class: live_bytes %zu -> %zu, want +%zu",
            a.live_bytes, b.live_bytes, total);
  CHECK_MSG(b.large_blocks == a.large_blocks, "a class-sized block went to the mmap path (%zu -> %zu large)",
            a.large_blocks, b.large_blocks);
  for (unsigned c = 0; c < n; c++) {
    size_t bs, b0, y0, b1, y1;
    CHECK(ta_stats_class(c, &bs, &b0, &y0) == 0);
    ta_free(one[c]);
    ss_class(c, &b1, &y1);
    CHECK_MSG(b1 + 1 == b0 && y1 + bs == y0, "ta_free of a %zu-byte block: class %u went from %zu to %zu blocks", bs,
              c, b0, b1);
  }
  ta_stats_t c = ss_stats();
  CHECK_EQ_SZ(c.live_blocks, a.live_blocks);
  CHECK_EQ_SZ(c.live_bytes, a.live_bytes);
  CHECK(ta_mallopt(TA_OPT_MMAP_THRESHOLD, old) == 1);
}

static void test_calloc_realloc(void) {
  unsigned c112 = ss_class_of_size(112), c1024 = ss_class_of_size(1024);
  size_t b112, y112, b1024, y1024, k112, z112, k1024, z1024;
  ss_class(c112, &b112, &y112);
  ss_class(c1024, &b1024, &y1024);
  char *p = ta_calloc(10, 10);
  CHECK(p != NULL);
  ss_class(c112, &k112, &z112);
  CHECK_MSG(k112 == b112 + 1, "ta_calloc(10, 10): class of 112 bytes went from %zu to %zu blocks", b112, k112);
  p = ta_realloc(p, 1000);
  CHECK(p != NULL);
  ss_class(c112, &k112, &z112);
  ss_class(c1024, &k1024, &z1024);
  CHECK_MSG(k112 == b112 && k1024 == b1024 + 1,
            "ta_realloc(100 -> 1000 bytes): class 112 has %zu blocks (was %zu), class 1024 %zu (was %zu)", k112, b112,
            k1024, b1024);
  ta_free(p);
  ss_class(c1024, &k1024, &z1024);
  CHECK_EQ_SZ(k1024, b1024);
  CHECK_EQ_SZ(z1024, y1024);
}

static void test_large(void) {
  ta_stats_t a = ss_stats();
  void *p = ta_malloc(TB_MIB);
  CHECK(p != NULL);
  memset(p, 1, TB_MIB);
  ta_stats_t b = ss_stats();
  CHECK_MSG(b.large_blocks == a.large_blocks + 1, "ta_malloc(1 MiB): large_blocks %zu -> %zu", a.large_blocks,
            b.large_blocks);
  CHECK_MSG(b.large_bytes >= a.large_bytes + TB_MIB && b.large_bytes <= a.large_bytes + TB_MIB + 64 * TB_KIB,
            "ta_malloc(1 MiB): large_bytes %zu -> %zu", a.large_bytes, b.large_bytes);
  CHECK_MSG(b.live_blocks == a.live_blocks, "a large block moved live_blocks %zu -> %zu (arena blocks only)",
            a.live_blocks, b.live_blocks);
  void *q = ta_malloc(10 * TB_MIB);
  CHECK(q != NULL);
  ta_stats_t c = ss_stats();
  CHECK_EQ_SZ(c.large_blocks, a.large_blocks + 2);
  CHECK_MSG(c.large_bytes >= b.large_bytes + 10 * TB_MIB, "ta_malloc(10 MiB): large_bytes %zu -> %zu", b.large_bytes,
            c.large_bytes);
  q = ta_realloc(q, 20 * TB_MIB);
  CHECK(q != NULL);
  ta_stats_t d = ss_stats();
  CHECK_MSG(d.large_blocks == a.large_blocks + 2 && d.large_bytes >= b.large_bytes + 20 * TB_MIB,
            "after growing 10 -> 20 MiB: %zu large blocks, %zu bytes", d.large_blocks, d.large_bytes);
  ta_free(q);
  ta_free(p);
  ta_stats_t e = ss_stats();
  CHECK_MSG(e.large_blocks == a.large_blocks && e.large_bytes == a.large_bytes,
            "after freeing: %zu large blocks, %zu bytes (was %zu, %zu)", e.large_blocks, e.large_bytes, a.large_blocks,
            a.large_bytes);
}

int main(void) {
  ta_free(ta_malloc(1)); /* initialise before the first snapshot */
  test_class_table();
  test_small_blocks();
  test_every_class();
  test_calloc_realloc();
  test_large();
  return 0;
}
