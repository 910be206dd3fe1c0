/* Pages: the blocks of one size class inside a span. Invariants are written at struct ta_page_s in
 * arenas/segment.h; the xfree protocol is described at the top of arenas/page.c. */
#ifndef TA_PAGE_H
#define TA_PAGE_H

#include "arenas/arena.h"

#pragma GCC visibility push(hidden)

/* Pages carve this many bytes of blocks at a time (at least one block): a block above half of it
 * is carved alone. One OS page: carving writes a link into every block it carves, so a class a
 * thread barely uses costs it one resident page, not two (tests/trim/trim_first_touch; peak RSS of
 * short threads, larson and thread_churn, 6-8 % lower than with 8 KiB). */
#define TA_CARVE_BYTES ((size_t)4096)
void ta_page_init(ta_page_t *page, ta_arena_t *arena, unsigned cls, unsigned units);

/* Block indices as the ghost fields keep them: 1 + index, 0 for none (NULL). */
TA_INLINE ta_block_t *ta_page_block_at(const ta_page_t *page, unsigned idx1) {
  return idx1 ? (ta_block_t *)(page->start + (size_t)(idx1 - 1) * page->block_size) : NULL;
}
TA_INLINE unsigned ta_page_index1(const ta_page_t *page, const ta_block_t *b) {
  return b ? (unsigned)(((uintptr_t)b - page->start) / page->block_size) + 1 : 0;
}
/* The page's ghost head (page.c, ta_page_unghost), or NULL; the fields are parked_live's while parked. */
TA_INLINE ta_block_t *ta_page_ghost(const ta_page_t *page) {
  return page->in_full ? NULL : ta_page_block_at(page, page->ghost);
}
/* The geometry of a page holding one carved block, block 0, changed for class cls in `units` units
 * (arenas/resize.c): capacity 1, carved one block of the new size. Nothing else is touched. */
void ta_page_reclass(ta_page_t *page, unsigned cls, unsigned units);
bool ta_page_extend(ta_page_t *page);
/* Nonzero: ta_page_extend links the blocks it carves in a random order drawn from it (the secure
 * variant sets it once at start-up, src/secure.c); 0, the default: address order. Read only on
 * the carve path. */
extern uint64_t ta_page_carve_seed;
bool ta_page_collect(ta_page_t *page);
bool ta_page_try_park(ta_page_t *page);
unsigned ta_page_units_for(unsigned cls);
/* Owner only: whether the block is on the page's local or remote free list. */
bool ta_page_block_is_free(ta_page_t *page, const void *block);
/* Owner only, on a page in a bin and not current: collect remote frees; retire the page if empty;
 * with `deep`, release the OS pages inside it that hold only free blocks. Returns bytes released. */
size_t ta_page_trim(ta_page_t *page, bool deep);
/* Owner, slow path (inside ta_arena_slow_enter): the owner's free of a block it checked, as the fast
 * path would do it, and the slow path that may follow. */
void ta_page_free_owned(ta_page_t *page, ta_block_t *block);
/* Owner, slow path: the blocks ta_page_purge_idle or a deep trim took off the lists (their OS pages
 * released) go back on the local list. False if there were none. */
bool ta_page_relist(ta_page_t *page);
/* Owner, slow path: a ghost head (page.c) made real, before the page is popped from or parked. */
void ta_page_unghost(ta_page_t *page);
/* The span's purged_os bits cleared, and has_purged. */
void ta_page_purged_clear(ta_page_t *page);
/* Collector or owner, slow path, on a page that is not current: release the OS pages that hold only
 * free blocks, if the page is idle (its list head and count unchanged since the last call) or with
 * `all`. Returns bytes released. */
size_t ta_page_purge_idle(ta_page_t *page, bool all);
/* Collector: a parked page whose blocks all came back (it holds them) goes back to its segment. */
void ta_page_retire_parked(ta_page_t *page, uint32_t now);

/* bins.c */
void ta_bin_push(ta_arena_t *arena, ta_page_t *page);
void ta_bin_push_tail(ta_arena_t *arena, ta_page_t *page);
void ta_bin_remove(ta_arena_t *arena, ta_page_t *page);
ta_page_t *ta_bin_find_page(ta_arena_t *arena, unsigned cls);
void ta_bin_set_current(ta_arena_t *arena, ta_page_t *page);
void ta_bin_clear_current(ta_arena_t *arena, unsigned cls);

#pragma GCC visibility pop

#endif
