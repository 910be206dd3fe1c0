/* Bins: per arena and size class, the list of pages that may have blocks to give, and the choice of
 * the current page. All of it is owner-only state (see arenas/arena.h). */
#include "arenas/page.h"
#include "arenas/trim.h"

/* ta_class_table[size] for sizes up to 1024: 16-byte steps to 128, then quarter-power steps (see
 * sizeclass.h); tests/unit/sizeclass_test.c checks it against ta_class_large. */
const uint8_t ta_class_table[TA_SMALL_TABLE_MAX + 1] = {
    [0 ... 16] = 0,      [17 ... 32] = 1,     [33 ... 48] = 2,     [49 ... 64] = 3,
    [65 ... 80] = 4,     [81 ... 96] = 5,     [97 ... 112] = 6,    [113 ... 128] = 7,
    [129 ... 160] = 8,   [161 ... 192] = 9,   [193 ... 224] = 10,  [225 ... 256] = 11,
    [257 ... 320] = 12,  [321 ... 384] = 13,  [385 ... 448] = 14,  [449 ... 512] = 15,
    [513 ... 640] = 16,  [641 ... 768] = 17,  [769 ... 896] = 18,  [897 ... 1024] = 19,
};

void ta_bin_push(ta_arena_t *arena, ta_page_t *page) {
  ta_page_t **head = &arena->bins[page->cls];
  page->prev = NULL;
  page->next = *head;
  if (*head)
    (*head)->prev = page;
  else
    arena->bins_tail[page->cls] = page;
  *head = page;
}

/* A page that has just a block or two back (the owner's free unparked it) goes to the end of its
 * bin, so the pages that waited longer, and gathered more frees meanwhile, are chosen first. Pushed
 * at the head, it would be the next current page and be parked again after one malloc: under
 * random frees (Larson) that made one malloc in seven a slow path. */
void ta_bin_push_tail(ta_arena_t *arena, ta_page_t *page) {
  ta_page_t **tail = &arena->bins_tail[page->cls];
  page->next = NULL;
  page->prev = *tail;
  if (*tail)
    (*tail)->next = page;
  else
    arena->bins[page->cls] = page;
  *tail = page;
}

void ta_bin_remove(ta_arena_t *arena, ta_page_t *page) {
  if (page->prev)
    page->prev->next = page->next;
  else
    arena->bins[page->cls] = page->next;
  if (page->next)
    page->next->prev = page->prev;
  else
    arena->bins_tail[page->cls] = page->prev;
  page->next = page->prev = NULL;
}

void ta_bin_set_current(ta_arena_t *arena, ta_page_t *page) {
  ta_assert(arena->current[page->cls] == &ta_page_empty);
  page->used += TA_PAGE_CURRENT_BIAS;
  arena->current[page->cls] = page;
}

/* The current page stops being current; it goes back to its segment if that left it empty. */
void ta_bin_clear_current(ta_arena_t *arena, unsigned cls) {
  ta_page_t *page = arena->current[cls];
  if (page == &ta_page_empty) return;
  arena->current[cls] = &ta_page_empty;
  page->used -= TA_PAGE_CURRENT_BIAS;
  if (page->used == 0) {
    ta_bin_remove(arena, page);
    ta_seg_span_free(page, ta_trim_clock());
  }
}

/* A page with a block on its local list, or NULL if no page and no segment space is left.
 * Exhausted pages met on the way are parked (taken out of the bin until a block comes back). */
ta_page_t *ta_bin_find_page(ta_arena_t *arena, unsigned cls) {
  ta_page_t *page = arena->current[cls];
  if (page != &ta_page_empty) {
    if (page->free != NULL || ta_page_collect(page) || ta_page_extend(page) || ta_page_relist(page)) return page;
    ta_bin_clear_current(arena, cls);
  }
  for (page = arena->bins[cls]; page != NULL;) {
    ta_page_t *next = page->next;
    ta_page_unghost(page);
    if (page->free != NULL || ta_page_collect(page) || ta_page_extend(page) || ta_page_relist(page)) {
      ta_bin_set_current(arena, page);
      return page;
    }
    if (ta_page_try_park(page)) {
      ta_bin_remove(arena, page);
    } else if (ta_page_collect(page)) {
      ta_bin_set_current(arena, page);
      return page;
    }
    page = next;
  }
  unsigned units = ta_page_units_for(cls);
  page = ta_seg_span_alloc(arena, units, cls);
  if (page == NULL) return NULL;
  ta_page_init(page, arena, cls, units);
  ta_bin_push(arena, page);
  ta_page_extend(page);
  ta_bin_set_current(arena, page);
  return page;
}
