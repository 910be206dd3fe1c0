/* Internals of pages and segments, through the internal headers: the pointer check that free relies
 * on (every carved block start passes, every interior or uncarved address fails), span lengths, and
 * the segment map. */
#include "arenas/arena.h"
#include "arenas/page.h"
#include "tamalloc.h"
#include "test.h"

int main(void) {
  /* Span lengths: blocks fit and waste at most an eighth of the span. */
  for (unsigned c = 0; c < TA_CLASSES; c++) {
    unsigned k = ta_page_units_for(c);
    size_t span = (size_t)k * TA_UNIT_SIZE, bs = ta_class_size(c);
    CHECK(k >= 1 && k <= TA_SPAN_MAX_UNITS);
    CHECK(span >= bs);
    CHECK_MSG(span % bs <= span / 8, "class %u: span %zu block %zu", c, span, bs);
  }

  /* Serve every class from the bins, the largest (1 MiB) included. */
  CHECK(ta_mallopt(TA_OPT_MMAP_THRESHOLD, 2 << 20) == 1);
  /* For a sample of classes: fill a page, then check every address of its first blocks. */
  unsigned classes[] = {0, 1, 5, 8, 11, 17, 20, 27, 33, 40, 45, 50, 55, 59};
  for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++) {
    unsigned c = classes[i];
    size_t bs = ta_class_size(c);
    char *p = ta_malloc(bs);
    CHECK(p != NULL);
    CHECK(ta_segmap_has(p));
    ta_page_t *page = ta_arena_page_checked(p);
    CHECK(page != NULL);
    CHECK_EQ_SZ(page->block_size, bs);
    CHECK(page->cls == c);
    /* Every byte offset inside the carved part: valid exactly at block starts. */
    size_t carved = (size_t)atomic_load(&page->carved_n) * bs;
    size_t limit = carved < 64 * 1024 ? carved : 64 * 1024;
    for (size_t off = 0; off < limit; off++) {
      const char *q = (const char *)page->start + off;
      bool valid = ta_arena_page_checked(q) == page;
      CHECK_MSG(valid == (off % bs == 0), "class %u offset %zu", c, off);
    }
    /* Past what was carved: rejected. */
    if (carved < (uint64_t)page->units * TA_UNIT_SIZE)
      CHECK(ta_arena_page_checked((const char *)page->start + carved) == NULL);
    ta_free(p);
  }

  /* The segment map: a live block's slot is set; a stack address's is not. */
  int local;
  CHECK(!ta_segmap_has(&local));
  CHECK(!ta_segmap_has(NULL));
  CHECK(!ta_segmap_has((void *)~(uintptr_t)0));
  printf("page: pointer checks passed\n");
  return 0;
}
