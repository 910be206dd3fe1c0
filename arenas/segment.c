/* Segments: where they come from (brk for the arena that owns the brk heap, mmap otherwise), spans of
 * units inside them, and the segment map. The address rule is written at the top of segment.h.
 *
 * Locks (order in src/init.c): an arena's seg_lock guards its segment list and each segment's unit
 * masks, so that the trimmer may purge the free units of an arena whose thread is busy or asleep;
 * the owner takes it only when it takes or returns a whole span. brk_busy serialises every move of
 * the program break by tamalloc: a flag, not a lock, so that no lock is held across the brk call and
 * no fork handler waits for one. No lock is held across any system call here.
 * (that lock exists to order them). */
#include "arenas/segment.h"

#include "arenas/arena.h"
#include "arenas/page.h"
#include "src/os.h"
#include "arenas/trim.h"
#include "src/config.h"

#include <sched.h>

uint8_t ta_segmap[TA_SEGMAP_SLOTS];

/* One thread at a time moves the break (brk_enter/brk_leave). Waiters yield; the mover holds no lock
 * and makes one brk call, so the wait is short, and nothing that holds a lock ever waits here (the
 * trim mechanism and seg_regrow drop seg_lock first). */
static _Atomic bool brk_busy;
static __thread bool tls_in_brk __attribute__((tls_model("initial-exec")));
/* Where tamalloc last left the break; 0 before first use. Written under brk_busy; read without it
 * by ta_seg_is_brk_top, so that a seg_lock holder never waits for a brk move. */
static _Atomic uintptr_t brk_end;
static bool brk_unusable;   /* brk_busy: brk failed or someone else moved the break */
static _Atomic size_t seg_live;     /* segments mapped now */
static _Atomic size_t seg_live_brk; /* of which on the brk heap */
_Atomic size_t ta_segment_grows;    /* segments obtained from the OS so far */
_Atomic bool ta_seg_sched_wanted;   /* see segment.h */
static _Atomic size_t purged_bytes; /* bytes given back so far (ta_seg_trim, ta_seg_count_released) */
static _Atomic size_t purge_calls;  /* release operations (madvise, munmap, brk) so far */
/* Free units that may hold touched pages (dirty_units, over all arenas), in units: raised when a span
 * goes back, lowered when a span takes dirty units or a pass releases them. Relaxed: it steers the
 * retained cap, which needs no exact figure. */
static _Atomic size_t dirty_units_all;
static _Atomic size_t seg_peak;     /* most segments mapped at once */

/* seg_lock held: units of seg became dirty, or stopped being dirty. The arena's own count too. */
static void dirty_add(ta_segment_t *seg, uint64_t units) {
  if (units == 0) return;
  size_t n = ta_units_count(units);
  atomic_fetch_add_explicit(&dirty_units_all, n, memory_order_relaxed);
  atomic_fetch_add_explicit(&seg->arena->dirty_units, n, memory_order_relaxed);
}
static void dirty_sub(ta_segment_t *seg, uint64_t units) {
  if (units == 0) return;
  size_t n = ta_units_count(units);
  atomic_fetch_sub_explicit(&dirty_units_all, n, memory_order_relaxed);
  atomic_fetch_sub_explicit(&seg->arena->dirty_units, n, memory_order_relaxed);
}

size_t ta_seg_dirty_bytes(void) {
  return atomic_load_explicit(&dirty_units_all, memory_order_relaxed) * TA_UNIT_SIZE;
}

size_t ta_seg_retain_excess(void) {
  size_t dirty = ta_seg_dirty_bytes();
  size_t floor = atomic_load_explicit(&ta_config.retain_min, memory_order_relaxed);
  if (dirty <= floor) return 0;
  size_t peak = atomic_load_explicit(&seg_peak, memory_order_relaxed) * TA_SEGMENT_SIZE;
  size_t pct = atomic_load_explicit(&ta_config.retain_percent, memory_order_relaxed);
  size_t cap = peak / 100 * pct;
  if (cap < floor) cap = floor;
  return dirty > cap + cap / 4 ? dirty - cap : 0;
}

