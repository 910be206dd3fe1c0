/* Thread binding: which thread owns which arena. The initial-exec TLS pointer ta_tls_arena, the
 * thread-exit key whose destructor hands the arena back, the pool of arenas whose threads exited
 * (adopted, with all they cache, by the next new thread), the reclaiming of arenas whose threads died
 * without their exit hook, the shared arena of threads beyond TAMALLOC_ARENA_MAX, the borrowing by
 * threads past their exit hook, and the fork child's view of all of it.
 *
 * Probation. A new thread that finds the pool empty while TA_PROBATION_BOUND arenas per CPU are
 * already bound does not own an arena at once: its first TA_PROBATION_MALLOCS allocations come from
 * one of a few shared arenas (one per CPU, at most TA_SHARED_MAX, chosen by thread id), under that
 * arena's lock, and its frees of those blocks are remote frees. Only a thread that keeps allocating
 * binds an arena of its own. Why (measured on thread_waves: waves of 50 threads alive at once, each
 * allocating ~1.3 MB of 300 blocks, freeing them and waiting at a barrier): with an arena per thread
 * a finished thread's free pages sit in an arena nobody else can use until it exits, so a wave makes
 * 50 threads' worth resident and faults it all in again the next wave; threads sharing an arena
 * reuse each other's freed blocks inside the wave, as under glibc's shared arenas. A thread that
 * stays gets the fast path after a few hundred slow ones. Below the bound, or with an arena in the
 * pool, a new thread binds at once: a loop of a few short threads at a time adopts warm pooled
 * arenas, and the locked path cost it 10-14% CPU (thread_churn, thread_leak,
 * `benchmarks/ab-preload.py`). When the last probation thread of a shared arena exits, the arena
 * keeps at most its share of TA_POOL_KEEP of free pages and releases the rest, as an exiting owner
 * does.
 *
 * Locks (order in src/init.c): shared_lock[0..TA_SHARED_MAX-1] in index order, then ta_pool_lock
 * (the pool and the list of all arenas). */
#include <errno.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arenas/bind.h"
#include "arenas/trim.h"
#include "src/config.h"

pthread_key_t ta_thread_key;
void ta_arena_key_create(void) { pthread_key_create(&ta_thread_key, ta_arena_thread_exit); }

ta_page_t ta_page_empty; /* all zero: no free block, so the fast path always misses on it */
ta_arena_t ta_arena_empty = {.current = {[0 ... TA_CLASSES - 1] = &ta_page_empty}};
__thread ta_tls_t ta_tls __attribute__((tls_model("initial-exec"))) = {.arena = &ta_arena_empty, .small_max = TA_SMALL_TABLE_MAX};
/* Set once this thread's exit hook ran: later allocations (from other TLS destructors) borrow. */
static __thread bool tls_exiting __attribute__((tls_model("initial-exec")));
/* Set once this thread found the arena cap reached: it allocates from a shared arena for good. */
static __thread bool tls_shared __attribute__((tls_model("initial-exec")));
/* Probation (above): allocations left before the thread binds an arena of its own; set once. */
static __thread uint32_t tls_probation __attribute__((tls_model("initial-exec")));
static __thread bool tls_probed __attribute__((tls_model("initial-exec")));
/* The shared arena this thread uses, shared_index() + 1; 0 until chosen. */
static __thread uint8_t tls_share_slot __attribute__((tls_model("initial-exec")));

ta_lock_t ta_pool_lock = TA_LOCK_INIT;
static ta_arena_t *pool;         /* ta_ta_pool_lock: abandoned arenas, most recent first */
_Atomic size_t ta_arena_adoptions; /* arenas taken over from the pool */
static _Atomic size_t pool_kept; /* bytes the pooled arenas were let keep at exit (sum of pool_kept) */
/* Arenas in the pool, and arenas bound to threads that have not exited (written under
 * ta_pool_lock, read without it by probation_start: a stale count only decides one thread's start). */
