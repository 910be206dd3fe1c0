/* The whole-heap validator, ta_validate (include/tamalloc.h). It walks the arenas whose pages nobody
 * changes meanwhile: the calling thread's own, those in the pool (under the pool lock, as their owner
 * for the moment) and the shared one (under its lock). A bound arena of another thread is never
 * walked: its owner changes its pages without locks. Each arena's trimming flag and seg_lock are held
 * for its walk, so no trim pass holds units or a segment out of the masks meanwhile; other threads
 * may still push remote frees, which only prepend to xfree lists that are walked from a snapshot.
 *
 * Checked, against the invariants written in arenas/segment.h:
 *  - the segment lists: links both ways, owner, the segment map, the full list holding exactly the
 *    segments without free units;
 *  - each segment's units: dirty ones free, free ones mapped, every other mapped unit in exactly one
 *    live span whose units all name its descriptor (unit_span), and no pointer into a free unit
 *    passing as a block of the descriptor that unit names (also after a span grew or shrank in place,
 *    arenas/resize.c); no free unit, and no unit of a span without released OS pages, marked as
 *    released (purged_os);
 *  - each live page: owner, geometry (class, block size, start, reciprocal, reserved), counts
 *    (carved = capacity * block size <= reserved * block size, the CURRENT_BIAS and parked
 *    invariants), its local and xfree lists (walks bounded by a bitmap of the carved blocks: every
 *    link a block start inside the page, no block twice), and live + free blocks within the carved;
 *  - the bins: links both ways and the tail, class, owner, every live page that is not parked in its
 *    bin exactly once, each current page among them; the arena's xfree list: carved blocks of its
 *    live pages.
 * Nothing here allocates. It runs in every build; debug_checks only decides who calls it (the stress
 * tests, at level 3). */
#include "arenas/validate.h"

#include <stdlib.h>

#include "src/format.h"
#include "arenas/page.h"
#include "tamalloc.h"

static _Noreturn void fail(const char *what, const void *where) {
  char buf[256];
  ta_out_t o = {.buf = buf, .cap = sizeof buf, .flush = ta_out_fd_flush, .ctx = (void *)(intptr_t)2};
  ta_out_str(&o, "tamalloc: heap check failed: ");
  ta_out_str(&o, what);
  ta_out_str(&o, " at ");
  ta_out_hex(&o, (uintptr_t)where);
  ta_out_str(&o, "\n");
  ta_out_finish(&o);
  abort();
}
#define need(cond, what, where)                                                                      \
  do {                                                                                               \
    if (ta_unlikely(!(cond))) fail(what, where);                                                     \
  } while (0)

/* One bit per block of a page: which ones a free list has named. */
#define TA_VALIDATE_BLOCKS_MAX (TA_SPAN_MAX_UNITS * TA_UNIT_SIZE / TA_ALIGN)
static bool bit_test_set(uint64_t *bits, size_t i) {
  uint64_t m = (uint64_t)1 << (i % 64);
  bool was = (bits[i / 64] & m) != 0;
  bits[i / 64] |= m;
  return was;
}

typedef struct {
  ta_arena_t *arena;
  size_t pages;  /* live pages not parked: each must be in its bin once */
  size_t blocks; /* blocks carved: bounds the walk of the arena's xfree list */
  uint64_t seen[TA_VALIDATE_BLOCKS_MAX / 64];
} walk_t;

static void *unit_addr(ta_segment_t *seg, unsigned u) { return (char *)seg + (size_t)u * TA_UNIT_SIZE; }

/* Marks the blocks of one of page's free lists in w->seen; returns how many. Every link is checked
 * before it is followed, and a block met twice ends the walk, so a cycle cannot make it run on. */
static uint32_t walk_list(walk_t *w, const ta_page_t *page, ta_block_t *head) {
  uint64_t carved = atomic_load_explicit(&page->carved_n, memory_order_relaxed) * page->block_size;
  const void *holder = page; /* what holds the link being checked: the page, then each block */
  uint32_t n = 0;
  /* A ghost head (arenas/page.c) is off the list: its successor is ghost_next, not its link. */
  ta_block_t *ghost = ta_page_ghost(page), *after = ghost ? ta_page_block_at(page, page->ghost_next) : NULL;
  for (ta_block_t *b = head; b != NULL; holder = b, b = b == ghost ? after : ta_link_decode(b->next_enc)) {
    if (b == ghost) continue;
    uintptr_t off = (uintptr_t)b - page->start;
    need(off < carved, "free-list link outside its page's carved blocks", holder);
    need(off % page->block_size == 0, "free-list link not at a block start", holder);
    need(!bit_test_set(w->seen, off / page->block_size), "block twice on its page's free lists", b);
    n++;
  }
  return n;
}

