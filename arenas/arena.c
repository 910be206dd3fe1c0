/* An arena's life: made (arena structs are carved from a bump allocator and never freed, so a
 * pointer to one stays valid for other threads that push remote frees onto it), kept on the list of
 * all arenas, collected and purged by its owner; and the malloc slow path of a bound arena. Which
 * thread owns which arena is arenas/bind.c's.
 *
 * Locks (order in src/init.c): ta_pool_lock (arenas/bind.c) also guards the list of all arenas;
 * meta_lock the bump allocator arenas are carved from. */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "arenas/bind.h"
#include "arenas/page.h"
#include "arenas/trim.h"
#include "src/config.h"
#include "src/os.h"

ta_arena_t *ta_all_arenas;       /* ta_pool_lock: every arena */
static _Atomic size_t arena_count;
static bool brk_arena_made;      /* ta_pool_lock: the brk heap has its arena */

static ta_lock_t meta_lock = TA_LOCK_INIT;
static char *meta_next;          /* meta_lock: bump pointer into the current chunk */
static char *meta_end;           /* meta_lock: end of that chunk */
#define TA_META_CHUNK ((size_t)256 * 1024)

bool ta_arena_trim_claim(ta_arena_t *arena, bool wait) {
  bool idle = false;
  while (!atomic_compare_exchange_weak_explicit(&arena->trimming, &idle, true, memory_order_acquire,
                                                memory_order_relaxed)) {
    if (!wait) return false;
    idle = false;
    sched_yield();
  }
  return true;
}

bool ta_arena_meta_fork(ta_fork_phase_t phase) {
  static bool taken; /* fork_lock (src/init.c) */
  bool whole = ta_fork_one(&meta_lock, &taken, phase);
  if (phase >= TA_FORK_CHILD && !whole) meta_next = meta_end = NULL; /* the chunk may be torn */
  return whole;
}

size_t ta_arena_count(void) { return atomic_load_explicit(&arena_count, memory_order_relaxed); }

/* Internal metadata that lives forever (arenas). Zeroed, 64-byte aligned. */
static void *meta_alloc(size_t size) {
  size = ta_align_up(size, 64);
  ta_lock(&meta_lock);
  if (meta_next == NULL || (size_t)(meta_end - meta_next) < size) {
    size_t chunk = size > TA_META_CHUNK ? ta_align_up(size, TA_PAGE) : TA_META_CHUNK;
    char *c = ta_os_map(chunk);
    if (c == NULL) {
      ta_unlock(&meta_lock);
      return NULL;
    }
    meta_next = c;
    meta_end = c + chunk;
  }
  void *p = meta_next;
  meta_next += size;
  ta_unlock(&meta_lock);
  return p;
}

/* ta_pool_lock held: a fresh arena, or NULL without memory. */
ta_arena_t *ta_arena_new(uint8_t state) {
  ta_arena_t *arena = meta_alloc(sizeof(ta_arena_t));
  if (arena == NULL) return NULL;
  for (unsigned c = 0; c < TA_CLASSES; c++) arena->current[c] = &ta_page_empty;
  arena->seg_lock = (ta_lock_t)TA_LOCK_INIT;
  arena->id = (unsigned)atomic_fetch_add_explicit(&arena_count, 1, memory_order_relaxed);
  arena->use_brk = !brk_arena_made;
  arena->state = state;
  brk_arena_made = true;
  arena->all_next = ta_all_arenas;
  ta_all_arenas = arena;
  return arena;
}

void ta_arena_foreach(void (*fn)(ta_arena_t *arena, void *ctx), void *ctx) {
  ta_lock(&ta_pool_lock);
  ta_arena_t *head = ta_all_arenas;
  ta_unlock(&ta_pool_lock);
  /* The list only grows at its head and its links never change once published. */
  for (ta_arena_t *a = head; a != NULL; a = a->all_next) fn(a, ctx);
}

/* Blocks other threads freed into pages this arena had parked full: back to their pages.
 * The head was pushed by a remote free of a checked block; every link after it is checked before it
 * is followed: a carved block of a live page of this arena (ta_arena_listed_page), else the list is
 * corrupt. A block already free on its page's lists was freed twice (two remote frees: the second
 * found the page no longer parked and went to the page's own list; or the owner freed it after the
 * remote free). That check also bounds the walk: a block met again has been freed onto its page's
 * local list by then (or its page retired, which the carved-block check rejects), so a cycle ends in
 * an abort at its first repeat. */