static _Atomic uint32_t pool_size, bound_live;

static __thread int tls_tid __attribute__((tls_model("initial-exec"))); /* 0 until asked */
static int self_tid(void) {
  if (tls_tid == 0) tls_tid = (int)syscall(SYS_gettid);
  return tls_tid;
}

/* The arenas that probation threads and threads beyond TAMALLOC_ARENA_MAX share: each used only
 * with its shared_lock held, by a thread that points its TLS at it for the duration, so the
 * ordinary paths apply unchanged. */
#define TA_SHARED_MAX 8
#define TA_PROBATION_MALLOCS 512
#define TA_PROBATION_BOUND 4
static ta_lock_t shared_lock[TA_SHARED_MAX] = {[0 ... TA_SHARED_MAX - 1] = TA_LOCK_INIT};
static ta_arena_t *shared_arena[TA_SHARED_MAX]; /* shared_lock[i] */
/* Probation threads using each shared arena (relaxed: only the transition to 0 acts, and what it
 * does is taken under shared_lock[i], which orders it against the arena's other users). */
static _Atomic uint32_t shared_users[TA_SHARED_MAX];
/* How many shared arenas are in use: fixed by the first thread that needs one (shared_index). */
static _Atomic uint32_t shared_count;
static ta_arena_t *reclaim_cursor; /* ta_pool_lock: see arena_reclaim */
/* For fork: this file's locks, the bump allocator's (arena.c) and every arena's seg_lock, in the
 * documented order. */
static bool shared_taken[TA_SHARED_MAX], pool_taken; /* fork_lock (src/init.c) */

void ta_arena_fork(ta_fork_phase_t phase) {
  if (phase == TA_FORK_PREPARE) {
    for (unsigned i = 0; i < TA_SHARED_MAX; i++) ta_fork_one(&shared_lock[i], &shared_taken[i], phase);
    ta_fork_one(&ta_pool_lock, &pool_taken, phase);
    ta_arena_meta_fork(phase);
    for (ta_arena_t *a = ta_all_arenas; a != NULL; a = a->all_next) ta_fork_one(&a->seg_lock, &a->fork_taken, phase);
    return;
  }
  for (ta_arena_t *a = ta_all_arenas; a != NULL; a = a->all_next) ta_fork_one(&a->seg_lock, &a->fork_taken, phase);
  ta_arena_meta_fork(phase);
  ta_fork_one(&ta_pool_lock, &pool_taken, phase);
  for (unsigned i = TA_SHARED_MAX; i-- > 0;) ta_fork_one(&shared_lock[i], &shared_taken[i], phase);
}

