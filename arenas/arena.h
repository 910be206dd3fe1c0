/* Arenas: one per thread, each owning its segments, bins and pages. This header holds the fast paths
 * (inline), everything else lives in arena.c (an arena's life, its slow path), bind.c (which
 * thread owns which arena), bins.c, page.c, segment.c and census.c (what statistics read).
 *
 * Ownership: an arena is used by at most one thread at a time, its owner, found through the
 * initial-exec TLS pointer ta_tls_arena. The owner changes its pages, bins and segments without locks
 * or atomic read-modify-writes. Other threads only push freed blocks: onto a page's xfree word, or,
 * when the owner parked that page as full, onto the arena's xfree list (see page.c). A thread that
 * exits hands its arena to the pool; the next new thread adopts it with everything it caches. */
#ifndef TA_ARENA_H
#define TA_ARENA_H

#include "arenas/segment.h"

#pragma GCC visibility push(hidden)

struct ta_arena_s {
  ta_page_t *current[TA_CLASSES]; /* owner: page allocated from, per class; &ta_page_empty if none */
  ta_page_t *bins[TA_CLASSES];    /* owner: list of pages with blocks to give, per class */
  _Atomic uintptr_t xfree;        /* other threads: blocks freed into pages parked full */
  _Atomic bool trimming;          /* a trim pass runs over this arena (one at a time; not a lock) */
  bool tainted;                   /* fork child: seg_lock was not taken before fork, so the segment
                                     lists may be half edited: nothing walks them any more */
  /* TA_BUSY_OWNER while the owner runs a slow path, TA_BUSY_COLLECTOR while another thread stands
   * in for an idle owner (the collector protocol, arenas/arena.c); never touched by the fast paths.
   * A flag, not a lock: fork never waits for it. */
  _Atomic uint8_t busy;
  ta_lock_t seg_lock;             /* guards the segment list and the segments' unit masks */
  _Atomic size_t dirty_units;     /* free units of its segments that may hold touched pages (seg_lock
                                     writes it; read without) */
  ta_segment_t *segments;         /* seg_lock: segments that may have free units */
  ta_segment_t *segments_tail;    /* seg_lock: last of that list */
  ta_segment_t *full_segments;    /* seg_lock: segments without free units */
  uint32_t last_trim;             /* owner: trim clock of the owner's last purge pass */
  uint32_t purge_ticks;           /* owner: malloc slow paths since purge_pending was last looked at */
  bool purge_pending;             /* owner: a span went back since the owner's last purge pass */
  unsigned id;                    /* creation number, 0 for the first */
  bool use_brk;                   /* owner: grows segments with brk while brk is usable */
  uint8_t state;                  /* ta_pool_lock: TA_ARENA_BOUND, _POOLED, _SHARED or _ORPHANED */
  bool fork_taken;                /* fork handlers: whether they took seg_lock */
  int owner_tid;                  /* ta_pool_lock: kernel thread id of the owner while bound */
  ta_arena_t *pool_next;          /* ta_pool_lock: next abandoned arena */
  size_t pool_kept;               /* ta_pool_lock: free bytes its exit kept (bind.c, TA_POOL_KEEP) */
  ta_arena_t *all_next;           /* ta_pool_lock: every arena ever made */
  ta_page_t *bins_tail[TA_CLASSES]; /* owner: last page of each bin list (NULL when empty) */
};

enum { TA_ARENA_BOUND = 0, TA_ARENA_POOLED = 1, TA_ARENA_SHARED = 2, TA_ARENA_ORPHANED = 3 };
enum { TA_BUSY_OWNER = 1, TA_BUSY_COLLECTOR = 2 };

extern ta_arena_t ta_arena_empty;
/* Slow-path event counters (relaxed atomics), for stats. */
extern _Atomic size_t ta_arena_adoptions;
extern _Atomic size_t ta_remote_collected;
extern _Atomic size_t ta_segment_grows;
extern ta_page_t ta_page_empty;
/* The thread's state the malloc fast path reads, in one initial-exec TLS object so that one TLS
 * offset (one GOT load in the shared library) serves both fields. */
