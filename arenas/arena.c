/* An arena's life: made on a thread's first allocation (or adopted from the pool of arenas whose
 * threads exited), bound to the thread through TLS, handed back to the pool when the thread exits.
 * Also the malloc slow path, which every allocation that misses the fast path goes through.
 *
 * Locks (order in src/init.c): pool_lock guards the pool and the list of all arenas; meta_lock the
 * bump allocator arenas are carved from. Arenas are never freed, so a pointer to one stays valid for
 * other threads that push remote frees onto it. */
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <string.h>

#include "src/config.h"
#include "src/os.h"
#include "arenas/page.h"
#include "arenas/trim.h"

pthread_key_t ta_thread_key;
void ta_arena_key_create(void) { pthread_key_create(&ta_thread_key, ta_arena_thread_exit); }

ta_page_t ta_page_empty; /* all zero: no free block, so the fast path always misses on it */
ta_arena_t ta_arena_empty = {.current = {[0 ... TA_CLASSES - 1] = &ta_page_empty}};
__thread ta_arena_t *ta_tls_arena __attribute__((tls_model("initial-exec"))) = &ta_arena_empty;
/* Set once this thread's exit hook ran: later allocations (from other TLS destructors) borrow. */
static __thread bool tls_exiting __attribute__((tls_model("initial-exec")));
/* Set once this thread found the arena cap reached: it allocates from the shared arena. */
static __thread bool tls_shared __attribute__((tls_model("initial-exec")));

static ta_lock_t pool_lock = TA_LOCK_INIT;
static ta_arena_t *pool;         /* pool_lock: abandoned arenas, most recent first */
static ta_arena_t *all_arenas;   /* pool_lock: every arena */
static _Atomic size_t arena_count;
_Atomic size_t ta_arena_adoptions; /* arenas taken over from the pool */
static bool brk_arena_made;      /* pool_lock: the brk heap has its arena */

static ta_lock_t meta_lock = TA_LOCK_INIT;
static char *meta_next;          /* meta_lock: bump pointer into the current chunk */
static char *meta_end;           /* meta_lock: end of that chunk */
#define TA_META_CHUNK ((size_t)256 * 1024)

static __thread int tls_tid __attribute__((tls_model("initial-exec"))); /* 0 until asked */
static int self_tid(void) {
  if (tls_tid == 0) tls_tid = (int)syscall(SYS_gettid);
  return tls_tid;
}

/* The arena threads beyond TAMALLOC_ARENA_MAX share: used only with shared_lock held, by a thread
 * that points its TLS at it for the duration, so the ordinary paths apply unchanged. */
static ta_lock_t shared_lock = TA_LOCK_INIT;
static ta_arena_t *shared_arena; /* shared_lock */
static ta_arena_t *reclaim_cursor; /* pool_lock: see arena_reclaim */

/* For fork: every lock of this file and every arena's seg_lock, in the documented order. */
static bool shared_taken, pool_taken, meta_taken; /* fork_lock (src/init.c) */

void ta_arena_fork(ta_fork_phase_t phase) {
  if (phase == TA_FORK_PREPARE) {
    ta_fork_one(&shared_lock, &shared_taken, phase);
    ta_fork_one(&pool_lock, &pool_taken, phase);
    ta_fork_one(&meta_lock, &meta_taken, phase);
    for (ta_arena_t *a = all_arenas; a != NULL; a = a->all_next) ta_fork_one(&a->seg_lock, &a->fork_taken, phase);
    return;
  }
  for (ta_arena_t *a = all_arenas; a != NULL; a = a->all_next) ta_fork_one(&a->seg_lock, &a->fork_taken, phase);
  ta_fork_one(&meta_lock, &meta_taken, phase);
  ta_fork_one(&pool_lock, &pool_taken, phase);
  ta_fork_one(&shared_lock, &shared_taken, phase);
}

/* In the child only the forking thread exists, with a new id. The arenas of the other threads were
 * in whatever state their owners had them in mid-operation: they are orphaned, never adopted or
 * reclaimed (their blocks can still be freed into them, as remote frees, which touch only atomic
 * words). So is the forking thread's own arena when the fork interrupted it inside tamalloc
 * (!keep_arena): the thread starts afresh with its next allocation. What a lock not taken before
 * fork guarded is abandoned rather than trusted: the pool's arenas and the shared arena are
 * orphaned, the bump chunk is dropped, an arena whose segment lists may be half edited is tainted
 * (statistics and trim passes leave it alone). All arenas ever made stay on the list of all arenas,
 * whose links are written before an arena is published and never change. */