static void check_page(walk_t *w, ta_segment_t *seg, unsigned head) {
  ta_page_t *page = &seg->pages[head];
  ta_arena_t *arena = w->arena;
  need(page->arena == arena, "page of another arena in the arena's segment", page);
  need(page->cls < TA_CLASSES && page->block_size == ta_class_size(page->cls),
       "page block size does not match its class", page);
  size_t bs = page->block_size;
  need(page->units == ta_page_units_for(page->cls), "page span length does not match its class", page);
  need(page->start == (uintptr_t)unit_addr(seg, head), "page start is not its first unit", page);
  need((uint64_t)(bs >> page->shift) * page->inv == 1 && ((bs >> page->shift) & 1),
       "page divisibility constants do not match its block size", page);
  need(page->reserved == (size_t)page->units * TA_UNIT_SIZE / bs, "page reserved count", page);
  need(page->capacity <= page->reserved, "page capacity above its reserved blocks", page);
  need(atomic_load_explicit(&page->carved_n, memory_order_relaxed) == page->capacity,
       "page carved count does not match its capacity", page);
  need(page->retired_size == 0, "live page marked retired", page);
  bool current = arena->current[page->cls] == page;
  uintptr_t xw = atomic_load_explicit(&page->xfree, memory_order_acquire);
  uint32_t live;
  if (page->in_full) {
    need(page->in_full == 1 && !current, "parked page is current", page);
    need(page->used == 1, "parked page used count is not 1", page);
    need(page->free == NULL && page->capacity == page->reserved, "parked page has blocks to give", page);
    need(page->next == NULL && page->prev == NULL, "parked page is linked", page);
    live = page->parked_live;
  } else {
    need((xw & TA_XFREE_FULL) == 0, "page marked full on xfree but not parked", page);
    need(current ? page->used >= TA_PAGE_CURRENT_BIAS : page->used < TA_PAGE_CURRENT_BIAS,
         "page used count bias does not match whether it is current", page);
    live = page->used - (current ? TA_PAGE_CURRENT_BIAS : 0);
    w->pages++;
  }
  need(live <= page->capacity, "page used count exceeds its carved blocks", page);
  size_t words = ((size_t)page->capacity + 63) / 64;
  for (size_t i = 0; i < words; i++) w->seen[i] = 0;
  uint32_t nfree = walk_list(w, page, page->free);
  uint32_t nremote = walk_list(w, page, (ta_block_t *)(xw & ~TA_XFREE_FULL));
  /* Blocks on xfree still count as live until the owner collects them. */
  need(nremote <= live, "page xfree list longer than its live blocks", page);
  need((size_t)live + nfree <= page->capacity, "page used count and free list exceed its carved blocks", page);
  w->blocks += page->capacity;
}

static void check_segment(walk_t *w, ta_segment_t *seg) {
  need(ta_segmap_has(seg), "segment missing from the segment map", seg);
  need(seg->arena == w->arena, "segment of another arena on the arena's list", seg);
  need(seg->origin == TA_SEG_MMAP || seg->origin == TA_SEG_BRK, "segment origin", seg);
  unsigned mapped = seg->mapped_units;
  need(mapped >= 1 && mapped <= TA_UNITS, "segment mapped units", seg);
  uint64_t free_units = seg->free_units;
  need((free_units & ~ta_units_below(mapped)) == 0, "free unit outside the mapped units", seg);
  need((seg->dirty_units & ~free_units) == 0, "dirty unit that is not free", seg);
  need((bool)seg->in_full_list == (free_units == 0), "segment on the wrong list", seg);
  for (unsigned u = 1; u < mapped;) {
    unsigned off = seg->unit_span[u];
    need(off % sizeof(ta_page_t) == 0 && off < TA_UNITS * sizeof(ta_page_t), "unit_span names no descriptor",
         unit_addr(seg, u));
    ta_page_t *page = &seg->pages[off / sizeof(ta_page_t)];
    if ((free_units >> u) & 1) {
      /* A retired span's descriptor (nothing carved), pages[0], or the descriptor of a newer span
       * that took only the first units of an old one: then the unit lies past what that one carved. */
      uint64_t carved = atomic_load_explicit(&page->carved_n, memory_order_relaxed) * page->block_size;
      need((uintptr_t)unit_addr(seg, u) - page->start >= carved, "free unit inside a page's carved blocks",
           unit_addr(seg, u));
      /* A span clears its units' marks when it retires or gives units back (arenas/resize.c), so
       * a span that takes free units, at its start or by growing in place, finds none. */
      need(seg->pages[u].purged_os == 0, "free unit marked as released inside a span", unit_addr(seg, u));
      u++;
      continue;
    }
    need(off == u * sizeof(ta_page_t) && page->block_size != 0, "unit in use but in no live span", unit_addr(seg, u));
    unsigned units = page->units;
    need(units >= 1 && units <= TA_SPAN_MAX_UNITS && u + units <= mapped, "span runs out of its segment", page);
    for (unsigned k = u + 1; k < u + units; k++)
      need(((free_units >> k) & 1) == 0 && seg->unit_span[k] == off, "unit of a span does not name it",
           unit_addr(seg, k));
    for (unsigned k = u; k < u + units && !page->has_purged; k++)
      need(seg->pages[k].purged_os == 0, "span unit marked released while its page says none is", unit_addr(seg, k));
    check_page(w, seg, u);
    u += units;
  }
}