typedef struct ta_tls_s {
  ta_arena_t *arena; /* the arena the thread owns; &ta_arena_empty before its first allocation */
  size_t small_max;  /* requests up to this take the fast path: TA_SMALL_TABLE_MAX, or 0 while the
                        heap profiler samples this thread (src/prof.h), which sends every request
                        through the router's slow path */
  int64_t prof_left; /* bytes before the heap profiler's next sample on this thread (src/prof.c):
                        beside the arena, so the countdown needs no TLS offset of its own */
} ta_tls_t;
extern __thread ta_tls_t ta_tls __attribute__((tls_model("initial-exec")));
#define ta_tls_arena (ta_tls.arena)

/* bind.c */
/* Fork handlers (protocol in src/init.c): the arena locks and every arena's seg_lock, in order. */
void ta_arena_fork(ta_fork_phase_t phase);
/* The child phase: `keep_arena` false orphans the forking thread's own arena too. */
void ta_arena_fork_child(ta_fork_phase_t phase, bool keep_arena);
void ta_arena_thread_exit(void *arena);
/* The thread-exit key (its destructor is ta_arena_thread_exit); created once, by ta_init_slow. */
extern pthread_key_t ta_thread_key;
void ta_arena_key_create(void);
/* Calls fn on every pooled arena with the pool locked: fn acts as the arena's owner. */
void ta_arena_foreach_pooled(void (*fn)(ta_arena_t *arena, void *ctx), void *ctx);
/* Calls fn(arena, owner, ctx): with `owner` true when nobody owns the arena (pooled, or the shared
 * arena) and fn runs as its owner for the moment, under the lock that keeps it so (ta_pool_lock,
 * shared_lock); with `owner` false, and no lock, for an arena a thread owns. */
void ta_arena_visit(ta_arena_t *arena, void (*fn)(ta_arena_t *arena, bool owner, void *ctx), void *ctx);
/* Calls fn on the shared arena (TAMALLOC_ARENA_MAX), if any, as its owner for the moment. */
void ta_arena_with_shared(void (*fn)(ta_arena_t *arena, void *ctx), void *ctx);
/* One trim pass (or a validation, which must not see units a pass holds out of the masks) at a time
 * over an arena: claim the arena's `trimming` flag. With `wait` the claim yields until the pass
 * that runs ends (while it holds the flag a pass waits only for seg_lock, whose
 * holders wait for nothing, so this cannot deadlock); without, it gives up. False if not claimed. */
bool ta_arena_trim_claim(ta_arena_t *arena, bool wait);
TA_INLINE void ta_arena_trim_release(ta_arena_t *arena) {
  atomic_store_explicit(&arena->trimming, false, memory_order_release);
}

/* arena.c */
/* The owner (or whoever acts as the owner: a pool or shared-arena lock holder) enters a slow path:
 * waits while a collector works on the arena. Every slow path that reads or edits what the
 * collector may edit (parked pages, bins, the arena's xfree list, page lists) runs between these. */
void ta_arena_slow_enter(ta_arena_t *arena);
void ta_arena_slow_leave(ta_arena_t *arena);
/* Another thread stands in for the owner of a bound arena (the collector protocol): its parked
 * pages whose blocks all came back are retired, other threads' frees into them collected, and the
 * OS pages of its idle pages that hold only free blocks released (all its pages that are not
 * current with `all`, else those unchanged since the last pass). Skips the arena if its owner is in
 * a slow path (it will collect itself), or waits for that with `wait`. Returns bytes released. */
size_t ta_arena_collect_idle(ta_arena_t *arena, uint32_t now, bool wait, bool all);
/* The collector's claim alone (for readers that must not see the lists change): false if the owner
 * is in a slow path and not `wait`, or the arena is tainted. */
