/* Segments: where they come from (brk for the arena that owns the brk heap, mmap otherwise), spans of
 * units inside them, and the segment map. The address rule is written at the top of segment.h.
 *
 * Locks: brk_lock serialises every use of the program break by tamalloc; it is taken with no other
 * tamalloc lock held except the fork handlers' (lock order in src/init.c). */
#include "segment.h"

#include "arena.h"
#include "os.h"

uint8_t ta_segmap[TA_SEGMAP_SLOTS];

static ta_lock_t brk_lock = TA_LOCK_INIT;
static uintptr_t brk_end;   /* brk_lock: where tamalloc last left the break; 0 before first use */
static bool brk_unusable;   /* brk_lock: brk failed or someone else moved the break */
static _Atomic size_t seg_live;     /* segments mapped now */
static _Atomic size_t seg_live_brk; /* of which on the brk heap */

void ta_seg_lock_brk(void) { ta_lock(&brk_lock); }
void ta_seg_unlock_brk(void) { ta_unlock(&brk_lock); }

void ta_segmap_set(ta_segment_t *seg, bool live) {
  __atomic_store_n(&ta_segmap[(uintptr_t)seg >> TA_SEGMENT_SHIFT], (uint8_t)live, __ATOMIC_RELAXED);
}

size_t ta_seg_count(size_t *brk_count) {
  if (brk_count) *brk_count = atomic_load_explicit(&seg_live_brk, memory_order_relaxed);
  return atomic_load_explicit(&seg_live, memory_order_relaxed);
}

/* Grow the break by one segment, aligned to the segment size. NULL if brk cannot be used: then it is
 * never tried again, so tamalloc never moves a break that another user of sbrk placed. */
static void *seg_brk_grow(void) {
  void *res = NULL;
  ta_lock(&brk_lock);
  if (!brk_unusable) {
    uintptr_t cur = (uintptr_t)ta_os_brk_current();
    if (cur == 0 || (brk_end != 0 && cur != brk_end)) {
      brk_unusable = true;
    } else {
      uintptr_t start = (cur + TA_SEGMENT_SIZE - 1) & ~(uintptr_t)(TA_SEGMENT_SIZE - 1);
      if (start + TA_SEGMENT_SIZE > start && ta_os_brk_set((void *)(start + TA_SEGMENT_SIZE))) {
        brk_end = start + TA_SEGMENT_SIZE;
        res = (void *)start;
      } else {
        brk_unusable = true;
      }
    }
  }
  ta_unlock(&brk_lock);
  return res;
}

/* Give a brk segment back if it is the top of the heap: lower the break to its start. */
static bool seg_brk_shrink(ta_segment_t *seg) {
  bool done = false;
  ta_lock(&brk_lock);
  if (!brk_unusable && (uintptr_t)seg + TA_SEGMENT_SIZE == brk_end &&
      (uintptr_t)ta_os_brk_current() == brk_end && ta_os_brk_set(seg)) {
    brk_end = (uintptr_t)seg;
    done = true;
  }
  ta_unlock(&brk_lock);
  return done;
}

static ta_segment_t *seg_new(ta_arena_t *arena) {
  ta_segment_t *seg = NULL;
  uint8_t origin = TA_SEG_MMAP;
  if (arena->use_brk) {
    seg = seg_brk_grow();
    if (seg != NULL)
      origin = TA_SEG_BRK;
    else
      arena->use_brk = false;
  }
  if (seg == NULL) seg = ta_os_map_aligned(TA_SEGMENT_SIZE, TA_SEGMENT_SIZE);
  if (seg == NULL) return NULL;
  /* Fresh memory from brk or mmap reads as zero: unit_span[] and pages[] start cleared. */
  seg->cookie = ta_seg_cookie(seg);
  seg->arena = arena;
  seg->free_units = TA_ALL_UNITS_FREE;
  seg->dirty_units = 0;
  seg->origin = origin;
  seg->next = NULL;
  seg->prev = arena->segments_tail;
  if (arena->segments_tail)
    arena->segments_tail->next = seg;
  else
    arena->segments = seg;
  arena->segments_tail = seg;
  arena->empty_segments++;
  atomic_fetch_add_explicit(&seg_live, 1, memory_order_relaxed);
  if (origin == TA_SEG_BRK) atomic_fetch_add_explicit(&seg_live_brk, 1, memory_order_relaxed);
  ta_segmap_set(seg, true);
  return seg;
}