void ta_seg_fork(ta_fork_phase_t phase) {
  /* Nothing to take: the break is moved under a flag, not a lock. A child whose parent was halfway
   * through moving the break (the flag set) stops using brk: the break may no longer be where
   * brk_end says, and tamalloc never moves a break it is unsure of. */
  if (phase >= TA_FORK_CHILD) {
    if (atomic_load_explicit(&brk_busy, memory_order_relaxed)) brk_unusable = true;
    atomic_store_explicit(&brk_busy, false, memory_order_relaxed);
    tls_in_brk = false;
  }
}

void ta_segmap_set(ta_segment_t *seg, bool live) {
  /* seg_new refuses segments above the map's range; this is the map's own guard. */
  if (ta_unlikely(((uintptr_t)seg >> TA_SEGMENT_SHIFT) >= TA_SEGMAP_SLOTS)) ta_fatal("segment above the segment map's range");
  __atomic_store_n(&ta_segmap[(uintptr_t)seg >> TA_SEGMENT_SHIFT], (uint8_t)live, __ATOMIC_RELAXED);
}

size_t ta_seg_count(size_t *brk_count) {
  if (brk_count) *brk_count = atomic_load_explicit(&seg_live_brk, memory_order_relaxed);
  return atomic_load_explicit(&seg_live, memory_order_relaxed);
}

static void brk_enter(void) {
  /* A signal handler that allocates while this thread moves the break would wait for itself. */
  if (ta_unlikely(tls_in_brk)) ta_fatal("a lock was taken twice by one thread: was malloc called from a signal handler?");
  ta_busy_enter(); /* inside tamalloc, for the fork handlers (common.h) */
  bool idle = false;
  while (!atomic_compare_exchange_weak_explicit(&brk_busy, &idle, true, memory_order_acquire, memory_order_relaxed)) {
    idle = false;
    sched_yield();
  }
  tls_in_brk = true;
}

static void brk_leave(void) {
  tls_in_brk = false;
  atomic_store_explicit(&brk_busy, false, memory_order_release);
  ta_busy_leave();
}

/* brk_busy held: true while the break is where tamalloc left it. Once someone else moves it, brk is
 * never used again, so tamalloc never moves a break that another user of sbrk placed. */
static bool brk_still_ours(void) {
  if (brk_unusable) return false;
  uintptr_t cur = (uintptr_t)ta_os_brk_current();
  uintptr_t end = atomic_load_explicit(&brk_end, memory_order_relaxed);
  if (cur == 0 || (end != 0 && cur != end)) brk_unusable = true;
  return !brk_unusable;
}

/* Grow the break by one segment, aligned to the segment size; NULL if brk cannot be used. */
static void *seg_brk_grow(void) {
  void *res = NULL;
  brk_enter();
  if (brk_still_ours()) {
    uintptr_t cur = (uintptr_t)ta_os_brk_current();
    uintptr_t start = (cur + TA_SEGMENT_SIZE - 1) & ~(uintptr_t)(TA_SEGMENT_SIZE - 1);
    if (start + TA_SEGMENT_SIZE > start && ta_os_brk_set((void *)(start + TA_SEGMENT_SIZE))) {
      atomic_store_explicit(&brk_end, start + TA_SEGMENT_SIZE, memory_order_relaxed);
      res = (void *)start;
    } else {
      brk_unusable = true;
    }
  }
  brk_leave();
  return res;
}

/* Move the break from old_end to new_end (either way) if tamalloc's break is still at old_end. */
static bool brk_move(uintptr_t old_end, uintptr_t new_end) {
  bool done = false;
  brk_enter();
  if (brk_still_ours() && atomic_load_explicit(&brk_end, memory_order_relaxed) == old_end &&
      ta_os_brk_set((void *)new_end)) {
    atomic_store_explicit(&brk_end, new_end, memory_order_relaxed);
    done = true;
  }
  brk_leave();
  return done;
}

bool ta_seg_brk_cut(uintptr_t old_end, uintptr_t new_end) { return brk_move(old_end, new_end); }

bool ta_seg_is_brk_top(const ta_segment_t *seg) {
  if (seg->origin != TA_SEG_BRK) return false;
  return (uintptr_t)seg + (size_t)seg->mapped_units * TA_UNIT_SIZE ==
         atomic_load_explicit(&brk_end, memory_order_relaxed);
}

/* An arena keeps its segments on two lists: `segments` holds those that may have free units (the
 * only ones span allocation and trim passes look at), `full_segments` those that have none, so the
 * search for a span does not walk a heap's worth of full segments. seg_requeue restores that after
 * any change to free_units; all of it under seg_lock. */