void ta_arena_drain_xfree(ta_arena_t *arena) {
  uintptr_t w = atomic_exchange_explicit(&arena->xfree, 0, memory_order_acquire);
  for (ta_block_t *b = (ta_block_t *)w; b != NULL;) {
    ta_block_t *next = ta_link_decode(b->next_enc);
    ta_page_t *page = ta_seg_page_of(ta_seg_of(b), b);
    if (TA_HARDENING) {
      if (ta_unlikely(!ta_page_has_block(page, b))) ta_page_corrupt(b);
      if (ta_unlikely(ta_page_block_is_free(page, b))) ta_fatal_ptr("free", "double free", b);
      if (ta_unlikely(next != NULL && ta_arena_listed_page(arena, next) == NULL)) ta_page_corrupt(b);
    }
    /* Clear the link so the local free does not take the block for a double free. */
    b->next_enc = 0;
    ta_page_free_local(page, b);
    atomic_fetch_add_explicit(&ta_remote_collected, 1, memory_order_relaxed);
    b = next;
  }
}

size_t ta_arena_collect(ta_arena_t *arena, bool deep) {
  size_t released = 0;
  if (atomic_load_explicit(&arena->xfree, memory_order_relaxed) != 0) ta_arena_drain_xfree(arena);
  for (unsigned cls = 0; cls < TA_CLASSES; cls++) {
    ta_bin_clear_current(arena, cls);
    for (ta_page_t *page = arena->bins[cls]; page != NULL;) {
      ta_page_t *next = page->next;
      released += ta_page_trim(page, deep);
      page = next;
    }
  }
  ta_seg_count_released(released);
  return released;
}

static long decay_ms(void) { return atomic_load_explicit(&ta_config.decay_ms, memory_order_relaxed); }
static size_t top_pad(void) { return atomic_load_explicit(&ta_config.top_pad, memory_order_relaxed); }

/* Owner-side purging, amortised: a free that emptied a span only marks it (ta_arena_span_freed);
 * every TA_PURGE_EVERY malloc slow paths the owner looks at the clock, and runs the mechanism once
 * half a decay period passed since its last pass. */
static void owner_purge(ta_arena_t *arena) {
  arena->purge_ticks = 0;
  long decay = decay_ms();
  uint32_t now = ta_trim_clock();
  if (decay < 0) {
    arena->purge_pending = false;
  } else if (ta_trim_owner_due(now, arena->last_trim, decay)) {
    arena->purge_pending = false;
    arena->last_trim = now;
    ta_seg_trim(arena, now, false, top_pad());
  }
}

void ta_arena_span_freed(ta_arena_t *arena, uint32_t now) {
  long decay = decay_ms();
  if (decay == 0) {
    /* No decay: the user asked for memory back at the free that frees it (glibc's free trims its
     * top the same way). The one case where a free makes a system call. */
    arena->last_trim = now;
    ta_seg_trim(arena, now, false, top_pad());
  } else if (decay > 0) {
    arena->purge_pending = true;
  }
}

static void *malloc_slow(ta_arena_t *arena, size_t cls) {
  if (ta_unlikely(arena == &ta_arena_empty)) return ta_bind_malloc(cls);
  if (ta_unlikely(arena->purge_pending) && ++arena->purge_ticks >= TA_PURGE_EVERY) owner_purge(arena);
  if (atomic_load_explicit(&arena->xfree, memory_order_relaxed) != 0) ta_arena_drain_xfree(arena);
  if (ta_bin_find_page(arena, (unsigned)cls) == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  return ta_arena_alloc(arena, cls);
}

/* The slow path counts as "inside tamalloc" for the fork handlers (common.h, ta_tls_depth). */
void *ta_arena_malloc_slow(ta_arena_t *arena, size_t cls) {
  ta_busy_enter();
  void *p = malloc_slow(arena, cls);
  ta_busy_leave();
  return p;
}
