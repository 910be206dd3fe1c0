/* Resizing a block in place (realloc without a copy), by changing the class of the span it is alone in.
 *
 * The rule. A block is resized in place when
 *  - the calling thread owns its arena (page->arena == ta_tls_arena; blocks of other arenas are
 *    copied as before), and the work runs inside ta_arena_slow_enter/leave, so no collector edits the
 *    page meanwhile;
 *  - it is the only block ever carved in its span: capacity 1 (so the block is block 0, at the span's
 *    start), live 1 with nothing on any free list (free empty, xfree empty, or exactly TA_XFREE_FULL
 *    for a parked page: no other thread freed it), no OS page of the span released (has_purged 0).
 *    Classes above TA_CARVE_BYTES / 2 are carved one block at a time, so a fresh block above 2 KiB
 *    is usually alone in its span;
 *  - the new class is one of those too (its block above TA_CARVE_BYTES / 2: a smaller block is cheap
 *    to copy, and a page of it should be carved as usual), and the span of the new class,
 *    ta_page_units_for(new class) units from the same head, fits: units beyond the span's end must
 *    be free in its segment right after it (taken under seg_lock, ta_seg_span_grow); units the new
 *    class does not need go back to the segment (ta_seg_span_shrink: free, dirty since now, as a
 *    span that retires, and the arena told as by a free that empties a span).
 * Then the descriptor gets the new class's geometry (block size, class, units, reserved, the
 * divisibility constants; capacity 1, carved one block: ta_page_reclass) and moves from the old
 * class's bin to the end of the new one's (if it was the old class's current page it stops being
 * current first, without being retired; if it was parked it is unparked: no remote free can be
 * waiting, the only block being the caller's). The end of the bin, so that the new class's mallocs
 * carve from its other pages first and leave the units after the block free for the next growth.
 *
 * What stays true (the validator checks it): the span's units all name its descriptor (the new ones
 * are named before the carved bound reaches them; the ones given back keep naming it, past its new
 * carved bound, as the free units after a shorter span always do); free and dirty masks as for
 * span_take and span_free; the block is block 0 of the new geometry, so a free or realloc of it
 * works, a pointer into the span that is not its start is rejected (an interior pointer of the new
 * block, or of units it took: ta_arena_was_block reads retired_size 0, "invalid pointer"), and after
 * its free the retired descriptor names the final block size for "double free".
 * Anything else (units taken, a class below the cut, another arena's block) returns false and the
 * router copies as before. */
#include "arenas/page.h"
#include "arenas/trim.h"

/* Whether the page holds just its block 0, live, and nothing free. Under arena->busy. */
static bool page_alone(const ta_arena_t *arena, const ta_page_t *page, const void *p) {
  if (page->arena != arena || page->block_size == 0 || page->capacity != 1 || page->start != (uintptr_t)p ||
      page->free != NULL || page->has_purged)
    return false;
  uintptr_t xw = atomic_load_explicit(&page->xfree, memory_order_acquire);
  if (page->in_full) return page->used == 1 && page->parked_live == 1 && xw == TA_XFREE_FULL;
  uint32_t bias = arena->current[page->cls] == page ? TA_PAGE_CURRENT_BIAS : 0;
  return page->used == bias + 1 && xw == 0 && page->ghost == 0;
}

bool ta_arena_resize_in_place(ta_arena_t *arena, ta_page_t *page, void *p, size_t size) {
  unsigned cls = ta_class_of(size);
  if (ta_class_size(cls) * 2 <= TA_CARVE_BYTES || page->capacity != 1) return false;
  unsigned units = ta_page_units_for(cls);
  bool done = false;
  ta_arena_slow_enter(arena);
  if (!page_alone(arena, page, p)) goto out;
  if (cls == page->cls) {
    done = true;
    goto out;
  }
  unsigned had = page->units;
  if (units > had && !ta_seg_span_grow(page, units)) goto out;
  if (page->in_full) {
    uintptr_t full = TA_XFREE_FULL;
    if (!atomic_compare_exchange_strong_explicit(&page->xfree, &full, 0, memory_order_acq_rel,
                                                 memory_order_relaxed)) {
      /* Another thread freed the block meanwhile (a use after free): leave it all as it was. */
      if (units > had) ta_seg_span_shrink(page, units, had, ta_trim_clock());
      goto out;
    }
    page->in_full = 0;
    page->parked_live = 0; /* the ghost's words while not parked: no ghost */
  } else {
    if (arena->current[page->cls] == page) {
      arena->current[page->cls] = &ta_page_empty;
      page->used -= TA_PAGE_CURRENT_BIAS;
    }
    ta_bin_remove(arena, page);
  }
  ta_page_reclass(page, cls, units);
  ta_bin_push_tail(arena, page);
  if (units < had) {
    uint32_t now = ta_trim_clock();
    ta_seg_span_shrink(page, had, units, now);
    ta_arena_span_freed(arena, now);
  }
  done = true;
out:
  ta_arena_slow_leave(arena);
  return done;
}
