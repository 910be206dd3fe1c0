/* ta_free_sized and ta_free_aligned_sized with the right size (the size asked of malloc, calloc,
 * aligned_alloc, or of the last realloc) free the block, keep errno, and really return the memory (a
 * long loop of them leaves the segments and the large blocks where they were). Through ta_* only. */
#include "blocks.h"

#include <errno.h>

static size_t segment_bytes(void) {
  ta_stats_t st;
  ta_stats_get(&st);
  return st.segment_bytes;
}

static size_t large_blocks(void) {
  ta_stats_t st;
  ta_stats_get(&st);
  return st.large_blocks;
}

static const size_t sizes[] = {0, 1, 15, 16, 17, 40, 48, 100, 1000, 4096, 5000, 65536, 100000,
                               TB_ROUTER_LINE - 1, TB_ROUTER_LINE, TB_ROUTER_LINE + 1, TB_MIB,
                               5 * TB_MIB + 3};
#define N_SIZES (sizeof sizes / sizeof sizes[0])

static void test_free_sized(void) {
  for (size_t i = 0; i < N_SIZES; i++) {
    size_t n = sizes[i];
    void *p = ta_malloc(n);
    CHECK(p != NULL);
    memset(p, 1, n);
    errno = 1234;
    ta_free_sized(p, n);
    CHECK_EQ_SZ(errno, 1234);

    /* calloc: the size is count * size. */
    p = ta_calloc(n > 16 ? 16 : 1, n > 16 ? n / 16 : n);
    CHECK(p != NULL);
    ta_free_sized(p, n > 16 ? n / 16 * 16 : n);

    /* After reallocs, the size of the last one. */
    void *q = ta_malloc(n / 3 + 1);
    CHECK(q != NULL);
    q = ta_realloc(q, 2 * n + 100);
    CHECK(q != NULL);
    q = ta_realloc(q, n + 1);
    CHECK(q != NULL);
    ta_free_sized(q, n + 1);

    for (size_t a = 1; a <= ((size_t)4 << 20); a *= 4) {
      void *r = ta_aligned_alloc(a, n);
      CHECK(r != NULL);
      CHECK_ALIGNED(r, a);
      memset(r, 2, n);
      errno = 1234;
      ta_free_aligned_sized(r, a, n);
      CHECK_EQ_SZ(errno, 1234);
    }
  }
  ta_free_sized(NULL, 0);
  ta_free_sized(NULL, 100);
  ta_free_aligned_sized(NULL, 64, 0);
  ta_free_aligned_sized(NULL, 4096, 4096);

  /* Freeing with the size really returns the memory: a long malloc/free_sized loop stays in place. */
  for (int warm = 0; warm < 2; warm++) {
    size_t before_seg = segment_bytes(), before_large = large_blocks();
    for (int i = 0; i < 20000; i++) {
      size_t n = (size_t)(i % 64 + 1) * 1000; /* 1000 .. 64000: one block per iteration */
      void *p = ta_malloc(n);
      CHECK(p != NULL);
      ((volatile char *)p)[n - 1] = 1;
      ta_free_sized(p, n);
      void *a = ta_aligned_alloc(256, n);
      CHECK(a != NULL);
      ta_free_aligned_sized(a, 256, n);
    }
    for (int i = 0; i < 200; i++) {
      void *p = ta_malloc(TB_MIB);
      CHECK(p != NULL);
      ta_free_sized(p, TB_MIB);
    }
    if (warm == 1) {
      CHECK_MSG(segment_bytes() <= before_seg + 8 * TB_MIB,
                "malloc/free_sized loop grew the segments from %zu to %zu bytes", before_seg,
                segment_bytes());
      CHECK_EQ_SZ(large_blocks(), before_large);
    }
  }
}

/* Requests between the largest size class (1 MiB) and a raised mmap threshold get mappings that are
 * kept when freed and handed to a later request of about the same size, possibly a little smaller.
 * Freeing such a block with the size that was asked must still be accepted. Each risky call is
 * announced first: a wrong rejection aborts the process. */
static void test_free_sized_retained(void) {
  long thr = ta_getopt(TA_OPT_MMAP_THRESHOLD);
  CHECK(ta_mallopt(TA_OPT_MMAP_THRESHOLD, 32L << 20) == 1);
  static const size_t pairs[][2] = {
      {1900 * TB_KIB, 1600 * TB_KIB}, {3 * TB_MIB, 5 * TB_MIB / 2}, {5 * TB_MIB, 4200 * TB_KIB},
      {1100 * TB_KIB, 1100 * TB_KIB - 4096}};
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    size_t first = pairs[i][0], second = pairs[i][1];
    for (int how = 0; how < 4; how++) {
      void *a = ta_malloc(first);
      CHECK(a != NULL);
      memset(a, 0xa5, first);
      ta_free(a); /* below the threshold: its mapping is kept */
      void *b;
      switch (how) {
      case 0: b = ta_malloc(second); break;
      case 1: b = ta_calloc(1, second); break;
      case 2: b = ta_realloc(ta_malloc(100), second); break;
      default: b = ta_aligned_alloc(16, second); break;
      }
      CHECK(b != NULL);
      size_t u = ta_usable_size(b);
      CHECK(u >= second);
      if (how == 1) CHECK(tb_first_nonzero(b, second) == SIZE_MAX);
      memset(b, 0x5a, second);
      fprintf(stderr, "free%s_sized of a %zu-byte block (usable %zu, made way %d after freeing %zu) ...\n",
              how == 3 ? "_aligned" : "", second, u, how, first);
      if (how == 3) ta_free_aligned_sized(b, 16, second);
      else ta_free_sized(b, second);
    }
  }
  CHECK(ta_mallopt(TA_OPT_MMAP_THRESHOLD, thr) == 1);
}

int main(void) {
  test_free_sized();
  test_free_sized_retained();
  return 0;
}
