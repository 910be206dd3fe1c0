/* Helpers of the large-block tests: a pattern that names its block and offset; resident memory is
 * read with tests/trim's helpers (from /proc/self, without allocating). */
#ifndef TA_LARGE_UTIL_H
#define TA_LARGE_UTIL_H

#include "tamalloc.h"
#include "test.h"
#include "trim/trim_util.h" /* rss_bytes, sleep_ms, rss_wait_below, MIB */

#define KIB ((size_t)1 << 10)

/* The pattern of a block tagged `tag`: byte i is byte i % 8 of word i / 8 (wordv). Filled and
 * checked a word at a time, so multi-megabyte blocks are checked whole at memory speed. */
static inline uint64_t wordv(uint32_t tag, size_t j) {
  uint64_t z = ((uint64_t)tag << 40) ^ (j * 0x9e3779b97f4a7c15ull);
  return z ^ (z >> 29);
}
static inline unsigned char pat(uint32_t tag, size_t i) { return (unsigned char)(wordv(tag, i / 8) >> (8 * (i % 8))); }
static inline void pat_fill(unsigned char *p, uint32_t tag, size_t from, size_t to) {
  size_t i = from;
  for (; i < to && i % 8; i++) p[i] = pat(tag, i);
  for (; i + 8 <= to; i += 8) {
    uint64_t w = wordv(tag, i / 8);
    memcpy(p + i, &w, 8);
  }
  for (; i < to; i++) p[i] = pat(tag, i);
}
/* Index of the first byte in [from, to) that is not the pattern, or `to`. */
static inline size_t pat_check(const unsigned char *p, uint32_t tag, size_t from, size_t to) {
  size_t i = from;
  for (; i < to && i % 8; i++)
    if (p[i] != pat(tag, i)) return i;
  for (; i + 8 <= to; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    if (w != wordv(tag, i / 8)) break;
  }
  for (; i < to; i++)
    if (p[i] != pat(tag, i)) return i;
  return to;
}
/* Sparse forms for big blocks passed around by threads: the first and last 64 bytes and one word a
 * page, so a block's every page is checked without writing all of it. */
static inline void pat_sparse_fill(unsigned char *p, uint32_t tag, size_t n) {
  size_t head = n < 64 ? n : 64;
  pat_fill(p, tag, 0, head);
  pat_fill(p, tag, n - head, n);
  for (size_t i = 4096; i + 8 <= n; i += 4096) pat_fill(p, tag, i, i + 8);
}
static inline int pat_sparse_ok(const unsigned char *p, uint32_t tag, size_t n) {
  size_t head = n < 64 ? n : 64;
  if (pat_check(p, tag, 0, head) != head || pat_check(p, tag, n - head, n) != n) return 0;
  for (size_t i = 4096; i + 8 <= n; i += 4096)
    if (pat_check(p, tag, i, i + 8) != i + 8) return 0;
  return 1;
}

#endif
