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

static long decay_ms(void) { return atomic_load_explicit(&ta_config.decay_ms, memory_order_relaxed); }
static size_t top_pad(void) { return atomic_load_explicit(&ta_config.top_pad, memory_order_relaxed); }

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

/* The collector protocol: memory that other threads freed into an arena whose owner is idle (a
 * thread that allocated a lot and now waits) must reach the OS without that owner's help, and
 * without a lock or an atomic read-modify-write on the owner's fast paths.
 *  - arena->busy excludes the owner's slow paths and a collector: the owner sets TA_BUSY_OWNER
 *    around every slow path (waiting, with sched_yield, while a collector works); a collector sets
 *    TA_BUSY_COLLECTOR only if the flag is clear (CAS), else leaves the arena to its owner, who is
 *    running anyway. Acquire on the claim, release on the clear: what one side's slow path wrote
 *    (bins, parked state, current pages, page lists it edited) is seen by the other's next claim.
 *  - The owner's fast paths run meanwhile. They pop only from current pages and push only onto the
 *    page of a block the owner frees, a block that was live. So a collector may (1) retire a parked
 *    page all of whose blocks are back (the fast paths cannot touch it: no block of it is live), and
 *    (2) rewrite links behind the first block of a page that is not current (page.c,
 *    page_purge_inside: the fast path writes only the head word and the pushed block's link). It
 *    never writes `free` or `used` of a page the owner may touch, and never touches current pages.
 *  - Blocks freed by other threads reach a parked page's lists as the protocol of page.c says: the
 *    first onto the arena's xfree list, the rest onto the page's. The collector takes the arena's
 *    list (exchange: another taker is harmless, there is no pop), counts per parked page the blocks
 *    of both lists, retires the pages whose count equals their live count, and pushes every other
 *    block back onto the arena's list, where the owner's next slow path finds them as before.
 *  - The owner returns to a consistent arena: a retired page is in no bin and is not current (it was
 *    parked), its units are free in its segment under seg_lock, as if the owner had retired it.
 * A fork child abandons an arena whose flag was set (a collector or a slow path was halfway). */
#define TA_SLOW_SPIN 64
static __thread ta_arena_t *tls_slow_arena __attribute__((tls_model("initial-exec")));

/* Sets arena->busy to `who` once it is clear; spins a little, then yields. Without `wait`, gives up
 * at the first refusal. */
static bool busy_claim(ta_arena_t *arena, uint8_t who, bool wait) {
  uint8_t idle = 0;
  for (unsigned spins = 0; !atomic_compare_exchange_weak_explicit(&arena->busy, &idle, who, memory_order_acquire,
                                                                  memory_order_relaxed);
       spins++) {
    if (!wait) return false;
    idle = 0;
    if (spins >= TA_SLOW_SPIN) sched_yield();
  }
  return true;
}

static void busy_release(ta_arena_t *arena) {
  atomic_store_explicit(&arena->busy, 0, memory_order_release);
  ta_busy_leave();
}

void ta_arena_slow_enter(ta_arena_t *arena) {
  /* A signal handler that allocates while this thread runs a slow path would wait for itself. */
  if (ta_unlikely(tls_slow_arena == arena))
    ta_fatal("an arena's slow path was entered twice by one thread: was malloc called from a signal handler?");
  ta_busy_enter();
  busy_claim(arena, TA_BUSY_OWNER, true);
  tls_slow_arena = arena;
}

void ta_arena_slow_leave(ta_arena_t *arena) {
  tls_slow_arena = NULL;
  busy_release(arena);
}

/* Collector, arena->busy held: the arena's xfree list sorted out (see the protocol above). */
static void collect_parked(ta_arena_t *arena, uint32_t now) {
  uintptr_t w = atomic_exchange_explicit(&arena->xfree, 0, memory_order_acquire);
  ta_block_t *back = NULL, *back_tail = NULL;
  ta_page_t *pages = NULL;
  size_t collected = 0;
  for (ta_block_t *b = (ta_block_t *)w; b != NULL;) {
    ta_block_t *next = ta_link_decode(b->next_enc);
    ta_page_t *page = ta_seg_page_of(ta_seg_of(b), b);
    /* The checks of ta_arena_drain_xfree: each link names a carved block of a live page. */
    if (ta_unlikely(!ta_page_has_block(page, b))) ta_page_corrupt(b);
    if (ta_unlikely(next != NULL && ta_arena_listed_page(arena, next) == NULL)) ta_page_corrupt(b);
    if (page->in_full) {
      if (page->held_n++ == 0) {
        page->held_next = pages;
        pages = page;
      }
      b->next_enc = ta_link_encode(page->held);
      page->held = b;
    } else {
      b->next_enc = ta_link_encode(back);
      if (back == NULL) back_tail = b;
      back = b;
    }
    b = next;
  }
  while (pages != NULL) {
    ta_page_t *page = pages;
    pages = page->held_next;
    /* The page's own word: blocks freed after the one on the arena's list. Its TA_XFREE_FULL bit is
     * clear (that first free cleared it) unless the owner parked the page again since; then its
     * list is empty, and left as it is. */
    uintptr_t pw = atomic_load_explicit(&page->xfree, memory_order_relaxed);
    if (pw != 0 && (pw & TA_XFREE_FULL) == 0) pw = atomic_exchange_explicit(&page->xfree, 0, memory_order_acquire);
    else pw = 0;
    uint32_t n = page->held_n;
    ta_block_t *tail = page->held;
    while (ta_link_decode(tail->next_enc) != NULL) tail = ta_link_decode(tail->next_enc);
    for (ta_block_t *b = (ta_block_t *)pw; b != NULL; n++) {
      ta_block_t *next = ta_link_decode(b->next_enc);
      if (ta_unlikely(!ta_page_has_block(page, b))) ta_page_corrupt(b);
      if (ta_unlikely(n > page->capacity)) ta_page_xfree_overrun(page, (ta_block_t *)pw);
      tail->next_enc = ta_link_encode(b);
      tail = b;
      b = next;
    }
    tail->next_enc = ta_link_encode(NULL);
    if (n == page->parked_live) {
      ta_page_retire_parked(page, now);
      collected += n;
    } else {
      /* Not all back (or more than could be: a double free, which the owner will name). */
      tail->next_enc = ta_link_encode(back);
      if (back == NULL) back_tail = tail;
      back = page->held;
    }
    page->held = NULL;
    page->held_n = 0;
    page->held_next = NULL;
  }
  atomic_fetch_add_explicit(&ta_remote_collected, collected, memory_order_relaxed);
  if (back == NULL) return;
  uintptr_t head = atomic_load_explicit(&arena->xfree, memory_order_relaxed);
  do {
    back_tail->next_enc = ta_link_encode((ta_block_t *)head);
  } while (!atomic_compare_exchange_weak_explicit(&arena->xfree, &head, (uintptr_t)back, memory_order_release,
                                                  memory_order_relaxed));
}