bool ta_arena_collector_claim(ta_arena_t *arena, bool wait);
void ta_arena_collector_release(ta_arena_t *arena);
/* The malloc slow path. ta_init (src/init.h) must have run: the router's miss function sees to it. */
void *ta_arena_malloc_slow(ta_arena_t *arena, size_t cls);
void ta_arena_drain_xfree(ta_arena_t *arena);
/* Owner (or pool holder) only: other threads' frees collected, current pages stop being current,
 * empty pages go back to their segments; with `deep`, the free OS pages inside live pages are
 * released too. Returns bytes released by the deep part. */
size_t ta_arena_collect(ta_arena_t *arena, bool deep);
/* Owner only, from the free slow path (arenas/page.c): a span went back to its segment at `now`.
 * Makes no system call but with decay 0, which asks for release at the free: it marks the purge
 * pending, and the owner's malloc slow path runs it every TA_PURGE_EVERY calls once it is due. */
void ta_arena_span_freed(ta_arena_t *arena, uint32_t now);
#define TA_PURGE_EVERY 16
size_t ta_arena_count(void);
/* Calls fn on every arena ever made (they are never freed); fn runs with no lock held. */
void ta_arena_foreach(void (*fn)(ta_arena_t *arena, void *ctx), void *ctx);
/* resize.c: the caller, the owner of `arena`, holds block p of page (checked by
 * ta_arena_page_checked) and wants it to hold `size` bytes (<= TA_CLASS_MAX_SIZE). True if the block
 * now does, where it is, with page's class the class of `size`; false, nothing changed, if the rule
 * at the top of resize.c does not allow it. Enters the arena's slow path itself. */
bool ta_arena_resize_in_place(ta_arena_t *arena, ta_page_t *page, void *p, size_t size);
/* page.c */
void ta_page_free_slow(ta_page_t *page);
void ta_page_free_remote(ta_page_t *page, ta_block_t *block);
/* The heap profiler's arena (src/prof.c), NULL until its first sample: its blocks are the sampled
 * ones, it has no owner thread, so every free of one is remote and ta_page_free_remote tells the
 * profiler (ta_prof_forget) before the block goes back to its page. Read relaxed: a thread freeing a
 * block got it after the store that published the arena. */
extern _Atomic(ta_arena_t *) ta_prof_arena;
bool ta_prof_forget(const void *p);
/* Checks a block whose first word looks like a link for a double free, then frees it. */
void ta_page_free_suspect(ta_page_t *page, ta_block_t *block);
_Noreturn void ta_page_corrupt(const void *where);
/* A page's xfree list (from head) holds more blocks than the page could have out: aborts naming the
 * block freed twice, found where the list loops back, or as a corrupted list if it does not loop. */
_Noreturn void ta_page_xfree_overrun(const ta_page_t *page, const ta_block_t *head);

/* Whether p is the start of a block the owner has carved in page (the owner's view: capacity),
 * with one unsigned comparison for both the bounds and the stride. With block_size = odd * 2^shift
 * and inv * odd = 1 mod 2^64, rotating (p - start) * inv right by shift gives off / block_size when
 * off = p - start is a multiple of block_size; for any other off it gives more than
 * (2^64 - 1) / block_size (a smaller result r would mean off = r * block_size). That holds for every
 * 64-bit off, so a p below start (off wraps) is rejected too; and NULL. A retired page (capacity 0)
 * rejects everything. */
TA_INLINE uint64_t ta_page_block_index(const ta_page_t *page, const void *p) {
  uint64_t x = ((uintptr_t)p - page->start) * page->inv;
  unsigned s = page->shift; /* 0 on descriptors never initialised, which have capacity 0 */
  return (x >> s) | (x << (-s & 63));
}
TA_INLINE bool ta_page_has_block(const ta_page_t *page, const void *p) {
  return ta_page_block_index(page, p) < page->capacity;
}

/* The page of b if b can be on arena's xfree list (a carved block of a live page of that arena),
 * else NULL. b may be any value: the segment map is asked before the header is read. */
TA_INLINE ta_page_t *ta_arena_listed_page(const ta_arena_t *arena, const void *b) {
  if (!ta_segmap_has(b)) return NULL;
  ta_page_t *page = ta_seg_page_of(ta_seg_of(b), b);
  return page->arena == arena && ta_page_has_block(page, b) ? page : NULL;
}