static bool is_shared(const ta_arena_t *a) {
  for (unsigned i = 0; i < TA_SHARED_MAX; i++)
    if (shared_arena[i] == a) return true;
  return false;
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
  bool shared_whole[TA_SHARED_MAX];
  for (unsigned i = 0; i < TA_SHARED_MAX; i++) shared_whole[i] = ta_fork_one(&shared_lock[i], &shared_taken[i], phase);
  bool pool_whole = ta_fork_one(&ta_pool_lock, &pool_taken, phase);
  ta_arena_meta_fork(phase); /* drops a bump chunk that may be torn */
  tls_tid = 0;
  ta_arena_t *own = ta_tls_arena;
  for (ta_arena_t *a = ta_all_arenas; a != NULL; a = a->all_next) {
    if (!ta_fork_one(&a->seg_lock, &a->fork_taken, phase)) a->tainted = true;
    atomic_store_explicit(&a->trimming, false, memory_order_relaxed);
    /* A slow path or a collector was halfway through the arena's lists: nothing walks them again. */
    if (atomic_load_explicit(&a->busy, memory_order_relaxed) != 0) a->tainted = true;
    atomic_store_explicit(&a->busy, 0, memory_order_relaxed);
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
  for (unsigned i = 0; i < TA_SHARED_MAX; i++) {
    if (!shared_whole[i] || (shared_arena[i] != NULL && shared_arena[i]->tainted)) shared_arena[i] = NULL;
    /* The forking thread is the only probation thread left, if it is one. */
    atomic_store_explicit(&shared_users[i], tls_probation > 0 && tls_share_slot == i + 1, memory_order_relaxed);
  }
  for (ta_arena_t *a = ta_all_arenas; a != NULL; a = a->all_next) {
    bool in_pool = false;
    for (ta_arena_t *p = pool; p != NULL && !in_pool; p = p->pool_next) in_pool = p == a;
    if (a == own && !a->tainted && keep_arena && a->state == TA_ARENA_BOUND)
      a->owner_tid = self_tid();
    else if (a->state == TA_ARENA_BOUND || (a->state == TA_ARENA_POOLED && !in_pool) ||
             (a->state == TA_ARENA_SHARED && !is_shared(a)))
      __atomic_store_n(&a->state, TA_ARENA_ORPHANED, __ATOMIC_RELAXED);
  }
  reclaim_cursor = NULL;
  /* The pool's keep budget, recounted from the arenas the child's pool still holds. */
  size_t kept = 0;
  uint32_t pooled = 0;
  for (ta_arena_t *p = pool; p != NULL; p = p->pool_next) {
    kept += p->pool_kept;
    pooled++;
  }
  atomic_store_explicit(&pool_kept, kept, memory_order_relaxed);
  atomic_store_explicit(&pool_size, pooled, memory_order_relaxed);
  atomic_store_explicit(&bound_live, own != &ta_arena_empty && own->state == TA_ARENA_BOUND, memory_order_relaxed);
  if (own != &ta_arena_empty && own->state == TA_ARENA_ORPHANED) {
    ta_tls_arena = &ta_arena_empty;
    pthread_setspecific(ta_thread_key, NULL);
  }
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
  ta_lock(&ta_pool_lock);
  ta_arena_t *a = reclaim_cursor ? reclaim_cursor : ta_all_arenas;
  for (unsigned seen = 0; a != NULL && seen < TA_RECLAIM_PROBES * 4 && n < TA_RECLAIM_PROBES; seen++) {
    if (a->state == TA_ARENA_BOUND && a->owner_tid != 0 && a->owner_tid != self) {
      cand[n] = a;
      tids[n++] = a->owner_tid;
    }
    a = a->all_next;
  }
  reclaim_cursor = a;
  ta_unlock(&ta_pool_lock);
  /* Probe with no lock held. */
  int saved = errno;
  pid_t pid = getpid();
  int dead = -1;
  for (unsigned i = 0; i < n && dead < 0; i++)
    if (syscall(SYS_tgkill, pid, tids[i], 0) != 0 && errno == ESRCH) dead = (int)i;
  errno = saved;
  if (dead < 0) return NULL;
  ta_arena_t *arena = cand[dead];
  ta_lock(&ta_pool_lock);
  bool ours = arena->state == TA_ARENA_BOUND && arena->owner_tid == tids[dead];
  if (ours) {
    arena->owner_tid = self;
    atomic_fetch_add_explicit(&ta_arena_adoptions, 1, memory_order_relaxed);
  }
  ta_unlock(&ta_pool_lock);
  return ours ? arena : NULL;
}

/* An arena for a thread to own: adopted from the pool, reclaimed from a dead thread, or new. NULL
 * when TAMALLOC_ARENA_MAX says the thread must share (the last arena the cap allows is the shared
 * one), or without memory (*out_of_memory set). */
static ta_arena_t *arena_acquire(bool *out_of_memory) {
  *out_of_memory = false;
  ta_lock(&ta_pool_lock);
  ta_arena_t *arena = pool;
  if (arena != NULL) {
    pool = arena->pool_next;
    arena->pool_next = NULL;
    atomic_fetch_sub_explicit(&pool_kept, arena->pool_kept, memory_order_relaxed);
    arena->pool_kept = 0;
    __atomic_store_n(&arena->state, TA_ARENA_BOUND, __ATOMIC_RELAXED);
    arena->owner_tid = self_tid();
    atomic_fetch_add_explicit(&ta_arena_adoptions, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&pool_size, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&bound_live, 1, memory_order_relaxed);
  }
  ta_unlock(&ta_pool_lock);
  if (arena != NULL) return arena;
  arena = arena_reclaim();
  if (arena != NULL) return arena;
  ta_lock(&ta_pool_lock);
  size_t cap = atomic_load_explicit(&ta_config.arena_max, memory_order_relaxed);
  if (cap == 0 || ta_arena_count() + 1 < cap) {
    arena = ta_arena_new(TA_ARENA_BOUND);
    *out_of_memory = arena == NULL;
    if (arena != NULL) {
      arena->owner_tid = self_tid();
      atomic_fetch_add_explicit(&bound_live, 1, memory_order_relaxed);
    }
  }
  ta_unlock(&ta_pool_lock);
  return arena;
}

static void arena_release(ta_arena_t *arena) {
  ta_lock(&ta_pool_lock);
  __atomic_store_n(&arena->state, TA_ARENA_POOLED, __ATOMIC_RELAXED);
  arena->owner_tid = 0;
  arena->pool_next = pool;
  pool = arena;
  atomic_fetch_add_explicit(&pool_size, 1, memory_order_relaxed);
  atomic_fetch_sub_explicit(&bound_live, 1, memory_order_relaxed);
  ta_unlock(&ta_pool_lock);
}

/* This thread's shared arena: by thread id among one per CPU the process may run on (at most
 * TA_SHARED_MAX; one when TAMALLOC_ARENA_MAX caps the arenas, which counts them). */
static unsigned shared_index(void) {
  if (tls_share_slot == 0) {
    uint32_t n = atomic_load_explicit(&shared_count, memory_order_relaxed);
    if (n == 0) {
      cpu_set_t cpus;
      n = 1;
      if (atomic_load_explicit(&ta_config.arena_max, memory_order_relaxed) == 0 &&
          sched_getaffinity(0, sizeof cpus, &cpus) == 0)
        n = (uint32_t)CPU_COUNT(&cpus);
      if (n > TA_SHARED_MAX) n = TA_SHARED_MAX;
      if (n == 0) n = 1;
      uint32_t expect = 0;
      if (!atomic_compare_exchange_strong_explicit(&shared_count, &expect, n, memory_order_relaxed, memory_order_relaxed))
        n = expect;
    }
    tls_share_slot = (uint8_t)((unsigned)self_tid() % n + 1);
  }
  return tls_share_slot - 1u;
}

/* shared_lock[i] held. */
static ta_arena_t *shared_get(unsigned i) {
  if (shared_arena[i] == NULL) {
    ta_lock(&ta_pool_lock);
    /* Atomic for ta_arena_visit, which looks for an arena's slot without the lock. */
    __atomic_store_n(&shared_arena[i], ta_arena_new(TA_ARENA_SHARED), __ATOMIC_RELAXED);
    ta_unlock(&ta_pool_lock);
  }
  return shared_arena[i];
}

void ta_arena_with_shared(void (*fn)(ta_arena_t *arena, void *ctx), void *ctx) {
  for (unsigned i = 0; i < TA_SHARED_MAX; i++) {
    ta_lock(&shared_lock[i]);
    if (shared_arena[i] != NULL) fn(shared_arena[i], ctx);
    ta_unlock(&shared_lock[i]);
  }
}

void ta_arena_visit(ta_arena_t *arena, void (*fn)(ta_arena_t *arena, bool owner, void *ctx), void *ctx) {
  uint8_t state = __atomic_load_n(&arena->state, __ATOMIC_RELAXED);
  if (state == TA_ARENA_SHARED) {
    /* A shared arena's slot never changes once set; the profiler's arena is in no slot. */
    unsigned i = 0;
    while (i < TA_SHARED_MAX && __atomic_load_n(&shared_arena[i], __ATOMIC_RELAXED) != arena) i++;
    if (i == TA_SHARED_MAX) {
      fn(arena, false, ctx);
      return;
    }
    ta_lock(&shared_lock[i]);
    fn(arena, true, ctx);
    ta_unlock(&shared_lock[i]);
  } else if (state == TA_ARENA_POOLED) {
    ta_lock(&ta_pool_lock);
    fn(arena, arena->state == TA_ARENA_POOLED, ctx); /* not adopted meanwhile */
    ta_unlock(&ta_pool_lock);
  } else {
    fn(arena, false, ctx);
  }
}
void ta_arena_foreach_pooled(void (*fn)(ta_arena_t *arena, void *ctx), void *ctx) {
  ta_lock(&ta_pool_lock);
  for (ta_arena_t *a = pool; a != NULL; a = a->pool_next) fn(a, ctx);
  ta_unlock(&ta_pool_lock);
}

/* Runs at thread exit (pthread key destructor) with the arena the thread was bound to. Its empty
 * pages go back to their segments; of the free units that may hold touched pages, the pool as a
 * whole keeps at most TA_POOL_KEEP for the threads that adopt its arenas, and the exiting thread
 * releases the rest now. Measured: a pool of arenas that each keep their touched free pages for the
 * decay time held 115-145 MiB after waves of 50 short threads; releasing everything at every exit
 * made a loop of short threads 4x slower (each new thread faulting its pages in again, and mapping
 * the segment the last one unmapped); the shared budget keeps one thread's worth warm. */
#define TA_POOL_KEEP ((size_t)4 << 20)

/* The last probation thread of shared arena i exited: as an exiting owner would, the arena gives
 * its empty pages back to their segments and keeps at most its share of TA_POOL_KEEP of free pages
 * for the next threads. A thread that started meanwhile only finds fewer pages warm. */
static void shared_idle(unsigned i) {
  ta_lock(&shared_lock[i]);
  ta_arena_t *arena = shared_arena[i];
  if (arena != NULL && atomic_load_explicit(&shared_users[i], memory_order_relaxed) == 0) {
    ta_arena_collect(arena, false);
    size_t keep = TA_POOL_KEEP / atomic_load_explicit(&shared_count, memory_order_relaxed);
    size_t mine = atomic_load_explicit(&arena->dirty_units, memory_order_relaxed) * TA_UNIT_SIZE;
    if (mine > keep) ta_seg_trim(arena, ta_trim_clock(), false, 0, mine - keep);
  }
  ta_unlock(&shared_lock[i]);
}

/* A probation thread leaves its shared arena (it binds one of its own, or exits). */
static void probation_end(void) {
  tls_probation = 0;
  unsigned i = tls_share_slot - 1u;
  if (atomic_fetch_sub_explicit(&shared_users[i], 1, memory_order_relaxed) == 1 && tls_exiting) shared_idle(i);
}

void ta_arena_thread_exit(void *value) {
  ta_arena_t *arena = value;
  ta_tls_arena = &ta_arena_empty;
  tls_exiting = true;
  if ((void *)value >= (void *)shared_users && (void *)value < (void *)(shared_users + TA_SHARED_MAX)) {
    /* A probation thread (ta_bind_malloc's marker): later allocations use its shared arena. */
    tls_shared = true;
    if (tls_probation > 0) probation_end();
    return;
  }
  if (arena == NULL || arena == &ta_arena_empty) return;
  ta_arena_collect(arena, false);
  size_t mine = atomic_load_explicit(&arena->dirty_units, memory_order_relaxed) * TA_UNIT_SIZE;
  size_t before = atomic_fetch_add_explicit(&pool_kept, mine, memory_order_relaxed);
  size_t allowed = before >= TA_POOL_KEEP ? 0 : TA_POOL_KEEP - before;
  if (allowed > mine) allowed = mine;
  if (allowed < mine) {
    atomic_fetch_sub_explicit(&pool_kept, mine - allowed, memory_order_relaxed);
    ta_seg_trim(arena, ta_trim_clock(), false, 0, mine - allowed);
  }
  arena->pool_kept = allowed;
  arena_release(arena);
}

/* One allocation from this thread's shared arena, under its lock. */
static void *malloc_shared(size_t cls) {
  unsigned i = shared_index();
  ta_lock(&shared_lock[i]);
  ta_arena_t *shared = shared_get(i);
  void *p = NULL;
  if (shared != NULL) {
    ta_tls_arena = shared;
    p = ta_arena_alloc(shared, cls);
    ta_tls_arena = &ta_arena_empty;
  }
  ta_unlock(&shared_lock[i]);
  return p;
}

/* One allocation from an arena this thread does not own: its shared arena, or one borrowed from the
 * pool by an exiting thread (which must not bind one again, or the arena would stay bound to a dead
 * thread). Either way the thread's TLS points at the arena only while it allocates. */
static TA_NOINLINE void *malloc_unbound(size_t cls) {
  bool oom = false;
  ta_arena_t *arena = tls_shared ? NULL : arena_acquire(&oom);
  if (oom) return NULL;
  if (arena == NULL) return malloc_shared(cls);
  ta_tls_arena = arena;
  void *p = ta_arena_alloc(arena, cls);
  ta_tls_arena = &ta_arena_empty;
  arena_release(arena);
  return p;
}

/* Whether this thread starts on probation (see the top): not the process's first thread, which
 * owns the brk heap's arena, nor while the pool has an arena or few are bound. */
static bool probation_start(void) {
  tls_probed = true;
  if (ta_arena_count() == 0 || self_tid() == getpid()) return false;
  if (atomic_load_explicit(&pool_size, memory_order_relaxed) != 0) return false;
  unsigned i = shared_index(); /* fixes shared_count, the CPUs the bound counts */
  uint32_t cpus = atomic_load_explicit(&shared_count, memory_order_relaxed);
  if (atomic_load_explicit(&bound_live, memory_order_relaxed) < TA_PROBATION_BOUND * cpus) return false;
  atomic_fetch_add_explicit(&shared_users[i], 1, memory_order_relaxed);
  tls_probation = TA_PROBATION_MALLOCS;
  /* The marker makes the exit hook run; an allocation it makes finds tls_probation set. */
  pthread_setspecific(ta_thread_key, (void *)&shared_users[i]);
  return true;
}

/* The malloc slow path of a thread with no arena bound: on probation, from its shared arena; else
 * bind one (adopted, reclaimed or new), or borrow one for this allocation (an exiting thread; a
 * thread over the arena cap shares). */
void *ta_bind_malloc(size_t cls) {
  void *p;
  if (tls_exiting || tls_shared) {
    p = malloc_unbound(cls);
    if (p == NULL) errno = ENOMEM;
    return p;
  }
  if (tls_probation > 1 || (!tls_probed && probation_start())) {
    tls_probation--;
    p = malloc_shared(cls);
    if (p == NULL) errno = ENOMEM;
    return p;
  }
  if (tls_probation == 1) probation_end(); /* this allocation binds */
  bool oom;
  ta_arena_t *arena = arena_acquire(&oom);
  if (arena == NULL) {
    if (oom) {
      errno = ENOMEM;
      return NULL;
    }
    /* Over the arena cap: this thread shares from now on. */
    tls_shared = true;
    p = malloc_unbound(cls);
    if (p == NULL) errno = ENOMEM;
    return p;
  }
  /* Bind before pthread_setspecific: if it has to allocate, that allocation finds the arena. */
  ta_tls_arena = arena;
  pthread_setspecific(ta_thread_key, arena);
  return ta_arena_alloc(arena, cls);
}