/* Walks one of the arena's segment lists, at most `bound` segments. */
static void check_segment_list(walk_t *w, ta_segment_t *head, bool full, size_t bound) {
  ta_segment_t *prev = NULL;
  size_t n = 0;
  for (ta_segment_t *seg = head; seg != NULL; prev = seg, seg = seg->next) {
    need(++n <= bound, "segment list longer than the segments mapped", seg);
    need(seg->prev == prev, "segment list links disagree", seg);
    need((bool)seg->in_full_list == full, "segment flag does not match its list", seg);
    check_segment(w, seg);
  }
  if (!full) need(w->arena->segments_tail == prev, "segment list tail is not its last segment", w->arena);
}

/* p, read from a bin or the arena's xfree list: is it a live span head of one of this arena's
 * segments? Checked without reading through p before its segment is known to be ours. */
static bool is_live_page(ta_arena_t *arena, const ta_page_t *p) {
  if (!ta_segmap_has(p)) return false;
  ta_segment_t *seg = ta_seg_of(p);
  uintptr_t off = (uintptr_t)p - (uintptr_t)seg->pages;
  if (seg->arena != arena || off < sizeof(ta_page_t) || off >= TA_UNITS * sizeof(ta_page_t) ||
      off % sizeof(ta_page_t) != 0)
    return false;
  unsigned head = (unsigned)(off / sizeof(ta_page_t));
  return ((seg->free_units >> head) & 1) == 0 && seg->unit_span[head] == off && p->block_size != 0;
}

static void check_bins(walk_t *w) {
  ta_arena_t *arena = w->arena;
  size_t n = 0;
  for (unsigned cls = 0; cls < TA_CLASSES; cls++) {
    ta_page_t *cur = arena->current[cls];
    bool cur_seen = cur == &ta_page_empty;
    ta_page_t *prev = NULL;
    for (ta_page_t *p = arena->bins[cls]; p != NULL; prev = p, p = p->next) {
      need(++n <= w->pages, "bin lists hold more pages than the arena has live", p);
      need(is_live_page(arena, p), "bin holds no live page of the arena", p);
      need(p->prev == prev, "bin list links disagree", p);
      need(p->cls == cls, "page in the bin of another class", p);
      need(!p->in_full, "parked page in a bin", p);
      cur_seen |= p == cur;
    }
    need(arena->bins_tail[cls] == prev, "bin tail is not the bin's last page", arena);
    need(cur_seen, "current page is not in its bin", cur);
  }
  need(n == w->pages, "live page missing from its bin", arena);
}

static void check_arena_xfree(walk_t *w) {
  uintptr_t head = atomic_load_explicit(&w->arena->xfree, memory_order_acquire);
  size_t n = 0;
  for (ta_block_t *b = (ta_block_t *)head; b != NULL; b = ta_link_decode(b->next_enc)) {
    need(++n <= w->blocks, "arena xfree list longer than the blocks carved", b);
    need(ta_segmap_has(b), "arena xfree block outside every segment", b);
    ta_page_t *page = ta_arena_page_checked(b);
    /* Its page was parked when the block came, but the owner's own free may have unparked it since;
     * the block still counts as live there, so the page cannot have been retired. */
    need(page != NULL && is_live_page(w->arena, page), "arena xfree block is no block of the arena", b);
  }
}

void ta_validate_arena(ta_arena_t *arena) {
  walk_t w = {.arena = arena};
  /* No collector may edit the lists meanwhile (arena.c); a tainted arena is not walked. */
  if (!ta_arena_collector_claim(arena, true)) return;
  ta_arena_trim_claim(arena, true);
  ta_lock(&arena->seg_lock);
  size_t bound = ta_seg_count(NULL);
  check_segment_list(&w, arena->segments, false, bound);
  check_segment_list(&w, arena->full_segments, true, bound);
  check_bins(&w);
  check_arena_xfree(&w);
  ta_unlock(&arena->seg_lock);
  ta_arena_trim_release(arena);
  ta_arena_collector_release(arena);
}

static void validate_one(ta_arena_t *arena, void *ctx) {
  (void)ctx;
  ta_validate_arena(arena);
}

int ta_validate(void) {
  need(ta_page_empty.free == NULL && ta_page_empty.used == 0 && atomic_load(&ta_page_empty.carved_n) == 0,
       "the empty page holds blocks", &ta_page_empty);
  ta_arena_t *own = ta_tls_arena;
  if (own != &ta_arena_empty) ta_validate_arena(own);
  ta_arena_foreach_pooled(validate_one, NULL);
  ta_arena_with_shared(validate_one, NULL);
  return 0;
}
