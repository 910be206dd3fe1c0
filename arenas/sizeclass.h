/* Size classes: the only place that maps a request size to a class and back.
 *
 * Spacing. Classes 0..7 are 16, 32, ..., 128 bytes (every multiple of the 16-byte alignment). Above
 * 128 each power-of-two interval (2^p, 2^(p+1)] is split into four equal steps of 2^(p-2):
 * 160, 192, 224, 256, 320, 384, 448, 512, ... up to 1 MiB. A request just above a class boundary gets
 * the next class, which is at most a quarter of a power of two larger, so internal waste stays below
 * 20% of the block (the worst case is 2^p + 1 served by 2^p + 2^(p-2): waste 2^(p-2)/(1.25 * 2^p));
 * below 128 bytes the waste is under 16 bytes. Four steps per doubling keep the number of classes
 * (60) small, so an arena's table of current pages is a few cache lines.
 *
 * Every class is a multiple of 16, and every fourth class above 128 is a power of two: a block of a
 * power-of-two class placed at a multiple of its size inside a 64 KiB-aligned page is aligned to its
 * size, which is how aligned requests up to 64 KiB are served from the bins (see ta_class_for_aligned).
 *
 * Lookup: sizes up to 1024 use a 65-entry table indexed by (size + 15) / 16; larger sizes use the bit
 * arithmetic below. tests/unit/sizeclass_test.c walks every size up to the largest class both ways. */
#ifndef TA_SIZECLASS_H
#define TA_SIZECLASS_H

#include "src/common.h"

#pragma GCC visibility push(hidden)

#define TA_CLASSES 60                      /* number of size classes */
#define TA_CLASS_MAX_SIZE ((size_t)1 << 20) /* the largest class: 1 MiB */
#define TA_SMALL_TABLE_MAX ((size_t)1024)  /* sizes up to this use the lookup table */
#define TA_ALIGNED_BIN_MAX ((size_t)1 << 16) /* alignments up to this are served from bins */

/* Indexed by the size itself, not by 16-byte steps: 1 KiB of table (a program's common sizes touch a
 * few of its cache lines) saves the malloc fast path the add and shift of the rounding. */
extern const uint8_t ta_class_table[TA_SMALL_TABLE_MAX + 1];

/* Class of a size <= TA_SMALL_TABLE_MAX: one load. */
TA_INLINE unsigned ta_class_small(size_t size) { return ta_class_table[size]; }

/* Class of a size in (128, TA_CLASS_MAX_SIZE]. p = floor(log2(size - 1)) so size is in (2^p, 2^(p+1)];
 * step j in 1..4 is the quarter of that interval the size rounds up to. */
TA_INLINE unsigned ta_class_large(size_t size) {
  unsigned p = 63u - (unsigned)__builtin_clzll((unsigned long long)(size - 1));
  unsigned j = (unsigned)(((size - 1 - ((size_t)1 << p)) >> (p - 2)) + 1);
  return 8u + (p - 7u) * 4u + j - 1u;
}

/* Class of any size <= TA_CLASS_MAX_SIZE (size 0 gets the smallest class). */
TA_INLINE unsigned ta_class_of(size_t size) {
  return size <= TA_SMALL_TABLE_MAX ? ta_class_small(size) : ta_class_large(size);
}

/* Block size of a class. */
TA_INLINE size_t ta_class_size(unsigned cls) {
  if (cls < 8) return (size_t)(cls + 1) * 16;
  unsigned k = cls - 8;
  unsigned p = 7 + k / 4;
  unsigned j = k % 4 + 1;
  return ((size_t)1 << p) + (size_t)j * ((size_t)1 << (p - 2));
}

/* Smallest class whose blocks are all aligned to `align` (a power of two <= TA_ALIGNED_BIN_MAX) and
 * hold `size` bytes; TA_CLASSES if none. Blocks sit at multiples of the block size from a 64 KiB
 * boundary, so a class is aligned to `align` exactly when its size is a multiple of `align`. */
TA_INLINE unsigned ta_class_for_aligned(size_t size, size_t align) {
  if (size > TA_CLASS_MAX_SIZE) return TA_CLASSES;
  for (unsigned c = ta_class_of(size < align ? align : size); c < TA_CLASSES; c++)
    if ((ta_class_size(c) & (align - 1)) == 0) return c;
  return TA_CLASSES;
}

#pragma GCC visibility pop

#endif