static void seg_unlink(ta_arena_t *arena, ta_segment_t *seg) {
  if (seg->prev)
    seg->prev->next = seg->next;
  else
    arena->segments = seg->next;
  if (seg->next)
    seg->next->prev = seg->prev;
  else
    arena->segments_tail = seg->prev;
}

/* Release one empty segment to the OS; false if it has to stay (a brk segment below the top). */
static bool seg_release(ta_arena_t *arena, ta_segment_t *seg) {
  ta_assert(seg->free_units == TA_ALL_UNITS_FREE);
  bool brk = seg->origin == TA_SEG_BRK;
  ta_segmap_set(seg, false);
  bool released = brk ? seg_brk_shrink(seg) : ta_os_unmap(seg, TA_SEGMENT_SIZE);
  if (!released) {
    ta_segmap_set(seg, true);
    return false;
  }
  seg_unlink(arena, seg);
  arena->empty_segments--;
  atomic_fetch_sub_explicit(&seg_live, 1, memory_order_relaxed);
  if (brk) atomic_fetch_sub_explicit(&seg_live_brk, 1, memory_order_relaxed);
  return true;
}

/* Keep at most one empty segment per arena (so a loop that fills and empties a segment does not map
 * and unmap it every time); release the others, except `keep`. Walks from the newest, so the brk
 * heap gives back its top first. */
void ta_seg_release_empty(ta_arena_t *arena, ta_segment_t *keep) {
  for (ta_segment_t *seg = arena->segments_tail; seg != NULL && arena->empty_segments > 1;) {
    ta_segment_t *prev = seg->prev;
    if (seg != keep && seg->free_units == TA_ALL_UNITS_FREE) seg_release(arena, seg);
    seg = prev;
  }
}

/* Bit u of the result: units u .. u+n-1 are all free. */
static uint64_t run_starts(uint64_t mask, unsigned n) {
  for (unsigned have = 1; have < n && mask;) {
    unsigned s = have < n - have ? have : n - have;
    mask &= mask >> s;
    have += s;
  }
  return mask;
}

static ta_page_t *span_take(ta_segment_t *seg, unsigned units) {
  uint64_t starts = run_starts(seg->free_units, units);
  if (starts == 0) return NULL;
  unsigned head = (unsigned)__builtin_ctzll(starts);
  uint64_t bits = (units == 64 ? ~(uint64_t)0 : (((uint64_t)1 << units) - 1)) << head;
  if (seg->free_units == TA_ALL_UNITS_FREE) seg->arena->empty_segments--;
  seg->free_units &= ~bits;
  seg->dirty_units &= ~bits;
  for (unsigned u = head; u < head + units; u++)
    seg->unit_span[u] = (uint16_t)(head * sizeof(ta_page_t));
  return &seg->pages[head];
}

ta_page_t *ta_seg_span_alloc(ta_arena_t *arena, unsigned units) {
  ta_assert(units >= 1 && units <= TA_SPAN_MAX_UNITS);
  for (ta_segment_t *seg = arena->segments; seg != NULL; seg = seg->next) {
    if (seg->free_units == 0) continue;
    ta_page_t *page = span_take(seg, units);
    if (page) return page;
  }
  ta_segment_t *seg = seg_new(arena);
  return seg ? span_take(seg, units) : NULL;
}

void ta_seg_span_free(ta_page_t *page) {
  ta_segment_t *seg = ta_seg_of(page);
  unsigned head = (unsigned)(page - seg->pages);
  unsigned units = page->units;
  ta_assert(head > 0 && seg->unit_span[head] == head * sizeof(ta_page_t));
  uint64_t bits = (((uint64_t)1 << units) - 1) << head;
  for (unsigned u = head; u < head + units; u++) seg->unit_span[u] = 0;
  page->block_size = 0;
  page->capacity = 0;
  page->carved = 0;
  page->free = NULL;
  seg->free_units |= bits;
  seg->dirty_units |= bits;
  if (seg->free_units == TA_ALL_UNITS_FREE) {
    seg->arena->empty_segments++;
    ta_seg_release_empty(seg->arena, NULL);
  }
}
