/* Block patterns shared by the api and stress suites: bytes that tell one block from another, a writer
 * that proves a block is ours to write, sizes drawn log-uniformly, and a check that live blocks never
 * overlap. Tests include this after test.h; everything here is static inline. */
#ifndef TA_TEST_BLOCKS_H
#define TA_TEST_BLOCKS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tamalloc.h"
#include "test.h"

#define TB_KIB ((size_t)1024)
#define TB_MIB ((size_t)1024 * 1024)
#define TB_ROUTER_LINE (128 * TB_KIB) /* the default mmap threshold: requests >= this are mmapped */
#define TB_PAGE ((size_t)4096)        /* stride of the sparse pattern (every page gets a word) */
#define TB_EDGE ((size_t)4096)        /* bytes patterned in full at each end of a sparse block */

/* Word `w` of the pattern of block `id`. Differs between blocks and along a block, so an overlap, a
 * shifted copy or a stale block shows as a mismatch. */
static inline uint64_t tb_word(uint64_t id, uint64_t w) {
  uint64_t z = (id + 1) * 0x9e3779b97f4a7c15ull ^ (w + 1) * 0xbf58476d1ce4e5b9ull;
  return z ^ (z >> 29) ^ (z >> 47);
}

static inline uint8_t tb_byte(uint64_t id, size_t off) {
  return (uint8_t)(tb_word(id, off / 8) >> (8 * (off % 8)));
}

/* Writes (check == 0) or compares (check != 0) the pattern of block `id` over bytes [off, end) of p.
 * Returns the first mismatching offset, or SIZE_MAX. */
static inline size_t tb_range(unsigned char *p, size_t off, size_t end, uint64_t id, int check) {
  size_t i = off;
  for (; i < end && i % 8 != 0; i++) {
    uint8_t b = tb_byte(id, i);
    if (!check) p[i] = b;
    else if (p[i] != b) return i;
  }
  for (; i + 8 <= end; i += 8) {
    uint64_t w = tb_word(id, i / 8);
    if (!check) {
      memcpy(p + i, &w, 8);
    } else {
      uint64_t got;
      memcpy(&got, p + i, 8);
      if (got != w) {
        for (size_t k = 0; k < 8; k++)
          if (p[i + k] != tb_byte(id, i + k)) return i + k;
      }
    }
  }
  for (; i < end; i++) {
    uint8_t b = tb_byte(id, i);
    if (!check) p[i] = b;
    else if (p[i] != b) return i;
  }
  return SIZE_MAX;
}

/* Applies the pattern of block `id`, filled as a block of `n` bytes, to the offsets below `limit`.
 * Blocks of up to `full` bytes get every byte; bigger ones get both edges in full and one word every
 * `stride` bytes between them. With stride TB_PAGE every page is written (the unit in which memory is
 * ours or not) without paying for every byte of a 100 MiB block. `limit` < n checks the prefix that
 * survives a shrinking realloc. */
static inline size_t tb_apply_stride(void *block, size_t n, uint64_t id, int check, size_t full,
                                     size_t limit, size_t stride) {
  unsigned char *p = block;
  size_t end = limit < n ? limit : n;
  if (n <= full || n <= 2 * TB_EDGE) return tb_range(p, 0, end, id, check);
  size_t r = tb_range(p, 0, end < TB_EDGE ? end : TB_EDGE, id, check);
  if (r != SIZE_MAX) return r;
  for (size_t off = stride; off + 8 <= n - TB_EDGE && off + 8 <= end; off += stride) {
    r = tb_range(p, off, off + 8, id, check);
    if (r != SIZE_MAX) return r;
  }
  if (end > n - TB_EDGE) return tb_range(p, n - TB_EDGE, end, id, check);
  return SIZE_MAX;
}

static inline size_t tb_apply(void *block, size_t n, uint64_t id, int check, size_t full, size_t limit) {
  return tb_apply_stride(block, n, id, check, full, limit, TB_PAGE);
}

static inline void tb_fill(void *p, size_t n, uint64_t id, size_t full) {
  (void)tb_apply(p, n, id, 0, full, n);
}

/* Aborts the test with the block's identity if its pattern (filled as `n` bytes) is damaged below
 * `limit`. */
#define TB_CHECK_PREFIX(p, n, id, full, limit)                                                        \
  do {                                                                                               \
    size_t tb_bad_ = tb_apply((p), (n), (id), 1, (full), (limit));                                    \
    CHECK_MSG(tb_bad_ == SIZE_MAX, "block %p (id %llu, %zu bytes) damaged at offset %zu: 0x%02x, want 0x%02x", \
              (void *)(p), (unsigned long long)(id), (size_t)(n), tb_bad_,                           \
              ((unsigned char *)(p))[tb_bad_], tb_byte((id), tb_bad_));                                 \
  } while (0)
#define TB_CHECK(p, n, id, full) TB_CHECK_PREFIX(p, n, id, full, (size_t)(n))

/* First nonzero byte of p[0..n), or SIZE_MAX. */
static inline size_t tb_first_nonzero(const void *block, size_t n) {
  const unsigned char *p = block;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    if (w != 0) break;
  }
  for (; i < n; i++)
    if (p[i] != 0) return i;
  return SIZE_MAX;
}

/* A size in [2^lo_bits, 2^hi_bits): the exponent uniform, then the size uniform within its power of
 * two, so small sizes are as common as in real programs without starving the big ones. */
static inline size_t tb_log_uniform(test_rng_t *r, unsigned lo_bits, unsigned hi_bits) {
  unsigned b = lo_bits + (unsigned)test_rng_below(r, hi_bits - lo_bits);
  size_t base = (size_t)1 << b;
  return base + (size_t)test_rng_below(r, base);
}

/* Live blocks, for the overlap check: start and usable size as tamalloc reports it. */
typedef struct tb_span_s {
  uintptr_t start; /* the pointer tamalloc returned */
  size_t len;      /* ta_usable_size of it */
} tb_span_t;

static inline int tb_span_cmp(const void *a, const void *b) {
  uintptr_t x = ((const tb_span_t *)a)->start, y = ((const tb_span_t *)b)->start;
  return x < y ? -1 : x > y;
}

/* Sorts the spans and aborts if any two share a byte (every block, even of size 0, owns >= 1 byte of
 * address, so equal starts are an overlap too). */
static inline void tb_check_disjoint(tb_span_t *s, size_t n) {
  qsort(s, n, sizeof *s, tb_span_cmp);
  for (size_t i = 1; i < n; i++) {
    CHECK_MSG(s[i - 1].start != s[i].start, "two live blocks at %p", (void *)s[i].start);
    CHECK_MSG(s[i - 1].start + s[i - 1].len <= s[i].start,
              "live blocks overlap: %p (usable %zu) and %p", (void *)s[i - 1].start, s[i - 1].len,
              (void *)s[i].start);
  }
}

#endif
