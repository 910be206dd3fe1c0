/* Issue 11, test 5: the redis pattern. 2,000,000 blocks of 16-4096 B (uniform sizes, each written
 * in full), then a random 70% of them freed. An OS page that still overlaps a live block cannot go
 * back; every other one must, by the decay schedule alone (`decay`: no ta_trim, the test waits twice
 * the decay time the runner sets, TAMALLOC_DECAY_MS=200, then looks for a few seconds more) and at
 * once when asked (`trim`: ta_trim(0)). Bound: RSS <= start + the distinct 4 KiB pages the live
 * blocks overlap + 16 MiB. The pages are counted with a bitmap over the live blocks' address range;
 * that bitmap and the pointer table are mapped directly, and the table is resident before the start
 * is read, so neither counts against tamalloc. TA_TEST_SCALE divides the block count. */
#include "tamalloc.h"
#include "trim_util.h"

static long decay_ms(void) {
  const char *s = getenv("TAMALLOC_DECAY_MS");
  return s ? atol(s) : 1000;
}

int main(int argc, char **argv) {
  CHECK(argc == 2);
  int trim = strcmp(argv[1], "trim") == 0;
  CHECK(trim || strcmp(argv[1], "decay") == 0);
  test_rng_t rng = {test_seed(70)};
  size_t n = (size_t)test_scale(2000000);
  unsigned char **v = trim_map(n * sizeof *v, 1);
  ta_free(ta_malloc(1));
  size_t start = rss_bytes();
  for (size_t i = 0; i < n; i++) {
    size_t sz = 16 + test_rng_below(&rng, 4096 - 16 + 1);
    v[i] = ta_malloc(sz);
    CHECK(v[i] != NULL);
    memset(v[i], (int)(((uintptr_t)v[i] >> 4) & 0xff), sz); /* survivors are checked at the end */
  }
  size_t peak = rss_bytes();
  size_t nlive = 0, live = 0;
  for (size_t i = 0; i < n; i++) {
    if (test_rng_below(&rng, 10) < 7) {
      ta_free(v[i]);
    } else {
      v[nlive++] = v[i];
    }
  }
  if (trim) CHECK(ta_trim(0) == 1);
  size_t after_free = rss_bytes();

  /* The distinct OS pages the survivors overlap (their usable extent: what the allocator knows). */
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (size_t i = 0; i < nlive; i++) {
    uintptr_t a = (uintptr_t)v[i], e = a + ta_usable_size(v[i]);
    if (a < lo) lo = a;
    if (e > hi) hi = e;
    live += ta_usable_size(v[i]);
  }
  size_t first = lo / 4096, npages = (hi - 1) / 4096 - first + 1;
  size_t map_bytes = (npages / 64 + 1) * sizeof(uint64_t);
  uint64_t *bits = trim_map(map_bytes, 0);
  size_t distinct = 0;
  for (size_t i = 0; i < nlive; i++) {
    uintptr_t a = (uintptr_t)v[i], e = a + ta_usable_size(v[i]) - 1;
    for (size_t pg = a / 4096 - first; pg <= e / 4096 - first; pg++) {
      uint64_t bit = (uint64_t)1 << (pg % 64);
      if (!(bits[pg / 64] & bit)) {
        bits[pg / 64] |= bit;
        distinct++;
      }
    }
  }
  trim_unmap(bits, map_bytes);
  size_t needed = distinct * 4096, limit = start + needed + 16 * MIB;

  size_t end = after_free;
  if (!trim) {
    sleep_ms(2 * decay_ms());
    end = rss_wait_below(limit, 4000);
  }
  printf("%s: %zu blocks, %zu live (%zu MiB) overlapping %zu MiB of pages; rss start %zu MiB, peak %zu MiB, "
         "after the frees%s %zu MiB, end %zu MiB (limit %zu MiB)\n",
         argv[1], n, nlive, live / MIB, needed / MIB, start / MIB, peak / MIB, trim ? " and ta_trim(0)" : "",
         after_free / MIB, end / MIB, limit / MIB);
  fflush(stdout);
  CHECK_MSG(end <= limit, "%zu MiB resident, live blocks' pages %zu MiB, start %zu MiB", end / MIB, needed / MIB,
            start / MIB);
  /* Giving pages back around the survivors must not have touched them. */
  for (size_t i = 0; i < nlive; i++) {
    unsigned char want = (unsigned char)(((uintptr_t)v[i] >> 4) & 0xff);
    CHECK(v[i][0] == want && v[i][15] == want);
  }
  trim_unmap(v, n * sizeof *v);
  return 0;
}