void ta_arena_fork_child(ta_fork_phase_t phase, bool keep_arena) {
  bool shared_whole = ta_fork_one(&shared_lock, &shared_taken, phase);
  bool pool_whole = ta_fork_one(&pool_lock, &pool_taken, phase);
  bool meta_whole = ta_fork_one(&meta_lock, &meta_taken, phase);
  tls_tid = 0;
  ta_arena_t *own = ta_tls_arena;
  for (ta_arena_t *a = all_arenas; a != NULL; a = a->all_next) {
    if (!ta_fork_one(&a->seg_lock, &a->fork_taken, phase)) a->tainted = true;
    atomic_store_explicit(&a->trimming, false, memory_order_relaxed);
  }
  /* The pool keeps the arenas that are whole; the rest are orphaned below. */
  ta_arena_t **link = &pool;
  if (!pool_whole) pool = NULL;
  while (*link != NULL) {
    if ((*link)->tainted)
      *link = (*link)->pool_next;
    else
      link = &(*link)->pool_next;
  }
  if (!shared_whole || (shared_arena != NULL && shared_arena->tainted)) shared_arena = NULL;
  for (ta_arena_t *a = all_arenas; a != NULL; a = a->all_next) {
    bool in_pool = false;
    for (ta_arena_t *p = pool; p != NULL && !in_pool; p = p->pool_next) in_pool = p == a;
    if (a == own && !a->tainted && keep_arena && a->state == TA_ARENA_BOUND)
      a->owner_tid = self_tid();
    else if (a->state == TA_ARENA_BOUND || (a->state == TA_ARENA_POOLED && !in_pool) ||
             (a->state == TA_ARENA_SHARED && a != shared_arena))
      a->state = TA_ARENA_ORPHANED;
  }
  if (!meta_whole) meta_next = meta_end = NULL;
  reclaim_cursor = NULL;
  if (own != &ta_arena_empty && own->state == TA_ARENA_ORPHANED) {
    ta_tls_arena = &ta_arena_empty;
    pthread_setspecific(ta_thread_key, NULL);
  }
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

/* pool_lock held: a fresh arena, or NULL without memory. */
static ta_arena_t *arena_new(uint8_t state) {
  ta_arena_t *arena = meta_alloc(sizeof(ta_arena_t));
  if (arena == NULL) return NULL;
  for (unsigned c = 0; c < TA_CLASSES; c++) arena->current[c] = &ta_page_empty;
  arena->seg_lock = (ta_lock_t)TA_LOCK_INIT;
  arena->id = (unsigned)atomic_fetch_add_explicit(&arena_count, 1, memory_order_relaxed);
  arena->use_brk = !brk_arena_made;
  arena->state = state;
  brk_arena_made = true;
  arena->all_next = all_arenas;
  all_arenas = arena;
  return arena;
}


/* A thread whose first allocation comes from a TLS destructor in glibc's last round of them binds
 * an arena that its exit hook will never hand back (the round that would call it never comes).
 * Such arenas are found later: their owner thread no longer exists. A few candidates are checked
 * each time a new arena would otherwise be made, from a cursor that walks the list of all arenas,
 * so the cost stays a handful of tgkill(…, 0) probes however many threads there are. A reused
 * thread id only hides a dead owner for a while; it never makes a live one look dead. */
#define TA_RECLAIM_PROBES 8

static ta_arena_t *arena_reclaim(void) {
  ta_arena_t *cand[TA_RECLAIM_PROBES];
  int tids[TA_RECLAIM_PROBES];
  unsigned n = 0;
  int self = self_tid();
  ta_lock(&pool_lock);
  ta_arena_t *a = reclaim_cursor ? reclaim_cursor : all_arenas;
  for (unsigned seen = 0; a != NULL && seen < TA_RECLAIM_PROBES * 4 && n < TA_RECLAIM_PROBES; seen++) {
    if (a->state == TA_ARENA_BOUND && a->owner_tid != 0 && a->owner_tid != self) {
      cand[n] = a;
      tids[n++] = a->owner_tid;
    }
    a = a->all_next;
  }
  reclaim_cursor = a;
  ta_unlock(&pool_lock);
  /* Probe with no lock held. */
  int saved = errno;
  pid_t pid = getpid();
  int dead = -1;
  for (unsigned i = 0; i < n && dead < 0; i++)
    if (syscall(SYS_tgkill, pid, tids[i], 0) != 0 && errno == ESRCH) dead = (int)i;
  errno = saved;
  if (dead < 0) return NULL;
  ta_arena_t *arena = cand[dead];
  ta_lock(&pool_lock);
  bool ours = arena->state == TA_ARENA_BOUND && arena->owner_tid == tids[dead];
  if (ours) {
    arena->owner_tid = self;
    atomic_fetch_add_explicit(&ta_arena_adoptions, 1, memory_order_relaxed);
  }
  ta_unlock(&pool_lock);
  return ours ? arena : NULL;
}

/* An arena for a thread to own: adopted from the pool, reclaimed from a dead thread, or new. NULL
 * when TAMALLOC_ARENA_MAX says the thread must share (the last arena the cap allows is the shared
 * one), or without memory (*out_of_memory set). */
static ta_arena_t *arena_acquire(bool *out_of_memory) {
  *out_of_memory = false;
  ta_lock(&pool_lock);
  ta_arena_t *arena = pool;
  if (arena != NULL) {
    pool = arena->pool_next;
    arena->pool_next = NULL;
    arena->state = TA_ARENA_BOUND;
    arena->owner_tid = self_tid();
    atomic_fetch_add_explicit(&ta_arena_adoptions, 1, memory_order_relaxed);
  }
  ta_unlock(&pool_lock);
  if (arena != NULL) return arena;
  arena = arena_reclaim();
  if (arena != NULL) return arena;
  ta_lock(&pool_lock);
  size_t cap = atomic_load_explicit(&ta_config.arena_max, memory_order_relaxed);
  if (cap == 0 || atomic_load_explicit(&arena_count, memory_order_relaxed) + 1 < cap) {
    arena = arena_new(TA_ARENA_BOUND);
    *out_of_memory = arena == NULL;
    if (arena != NULL) arena->owner_tid = self_tid();
  }
  ta_unlock(&pool_lock);
  return arena;
}

static void arena_release(ta_arena_t *arena) {
  ta_lock(&pool_lock);
  arena->state = TA_ARENA_POOLED;
  arena->owner_tid = 0;
  arena->pool_next = pool;
  pool = arena;
  ta_unlock(&pool_lock);
}

static ta_arena_t *shared_get(void) {
  if (shared_arena == NULL) {
    ta_lock(&pool_lock);
    shared_arena = arena_new(TA_ARENA_SHARED);
    ta_unlock(&pool_lock);
  }
  return shared_arena;
}

void ta_arena_with_shared(void (*fn)(ta_arena_t *arena, void *ctx), void *ctx) {
  ta_lock(&shared_lock);
  if (shared_arena != NULL) fn(shared_arena, ctx);
  ta_unlock(&shared_lock);
}

void ta_arena_visit(ta_arena_t *arena, void (*fn)(ta_arena_t *arena, bool owner, void *ctx), void *ctx) {
  uint8_t state = __atomic_load_n(&arena->state, __ATOMIC_RELAXED);
  if (state == TA_ARENA_SHARED) {
    ta_lock(&shared_lock);
    fn(arena, arena == shared_arena, ctx);
    ta_unlock(&shared_lock);
  } else if (state == TA_ARENA_POOLED) {
    ta_lock(&pool_lock);
    fn(arena, arena->state == TA_ARENA_POOLED, ctx); /* not adopted meanwhile */
    ta_unlock(&pool_lock);
  } else {
    fn(arena, false, ctx);
  }
}

void ta_arena_foreach(void (*fn)(ta_arena_t *arena, void *ctx), void *ctx) {
  ta_lock(&pool_lock);
  ta_arena_t *head = all_arenas;
  ta_unlock(&pool_lock);
  /* The list only grows at its head and its links never change once published. */
  for (ta_arena_t *a = head; a != NULL; a = a->all_next) fn(a, ctx);
}

void ta_arena_foreach_pooled(void (*fn)(ta_arena_t *arena, void *ctx), void *ctx) {
  ta_lock(&pool_lock);
  for (ta_arena_t *a = pool; a != NULL; a = a->pool_next) fn(a, ctx);
  ta_unlock(&pool_lock);
}

/* Runs at thread exit (pthread key destructor) with the arena the thread was bound to. */
void ta_arena_thread_exit(void *value) {
  ta_arena_t *arena = value;
  ta_tls_arena = &ta_arena_empty;
  tls_exiting = true;
  if (arena != NULL && arena != &ta_arena_empty) arena_release(arena);
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

/* One allocation from an arena this thread does not own: the shared arena, or one borrowed from the
 * pool by an exiting thread (which must not bind one again, or the arena would stay bound to a dead
 * thread). Either way the thread's TLS points at the arena only while it allocates. */
static TA_NOINLINE void *malloc_unbound(size_t cls) {
  bool oom = false;
  ta_arena_t *arena = tls_shared ? NULL : arena_acquire(&oom);
  if (oom) return NULL;
  if (arena == NULL) {
    ta_lock(&shared_lock);
    ta_arena_t *shared = shared_get();
    void *p = NULL;
    if (shared != NULL) {
      ta_tls_arena = shared;
      p = ta_arena_alloc(shared, cls);
      ta_tls_arena = &ta_arena_empty;
    }
    ta_unlock(&shared_lock);
    return p;
  }
  ta_tls_arena = arena;
  void *p = ta_arena_alloc(arena, cls);
  ta_tls_arena = &ta_arena_empty;
  arena_release(arena);
  return p;
}

static void *malloc_slow(ta_arena_t *arena, size_t cls) {
  if (ta_unlikely(arena == &ta_arena_empty)) {
    if (tls_exiting || tls_shared) {
      void *p = malloc_unbound(cls);
      if (p == NULL) errno = ENOMEM;
      return p;
    }
    bool oom;
    arena = arena_acquire(&oom);
    if (arena == NULL) {
      if (oom) {
        errno = ENOMEM;
        return NULL;
      }
      /* Over the arena cap: this thread shares from now on. */
      tls_shared = true;
      void *p = malloc_unbound(cls);
      if (p == NULL) errno = ENOMEM;
      return p;
    }
    /* Bind before pthread_setspecific: if it has to allocate, that allocation finds the arena. */
    ta_tls_arena = arena;
    pthread_setspecific(ta_thread_key, arena);
    return ta_arena_alloc(arena, cls);
  }
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
