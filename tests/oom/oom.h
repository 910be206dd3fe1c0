/* Shared by the exhaustion tests: the names under test, and a block format that lets a test check
 * every block it got back (a header naming the block's own size and serial, a fill pattern after). */
#ifndef TA_OOM_H
#define TA_OOM_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "tamalloc.h"
#include "test.h"

/* The standard names when the build overrides them, else tamalloc's ta_* names. */
#if TA_TEST_STD_NAMES
#include <malloc.h>
#define TN(f) f
#define TN_USABLE malloc_usable_size
#define TN_TRIM malloc_trim
#else
#define TN(f) ta_##f
#define TN_USABLE ta_usable_size
#define TN_TRIM ta_trim
#endif

static inline void *hide(void *p) {
  __asm__ volatile("" : "+r"(p));
  return p;
}

/* The functions that hand out memory, each exercised until it fails. */
enum { F_MALLOC, F_CALLOC, F_REALLOC, F_ALIGNED_ALLOC, F_POSIX_MEMALIGN, F_MEMALIGN, F_VALLOC, F_PVALLOC, F_COUNT };
static const char *const fn_names[F_COUNT] = {"malloc", "calloc", "realloc", "aligned_alloc",
                                              "posix_memalign", "memalign", "valloc", "pvalloc"};

/* The start of every block a test keeps: a list link, the size asked for, and a check word. */
typedef struct node_s {
  struct node_s *next;
  size_t size;
  uint64_t check; /* size ^ serial * odd constant: a block overwritten by another shows up here */
  uint64_t serial;
} node_t;
#define NODE_MIN ((size_t)sizeof(node_t))

static inline uint64_t node_check(size_t size, uint64_t serial) {
  return (uint64_t)size ^ (serial * 0x9e3779b97f4a7c15ull);
}

/* Pattern byte i of block `serial`: cheap, and different for neighbouring blocks. */
static inline unsigned char pat_byte(uint64_t serial, size_t i) {
  return (unsigned char)(serial * 131 + i / 4096 * 7 + 1);
}

/* Which bytes carry the pattern: every byte of the first 64 KiB, then the first and last byte of
 * each 4 KiB page (a block of megabytes is still checked on every page without touching all of it).
 * The choice depends on the position only, so a prefix of a block is checked the same way. */
static inline bool pat_at(size_t i) { return i < 65536 || i % 4096 == 0 || i % 4096 == 4095; }

/* Writes the pattern into bytes [sizeof(node_t), size) of the block (the header is the caller's). */
static inline void pat_fill(unsigned char *p, size_t size, uint64_t serial) {
  for (size_t i = sizeof(node_t); i < size; i = i < 65536 ? i + 1 : (i % 4096 == 0 ? i + 4095 : i + 1))
    if (pat_at(i)) p[i] = pat_byte(serial, i);
  if (size > sizeof(node_t)) p[size - 1] = pat_byte(serial, size - 1);
}
/* Checks bytes [sizeof(node_t), size); with `whole`, also the block's last byte. */
static inline bool pat_ok_n(const unsigned char *p, size_t size, uint64_t serial, bool whole) {
  for (size_t i = sizeof(node_t); i < size; i = i < 65536 ? i + 1 : (i % 4096 == 0 ? i + 4095 : i + 1))
    if (pat_at(i) && p[i] != pat_byte(serial, i)) return false;
  return !whole || size <= sizeof(node_t) || p[size - 1] == pat_byte(serial, size - 1);
}
static inline bool pat_ok(const unsigned char *p, size_t size, uint64_t serial) {
  return pat_ok_n(p, size, serial, true);
}

#endif