static void seg_unlink(ta_arena_t *arena, ta_segment_t *seg) {
  ta_segment_t **head = seg->in_full_list ? &arena->full_segments : &arena->segments;
  if (seg->prev)
    seg->prev->next = seg->next;
  else
    *head = seg->next;
  if (seg->next)
    seg->next->prev = seg->prev;
  else if (!seg->in_full_list)
    arena->segments_tail = seg->prev;
  seg->next = seg->prev = NULL;
}

/* Onto the list of segments with free units, at its end (new) or front (just freed: warm). */
static void seg_link(ta_arena_t *arena, ta_segment_t *seg, bool front) {
  seg->in_full_list = 0;
  if (front && arena->segments) {
    seg->prev = NULL;
    seg->next = arena->segments;
    arena->segments->prev = seg;
    arena->segments = seg;
    return;
  }
  seg->next = NULL;
  seg->prev = arena->segments_tail;
  if (arena->segments_tail)
    arena->segments_tail->next = seg;
  else
    arena->segments = seg;
  arena->segments_tail = seg;
}

static void seg_requeue(ta_arena_t *arena, ta_segment_t *seg) {
  bool full = seg->free_units == 0;
  if (full == (bool)seg->in_full_list) return;
  seg_unlink(arena, seg);
  if (full) {
    seg->in_full_list = 1;
    seg->prev = NULL;
    seg->next = arena->full_segments;
    if (arena->full_segments) arena->full_segments->prev = seg;
    arena->full_segments = seg;
  } else {
    seg_link(arena, seg, true);
  }
}

/* A new segment for the arena (no lock held). */
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
  if (seg == NULL) {
    seg = ta_os_map_aligned(TA_SEGMENT_SIZE, TA_SEGMENT_SIZE);
    /* A mapping above the TA_ADDRESS_BITS range (src/os.h) has no slot in the segment map. */
    if (seg != NULL && !ta_os_addr_fits(seg, TA_SEGMENT_SIZE)) {
      ta_os_unmap(seg, TA_SEGMENT_SIZE);
      seg = NULL;
    }
  }
  if (seg == NULL) return NULL;
  /* Fresh memory from brk or mmap reads as zero: unit_span[] and pages[] start cleared. */
  seg->arena = arena;
  seg->free_units = ta_units_below(TA_UNITS);
  seg->dirty_units = 0;
  seg->origin = origin;
  seg->mapped_units = TA_UNITS;
  size_t live = atomic_fetch_add_explicit(&seg_live, 1, memory_order_relaxed) + 1;
  size_t peak = atomic_load_explicit(&seg_peak, memory_order_relaxed);
  while (live > peak && !atomic_compare_exchange_weak_explicit(&seg_peak, &peak, live, memory_order_relaxed,
                                                                memory_order_relaxed)) {
  }
  /* A second segment: memory worth purging on schedule. Reported, not acted on: the router polls it
   * (ta_seg_sched_wanted) and has the scheduler start its thread. */
  if (atomic_fetch_add_explicit(&ta_segment_grows, 1, memory_order_relaxed) >= 1)
    atomic_store_explicit(&ta_seg_sched_wanted, true, memory_order_relaxed);
  if (origin == TA_SEG_BRK) atomic_fetch_add_explicit(&seg_live_brk, 1, memory_order_relaxed);
  ta_segmap_set(seg, true);
  return seg;
}

/* A brk top segment the trimmer shortened: back to full length, if the break can follow. */
static bool seg_regrow(ta_arena_t *arena) {
  ta_lock(&arena->seg_lock);
  ta_segment_t *top = NULL;
  for (int list = 0; list < 2; list++)
    for (ta_segment_t *seg = list ? arena->full_segments : arena->segments; seg != NULL; seg = seg->next)
      if (seg->origin == TA_SEG_BRK && seg->mapped_units < TA_UNITS) top = seg;
  unsigned mapped = top ? top->mapped_units : 0;
  ta_unlock(&arena->seg_lock);
  if (top == NULL) return false;
  uintptr_t end = (uintptr_t)top + (size_t)mapped * TA_UNIT_SIZE;
  if (!brk_move(end, (uintptr_t)top + TA_SEGMENT_SIZE)) return false;
  ta_lock(&arena->seg_lock);
  /* Only the owner grows or shrinks mapped_units' upper part (the trimmer lowers it under the lock
   * and only on an unchanged break, which brk_move just changed), so it is still `mapped`. */
  top->free_units |= ta_units_below(TA_UNITS) & ~ta_units_below(mapped);
  top->mapped_units = TA_UNITS;
  seg_requeue(arena, top);
  ta_unlock(&arena->seg_lock);
  return true;
}