bool ta_arena_collector_claim(ta_arena_t *arena, bool wait) {
  if (arena->tainted) return false;
  ta_busy_enter();
  if (busy_claim(arena, TA_BUSY_COLLECTOR, wait)) return true;
  ta_busy_leave();
  return false;
}

void ta_arena_collector_release(ta_arena_t *arena) { busy_release(arena); }

size_t ta_arena_collect_idle(ta_arena_t *arena, uint32_t now, bool wait, bool all) {
  if (!ta_arena_collector_claim(arena, wait)) return 0;
  if (atomic_load_explicit(&arena->xfree, memory_order_relaxed) != 0) collect_parked(arena, now);
  size_t released = 0;
  /* One class per claim: an owner that enters a slow path waits for at most one class's pages. */
  for (unsigned cls = 0; cls < TA_CLASSES; cls++) {
    if (cls > 0) {
      ta_arena_collector_release(arena);
      if (!ta_arena_collector_claim(arena, wait)) break;
    }
    for (ta_page_t *page = arena->bins[cls]; page != NULL; page = page->next)
      if (page != arena->current[cls]) released += ta_page_purge_idle(page, all);
    if (cls == TA_CLASSES - 1) ta_arena_collector_release(arena);
  }
  ta_seg_count_released(released);
  /* Retired pages may have put the retained memory over its cap. */
  size_t excess = ta_seg_retain_excess();
  if (excess != 0) ta_seg_trim(arena, now, false, top_pad(), excess);
  return released;
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
  __atomic_store_n(&arena->state, state, __ATOMIC_RELAXED);
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
    ta_page_free_owned(page, b);
    atomic_fetch_add_explicit(&ta_remote_collected, 1, memory_order_relaxed);
    b = next;
  }
}

size_t ta_arena_collect(ta_arena_t *arena, bool deep) {
  size_t released = 0;
  ta_arena_slow_enter(arena);
  if (atomic_load_explicit(&arena->xfree, memory_order_relaxed) != 0) ta_arena_drain_xfree(arena);
  for (unsigned cls = 0; cls < TA_CLASSES; cls++) {
    ta_bin_clear_current(arena, cls);
    for (ta_page_t *page = arena->bins[cls]; page != NULL;) {
      ta_page_t *next = page->next;
      released += ta_page_trim(page, deep);
      page = next;
    }
  }
  ta_arena_slow_leave(arena);
  ta_seg_count_released(released);
  return released;
}


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
    ta_seg_trim(arena, now, false, top_pad(), 0);
  }
}

void ta_arena_span_freed(ta_arena_t *arena, uint32_t now) {
  long decay = decay_ms();
  if (decay == 0) {
    /* No decay: the user asked for memory back at the free that frees it (glibc's free trims its
     * top the same way). One case where a free makes a system call. */
    arena->last_trim = now;
    ta_seg_trim(arena, now, false, top_pad(), 0);
  } else if (decay > 0) {
    arena->purge_pending = true;
    /* The other: more free memory waits for the decay than the retained cap allows (memory freed
     * faster than decay gives it back). The excess goes now, from this arena. */
    size_t excess = ta_seg_retain_excess();
    if (ta_unlikely(excess != 0)) ta_seg_trim(arena, now, false, top_pad(), excess);
  }
}

static void *malloc_slow(ta_arena_t *arena, size_t cls) {
  if (ta_unlikely(arena->purge_pending) && ++arena->purge_ticks >= TA_PURGE_EVERY) owner_purge(arena);
  if (atomic_load_explicit(&arena->xfree, memory_order_relaxed) != 0) ta_arena_drain_xfree(arena);
  if (ta_bin_find_page(arena, (unsigned)cls) == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  return ta_arena_alloc_or(arena, cls, malloc_slow);
}

/* The slow path counts as "inside tamalloc" for the fork handlers (common.h, ta_tls_depth). */
void *ta_arena_malloc_slow(ta_arena_t *arena, size_t cls) {
  if (ta_unlikely(arena == &ta_arena_empty)) {
    ta_busy_enter();
    void *p = ta_bind_malloc(cls);
    ta_busy_leave();
    return p;
  }
  ta_arena_slow_enter(arena);
  void *p = malloc_slow(arena, cls);
  ta_arena_slow_leave(arena);
  return p;
}
