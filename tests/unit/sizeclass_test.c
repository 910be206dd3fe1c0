/* Walks every size up to the largest class both ways: size -> class -> block size, and checks the
 * promises sizeclass.h makes (fits, smallest fitting class, bounded waste, alignment of aligned
 * classes, the lookup table agreeing with the arithmetic). */
#include "arenas/sizeclass.h"
#include "test.h"

int main(void) {
  /* Classes are increasing multiples of 16 and end at the largest class size. */
  for (unsigned c = 0; c < TA_CLASSES; c++) {
    CHECK(ta_class_size(c) % 16 == 0);
    if (c > 0) CHECK(ta_class_size(c) > ta_class_size(c - 1));
    /* Round trip: a class's own size maps back to it. */
    CHECK_MSG(ta_class_of(ta_class_size(c)) == c, "class %u size %zu", c, ta_class_size(c));
  }
  CHECK_EQ_SZ(ta_class_size(TA_CLASSES - 1), TA_CLASS_MAX_SIZE);

  for (size_t n = 0; n <= TA_CLASS_MAX_SIZE; n++) {
    unsigned c = ta_class_of(n);
    CHECK_MSG(c < TA_CLASSES, "size %zu", n);
    size_t bs = ta_class_size(c);
    /* It fits, and the class below would not. */
    CHECK_MSG(bs >= n, "size %zu class %u block %zu", n, c, bs);
    if (c > 0) CHECK_MSG(ta_class_size(c - 1) < n, "size %zu not in smallest class %u", n, c);
    /* Bounded waste: under 16 bytes below 128, under 20% of the block above. */
    if (n > 128) CHECK_MSG((bs - n) * 5 < bs, "size %zu wastes %zu of %zu", n, bs - n, bs);
    if (n <= 128) CHECK(bs - n < 16 || n == 0);
    /* The table and the arithmetic agree where both apply. */
    if (n > 128 && n <= TA_SMALL_TABLE_MAX) CHECK_MSG(ta_class_small(n) == ta_class_large(n), "size %zu", n);
  }

  /* Aligned classes: every block of the chosen class is aligned, and holds the size. */
  for (size_t align = 32; align <= TA_ALIGNED_BIN_MAX; align *= 2) {
    for (size_t n = 0; n <= 4 * align && n <= TA_CLASS_MAX_SIZE; n += align / 4 + 1) {
      unsigned c = ta_class_for_aligned(n, align);
      CHECK(c < TA_CLASSES);
      CHECK(ta_class_size(c) >= n);
      CHECK_MSG(ta_class_size(c) % align == 0, "align %zu size %zu class size %zu", align, n, ta_class_size(c));
    }
  }
  CHECK(ta_class_for_aligned(TA_CLASS_MAX_SIZE + 1, 64) == TA_CLASSES);
  printf("sizeclass: %d classes, every size up to %zu checked\n", TA_CLASSES, TA_CLASS_MAX_SIZE);
  return 0;
}