/* The order of a release, against a free (always an invalid one: the segment is empty) racing it.
 * Such a free reads the map byte, then the header (unit_span, a page descriptor, and in
 * ta_router_bad_pointer the same again); every descriptor of an empty segment has carved == 0 and
 * rejects the pointer, so whatever it reads while the memory is there ends in "invalid pointer".
 *  - The map is cleared first, the memory given back after (munmap, or the lower break): a free
 *    that reads the cleared byte reads nothing of the segment and goes to the large registry, which
 *    does not know the pointer either. The other order (give back, then clear) would leave the map
 *    naming memory that is gone, so every free into it in between would fault on the header; and
 *    the range may be mapped again at once by another thread (a segment of another arena, a large
 *    block), whose map entry the late clear would wipe, or whose bytes a free would take for a
 *    header.
 *  - If the memory cannot be given back, the map is set again: it is still a segment of ours.
 *  - What ordering cannot close: a free that read the byte just before the clear and reads the
 *    header just after the munmap, two dependent loads apart on the free fast path. Closing it needs
 *    readers that announce themselves (a cost on every free) or a header that stays readable after
 *    the release (address space the segment count says is gone); neither is done.
 * A brk top that only shrinks (ta_seg_brk_cut) keeps its map byte and its header unit: a free into
 * a cut unit reads only the header, whose unit_span names a retired descriptor or pages[0]. */