/* The malloc fast path: pop the current page's free list; on a miss, `miss` (a constant: the call
 * inlines to a direct tail call). The router passes its own miss function, which runs the arena's
 * slow path and then the work of the layers above (start-up, the trim scheduler); inside the arena
 * layer ta_arena_alloc passes the arena's slow path itself. */
TA_INLINE void *ta_arena_alloc_or(ta_arena_t *arena, size_t cls, void *(*miss)(ta_arena_t *, size_t)) {
  ta_page_t *page = arena->current[cls];
  ta_block_t *block = page->free;
  if (ta_likely(block != NULL)) {
    ta_block_t *next = ta_link_decode(block->next_enc);
    /* Hides from the compiler that next == NULL is enc == secret: it would keep both words in
     * registers (a load and a copy) for that rare test instead of testing next itself. */
    __asm__("" : "+r"(next));
    /* Hardening: a link must name a block this page carved (NULL ends the list), or the next
     * malloc would hand out memory inside another block, live or not. */
    if (TA_HARDENING && ta_unlikely(!ta_page_has_block(page, next)) && next != NULL)
      ta_page_corrupt(block);
    page->free = next;
    page->used++;
    /* A handed-out block's first word must not look like a link, or its free would be checked as
     * a possible double free (see ta_page_free_local); 0 never does, the secret having bit 63. */
    block->next_enc = 0;
    return block;
  }
  return miss(arena, cls);
}

TA_INLINE void *ta_arena_alloc(ta_arena_t *arena, size_t cls) {
  return ta_arena_alloc_or(arena, cls, ta_arena_malloc_slow);
}

/* Validates a pointer that the segment map placed in one of our segments; returns its page, or NULL
 * when p is not the start of a block ever carved (interior, misaligned, in a free unit): the test of
 * ta_page_has_block, against carved_n, the copy of capacity any thread may read. A retired span's
 * descriptor and the descriptor a free unit names both have carved_n at most the blocks before the
 * unit, so a pointer into a free unit is rejected. */
TA_INLINE ta_page_t *ta_arena_page_checked(const void *p) {
  ta_page_t *page = ta_seg_page_of(ta_seg_of(p), p);
  if (ta_unlikely(ta_page_block_index(page, p) >= atomic_load_explicit(&page->carved_n, memory_order_relaxed)))
    return NULL;
  return page;
}

/* p was rejected by ta_arena_page_checked: was it a block of the span that last held its unit? */
TA_INLINE bool ta_arena_was_block(const void *p) {
  const ta_page_t *page = ta_seg_page_of(ta_seg_of(p), p);
  uintptr_t off = (uintptr_t)p - page->start;
  return page->retired_size != 0 && off < (size_t)page->units * TA_UNIT_SIZE && off % page->retired_size == 0;
}

/* The free fast path for the owner: push on the local list. Every rare case leaves through a tail
 * call, so the common path saves no registers. */
TA_INLINE void ta_page_free_local(ta_page_t *page, ta_block_t *block) {
  /* A block on a free list holds an encoded link. If this one's first word could be one, confirm
   * by searching the lists (slow, rare): it is a double free or user data that looks alike. */
  if (TA_HARDENING && ta_unlikely(ta_link_plausible(block->next_enc))) {
    ta_page_free_suspect(page, block);
    return;
  }
  block->next_enc = ta_link_encode(page->free);
  /* The link before the head: a collector may read a page's list from its head (page.c). */
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  page->free = block;
  if (ta_unlikely(--page->used == 0)) ta_page_free_slow(page);
}

TA_INLINE void ta_arena_free(ta_page_t *page, void *p) {
  if (ta_likely(page->arena == ta_tls_arena))
    ta_page_free_local(page, (ta_block_t *)p);
  else
    ta_page_free_remote(page, (ta_block_t *)p);
}

#pragma GCC visibility pop

#endif