bool ta_seg_release(ta_segment_t *seg) {
  bool brk = seg->origin == TA_SEG_BRK;
  ta_segmap_set(seg, false);
  bool released;
  if (brk) {
    uintptr_t end = (uintptr_t)seg + (size_t)seg->mapped_units * TA_UNIT_SIZE;
    released = brk_move(end, (uintptr_t)seg);
  } else {
    released = ta_os_unmap(seg, TA_SEGMENT_SIZE);
  }
  if (!released) {
    ta_segmap_set(seg, true);
    return false;
  }
  atomic_fetch_sub_explicit(&seg_live, 1, memory_order_relaxed);
  if (brk) atomic_fetch_sub_explicit(&seg_live_brk, 1, memory_order_relaxed);
  return true;
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

/* seg_lock held: where a span of `units` units for class cls starts, given the runs of free units
 * that could hold it (`starts`, not 0). Where a retired span of the same class began, if its units
 * are still dirty: the new span's blocks fall where the old one's were, on pages that are resident
 * already (a thread churning one class otherwise took the lowest free units, often another class's,
 * touched pages of them that class never had, and left its own dirty units waiting for the decay).
 * Else the lowest run. warm_heads is a hint, checked here: a unit names itself in unit_span only as
 * the head of the span it last belonged to, whose descriptor, retired, still says its block size. */
static unsigned span_head(ta_segment_t *seg, uint64_t starts, unsigned units, unsigned cls) {
  uint64_t warm = seg->warm_heads[cls] & starts & seg->dirty_units;
  if (warm != 0 && units > 1) warm &= run_starts(seg->dirty_units, units);
  for (; warm; warm &= warm - 1) {
    unsigned u = (unsigned)__builtin_ctzll(warm);
    if (seg->unit_span[u] == u * sizeof(ta_page_t) && seg->pages[u].retired_size == ta_class_size(cls)) return u;
    seg->warm_heads[cls] &= ~((uint64_t)1 << u); /* stale: the units went to another span meanwhile */
  }
  return (unsigned)__builtin_ctzll(starts);
}

/* seg_lock held. */
static ta_page_t *span_take(ta_segment_t *seg, unsigned units, unsigned cls) {
  uint64_t starts = run_starts(seg->free_units, units);
  if (starts == 0) return NULL;
  unsigned head = span_head(seg, starts, units, cls);
  uint64_t bits = (((uint64_t)1 << units) - 1) << head;
  seg->free_units &= ~bits;
  seg->warm_heads[cls] &= ~bits;
  dirty_sub(seg, seg->dirty_units & bits);
  seg->dirty_units &= ~bits;
  seg->hdr_released = 0; /* the descriptor about to be written faults its page back in */
  for (unsigned u = head; u < head + units; u++)
    seg->unit_span[u] = (uint16_t)(head * sizeof(ta_page_t));
  seg_requeue(seg->arena, seg);
  return &seg->pages[head];
}

static ta_page_t *span_find(ta_arena_t *arena, unsigned units, unsigned cls) {
  ta_page_t *page = NULL;
  ta_lock(&arena->seg_lock);
  for (ta_segment_t *seg = arena->segments; seg != NULL && page == NULL;) {
    ta_segment_t *next = seg->next; /* span_take may move seg to the full list */
    if (seg->free_units != 0) page = span_take(seg, units, cls);
    seg = next;
  }
  ta_unlock(&arena->seg_lock);
  return page;
}

ta_page_t *ta_seg_span_alloc(ta_arena_t *arena, unsigned units, unsigned cls) {
  ta_assert(units >= 1 && units <= TA_SPAN_MAX_UNITS && cls < TA_CLASSES);
  ta_page_t *page = span_find(arena, units, cls);
  if (page != NULL) return page;
  if (arena->use_brk && seg_regrow(arena) && (page = span_find(arena, units, cls)) != NULL) return page;
  ta_segment_t *seg = seg_new(arena);
  if (seg == NULL) return NULL;
  ta_lock(&arena->seg_lock);
  seg_link(arena, seg, false);
  page = span_take(seg, units, cls);
  ta_unlock(&arena->seg_lock);
  return page;
}

void ta_seg_span_free(ta_page_t *page, uint32_t now) {
  ta_segment_t *seg = ta_seg_of(page);
  ta_arena_t *arena = seg->arena;
  unsigned head = (unsigned)(page - seg->pages);
  unsigned units = page->units;
  ta_assert(head > 0 && seg->unit_span[head] == head * sizeof(ta_page_t));
  uint64_t bits = (((uint64_t)1 << units) - 1) << head;
  /* The descriptor is the owner's: retired (nothing carved, so every pointer into the span is now
   * rejected) before the units are published as free under the lock. unit_span keeps naming it. */
  if (page->has_purged) ta_page_purged_clear(page); /* while start and units still say where */
  page->retired_size = page->block_size;
  page->block_size = 0;
  page->capacity = 0;
  atomic_store_explicit(&page->carved_n, 0, memory_order_relaxed);
  page->free = NULL;
  ta_lock(&arena->seg_lock);
  seg->free_units |= bits;
  dirty_add(seg, bits & ~seg->dirty_units);
  seg->dirty_units |= bits;
  seg->warm_heads[page->cls] |= (uint64_t)1 << head;
  for (unsigned u = head; u < head + units; u++) seg->dirty_since[u] = now;
  seg_requeue(arena, seg);
  ta_unlock(&arena->seg_lock);
}

/* In-place resizing (arenas/resize.c). The units right after a live span, up to `units` in all,
 * join it if they are all free: they leave the free and dirty masks, and name the span's descriptor
 * (unit_span) before the caller lets its carved bound reach them. Owner only, as span_take. */
bool ta_seg_span_grow(ta_page_t *page, unsigned units) {
  ta_segment_t *seg = ta_seg_of(page);
  ta_arena_t *arena = seg->arena;
  unsigned head = (unsigned)(page - seg->pages), from = head + page->units;
  ta_assert(units > page->units && units <= TA_SPAN_MAX_UNITS);
  if (head + units > TA_UNITS) return false;
  uint64_t bits = (((uint64_t)1 << (units - page->units)) - 1) << from;
  bool ok = false;
  ta_lock(&arena->seg_lock);
  if ((seg->free_units & bits) == bits) {
    seg->free_units &= ~bits;
    dirty_sub(seg, seg->dirty_units & bits);
    seg->dirty_units &= ~bits;
    for (unsigned u = from; u < head + units; u++) seg->unit_span[u] = (uint16_t)(head * sizeof(ta_page_t));
    seg_requeue(arena, seg);
    ok = true;
  }
  ta_unlock(&arena->seg_lock);
  return ok;
}

/* The tail of a span, units [keep, had) counted from its head, goes back to the segment, dirty since
 * `now`, as ta_seg_span_free gives back a whole span. The caller has already shortened the
 * descriptor (units, carved), so the units keep naming a live span whose carved bound ends before
 * them, and every pointer into them is rejected. Owner only. */
void ta_seg_span_shrink(ta_page_t *page, unsigned had, unsigned keep, uint32_t now) {
  ta_segment_t *seg = ta_seg_of(page);
  ta_arena_t *arena = seg->arena;
  unsigned head = (unsigned)(page - seg->pages);
  ta_assert(keep >= 1 && keep < had && head + had <= TA_UNITS);
  uint64_t bits = (((uint64_t)1 << (had - keep)) - 1) << (head + keep);
  ta_lock(&arena->seg_lock);
  seg->free_units |= bits;
  dirty_add(seg, bits & ~seg->dirty_units);
  seg->dirty_units |= bits;
  for (unsigned u = head + keep; u < head + had; u++) seg->dirty_since[u] = now;
  seg_requeue(arena, seg);
  ta_unlock(&arena->seg_lock);
}

/* seg_lock held: a segment a failed release had unlinked goes back on the arena's lists. */
static void seg_relink(ta_arena_t *arena, ta_segment_t *seg) {
  seg->in_full_list = 0;
  seg_link(arena, seg, false);
  seg_requeue(arena, seg);
}

/* The trim mechanism: the policy (arenas/trim.h) applied to an arena's segments, which this file
 * owns. ta_seg_trim takes the arena's seg_lock, asks the policy which free units are due, takes them
 * out of the free mask (so nobody allocates them meanwhile), drops the lock, then releases them:
 * madvise(MADV_DONTNEED) inside a segment, munmap of a whole empty segment, or a lower break at the
 * top of the brk heap. Then it puts the purged units back as free and clean. It never calls up: the
 * scheduler (src/sched.c) and the arena's own malloc slow path (arenas/arena.c) call it. */
/* One segment's share of a pass: decided under seg_lock, carried out after. */
typedef struct {
  ta_segment_t *seg;
  uint64_t purge;      /* units to madvise */
  uint8_t cut_from;    /* brk top: units [cut_from, cut_to) go back by lowering the break */
  uint8_t cut_to;
  bool release;        /* the whole segment goes back */
  bool header;         /* an empty segment that stays: its header past the first OS page goes too */
  uint64_t held;       /* with header: the clean free units, held out of the mask meanwhile */
} trim_job_t;
#define TA_TRIM_BATCH 32

/* madvise each run of consecutive units in mask. */
/* madvise each run of consecutive units in mask; with `header`, the header's memory past its first
 * OS page too, in the same call as unit 1's run when there is one (it is adjacent). */
static size_t purge_units(ta_segment_t *seg, uint64_t mask, bool header) {
  size_t bytes = 0;
  if (header && (mask & 2) == 0) {
    atomic_fetch_add_explicit(&purge_calls, 1, memory_order_relaxed);
    if (ta_os_purge((char *)seg + TA_PAGE, TA_UNIT_SIZE - TA_PAGE)) bytes += sizeof(ta_segment_t) - TA_PAGE;
    header = false;
  }
  while (mask) {
    unsigned from = (unsigned)__builtin_ctzll(mask);
    uint64_t run = ~(mask >> from);
    unsigned to = run ? from + (unsigned)__builtin_ctzll(run) : TA_UNITS;
    size_t start = (size_t)from * TA_UNIT_SIZE, len = (size_t)(to - from) * TA_UNIT_SIZE;
    if (header && from == 1) {
      start = TA_PAGE;
      len += TA_UNIT_SIZE - TA_PAGE;
    }
    if (ta_os_purge((char *)seg + start, len)) bytes += len;
    atomic_fetch_add_explicit(&purge_calls, 1, memory_order_relaxed);
    mask = to >= TA_UNITS ? 0 : mask & (~(uint64_t)0 << to);
  }
  return bytes;
}

/* seg_lock held: decide what to do with one segment. */
static bool plan_segment(ta_arena_t *arena, ta_segment_t *seg, uint32_t now, long decay, bool force,
                         size_t top_pad, size_t *budget, bool keep_mapped, trim_job_t *job) {
  uint64_t due = force ? seg->dirty_units : ta_trim_due(seg->dirty_units, seg->dirty_since, now, decay);
  /* The retained cap: units not yet due go too, until the budget is spent (lowest units first: the
   * span search takes those first, so the ones above stay for reuse if the budget runs out). */
  size_t due_bytes = (size_t)ta_units_count(due) * TA_UNIT_SIZE;
  *budget = *budget > due_bytes ? *budget - due_bytes : 0;
  for (uint64_t extra = seg->dirty_units & ~due; extra && *budget; extra &= extra - 1) {
    due |= extra & -extra;
    *budget = *budget > TA_UNIT_SIZE ? *budget - TA_UNIT_SIZE : 0;
  }
  uint64_t all = ta_units_below(seg->mapped_units);
  bool empty = seg->free_units == all;
  bool all_due = (seg->dirty_units & ~due) == 0;
  bool brk_top = seg->origin == TA_SEG_BRK && ta_seg_is_brk_top(seg);
  *job = (trim_job_t){.seg = seg};
  if (empty && all_due && !keep_mapped && (seg->origin == TA_SEG_MMAP || (brk_top && top_pad == 0))) {
    seg_unlink(arena, seg);
    dirty_sub(seg, seg->dirty_units); /* gone, or put back clean if the release fails */
    job->release = true;
    return true;
  }
  if (brk_top && !keep_mapped) {
    uint64_t in_use = (all & ~seg->free_units) | 1;
    unsigned used_end = 64u - (unsigned)__builtin_clzll(in_use);
    uint64_t tail = all & ~ta_units_below(used_end);
    bool tail_due = (tail & seg->dirty_units & ~due) == 0;
    size_t threshold = force ? 0 : atomic_load_explicit(&ta_config.trim_threshold, memory_order_relaxed);
    unsigned keep = ta_trim_brk_keep(seg->mapped_units, used_end, tail_due, threshold, top_pad);
    if (keep < seg->mapped_units) {
      uint64_t cut = all & ~ta_units_below(keep);
      job->cut_from = (uint8_t)keep;
      job->cut_to = seg->mapped_units;
      seg->free_units &= ~cut;
      dirty_sub(seg, seg->dirty_units & cut);
      seg->dirty_units &= ~cut;
      seg->mapped_units = (uint8_t)keep;
      due &= ~cut;
    }
  }
  job->purge = due;
  seg->free_units &= ~due;
  dirty_sub(seg, seg->dirty_units & due);
  seg->dirty_units &= ~due;
  /* An empty segment that must stay (a brk segment below the top, or a pass that unmaps nothing):
   * the descriptors in its header's later OS pages are all retired, so that memory goes too (a brk
   * heap pinned by a live block at its top kept 8 KiB per empty segment: 2.3 MB after malloc_trim of
   * 1 GiB, glibc 1.4 MB less). Every free unit is held out meanwhile, so no span is carved from it
   * while the memory goes. */
  if (empty && all_due && !seg->hdr_released && seg->mapped_units == TA_UNITS) {
    job->header = true;
    job->held = seg->free_units;
    seg->free_units = 0;
    seg->hdr_released = 1;
  }
  return job->purge != 0 || job->cut_from != job->cut_to || job->header;
}

size_t ta_seg_trim(ta_arena_t *arena, uint32_t now, bool force, size_t top_pad, size_t budget) {
  long decay = atomic_load_explicit(&ta_config.decay_ms, memory_order_relaxed);
  if (!force && decay < 0) return 0;
  /* Passes over one arena run one at a time: a job holds units (or a whole unlinked segment) out of
   * the masks between its planning and its return, and a second pass must not plan around that
   * (seen: a segment released by one pass while another still had a job on it). A scheduled pass
   * that finds another running just skips this arena; malloc_trim waits for it. The flag is not a
   * lock: a pass makes system calls (munmap, brk, madvise) and takes seg_lock, and a fork handler
   * or another thread must never wait behind those. In a fork child a pass that was running is
   * gone: the units it held out of the masks stay out (free memory lost to the child, no block). */
  if (arena->tainted) return 0; /* a fork child's arena whose lists may be half edited */
  /* A pass with a budget waits too: memory over the retained cap must go at this free, not be
   * left to a scheduled pass that planned before it (seen under load: 78% of a freed GiB still
   * resident right after the frees, the owner's budget passes all skipped while the background pass
   * was descheduled). The holder takes only seg_lock and the brk flag, so waiting is safe. */
  if (!ta_arena_trim_claim(arena, force || budget != 0)) return 0;
  /* A pass with a budget (the retained cap, a thread's exit) purges but unmaps nothing and leaves the
   * break where it is (a brk top cut to its header would sit on the full list for good): the memory
   * is needed again soon more often than not, and munmap (with every thread's TLB to flush) and the
   * mmap that follows cost more than madvise (measured on waves of short threads: 1,679 munmap calls
   * took 2.3 s of 500 threads' time). Scheduled passes unmap the segments that stay empty. */
  bool keep_mapped = budget != 0;
  size_t released = 0;
  for (;;) {
    trim_job_t jobs[TA_TRIM_BATCH];
    unsigned n = 0;
    bool more = false;
    ta_lock(&arena->seg_lock);
    /* Only segments with free units have anything to give back. */
    for (ta_segment_t *seg = arena->segments_tail; seg != NULL;) {
      ta_segment_t *prev = seg->prev;
      if (n == TA_TRIM_BATCH) {
        more = true;
        break;
      }
      if (plan_segment(arena, seg, now, decay, force, top_pad, &budget, keep_mapped, &jobs[n])) n++;
      seg = prev;
    }
    ta_unlock(&arena->seg_lock);

    bool cut_ok[TA_TRIM_BATCH];
    for (unsigned i = 0; i < n; i++) {
      trim_job_t *j = &jobs[i];
      cut_ok[i] = true;
      if (j->release) {
        size_t bytes = (size_t)j->seg->mapped_units * TA_UNIT_SIZE;
        atomic_fetch_add_explicit(&purge_calls, 1, memory_order_relaxed);
        if (ta_seg_release(j->seg)) {
          released += bytes;
          j->seg = NULL; /* gone: nothing to put back */
          continue;
        }
        /* Still mapped (munmap failed, or the break moved meanwhile): it goes back to the arena
         * below, purged. Unlinked, it is this thread's alone until then. */
        j->purge = j->seg->free_units;
        j->seg->free_units = 0;
        j->seg->dirty_units = 0;
      }
      if (j->cut_from != j->cut_to) {
        uintptr_t base = (uintptr_t)j->seg;
        atomic_fetch_add_explicit(&purge_calls, 1, memory_order_relaxed);
        cut_ok[i] = ta_seg_brk_cut(base + (size_t)j->cut_to * TA_UNIT_SIZE,
                                   base + (size_t)j->cut_from * TA_UNIT_SIZE);
        if (cut_ok[i]) released += (size_t)(j->cut_to - j->cut_from) * TA_UNIT_SIZE;
      }
      if (j->purge || j->header) released += purge_units(j->seg, j->purge, j->header);
    }

    ta_lock(&arena->seg_lock);
    for (unsigned i = 0; i < n; i++) {
      trim_job_t *j = &jobs[i];
      if (j->seg == NULL) continue;
      if (j->release) seg_relink(arena, j->seg); /* a release that failed */
      j->seg->free_units |= j->purge | j->held;
      seg_requeue(arena, j->seg);
      if (!cut_ok[i]) {
        /* Someone else moved the break: the units stay mapped, and stay ours. */
        uint64_t cut = ta_units_below(j->cut_to) & ~ta_units_below(j->cut_from);
        j->seg->free_units |= cut;
        dirty_add(j->seg, cut & ~j->seg->dirty_units);
        j->seg->dirty_units |= cut;
        if (j->seg->mapped_units == j->cut_from) j->seg->mapped_units = j->cut_to;
        seg_requeue(arena, j->seg);
      }
    }
    ta_unlock(&arena->seg_lock);
    if (!more) break;
  }
  ta_arena_trim_release(arena);
  atomic_fetch_add_explicit(&purged_bytes, released, memory_order_relaxed);
  return released;
}


void ta_seg_trim_totals(size_t *bytes, size_t *calls) {
  *bytes = atomic_load_explicit(&purged_bytes, memory_order_relaxed);
  *calls = atomic_load_explicit(&purge_calls, memory_order_relaxed);
}

void ta_seg_count_released(size_t bytes) { atomic_fetch_add_explicit(&purged_bytes, bytes, memory_order_relaxed); }
