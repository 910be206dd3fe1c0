/* Process start-up (on the first allocation, whenever that is: before main, inside the dynamic
 * loader's callbacks, inside pthread_create), the thread-exit hook, and fork.
 *
 * Lock order, outermost first; a thread holding one may take only those below it. These are all of
 * tamalloc's locks:
 *   0. fork_lock   (src/init.c)       one fork's handlers at a time
 *      glibc's stdio list lock        taken by fork_prepare right after fork_lock (see below)
 *   1. prof_lock   (src/prof.c)       the heap profiler's tables and its arena; its holder acts as
 *                                     that arena's owner (so every lock below may follow it),
 *                                     maps table memory and writes profiles with raw system
 *                                     calls, and never unwinds a stack nor calls dladdr
 *      shared_lock[i] (arenas/bind.c) the shared arenas (of threads on probation and beyond
 *                                     TAMALLOC_ARENA_MAX); their holder allocates, so every lock
 *                                     below may follow; a thread holds at most one of prof_lock
 *                                     and the shared_lock[i], except the fork handler, which takes
 *                                     every shared_lock[i] in index order
 *   2. ta_pool_lock (arenas/bind.c)   the arena pool and the list of all arenas (arenas/arena.c)
 *   3. meta_lock   (arenas/arena.c)   the bump allocator for arena structs (mmap under it)
 *   4. seg_lock    (one per arena)    an arena's segment list and unit masks; a thread holds at
 *                                     most one, except the fork handler, which takes them all in
 *                                     the order of the list of all arenas; its holders make no
 *                                     system call and take no other lock
 *   5. reg[0..63].lock (src/large.c)  the large-block registry, one lock per shard of it, then
 *   6. cache[0..7].lock (src/large.c) the retained mappings, one lock per shard: a thread holds at
 *                                     most one of these 72 and no other tamalloc lock with it,
 *                                     except the fork handler, which takes them all in this order
 *                                     (registry shards by index, then cache shards by index);
 *                                     munmap and mremap never run under them (a registry
 *                                     table's own mmap does)
 * Two exclusions are flags, not locks, so that no lock is held across brk, munmap or madvise, no
 * thread waits for one while it holds a lock, and fork never waits for either: the brk mover
 * (brk_busy, arenas/segment.c: one thread moves the program break at a time) and the trim pass
 * (arena->trimming: one pass at a time over an arena). A waiter for the brk flag holds no lock; a
 * pass with a budget (the retained cap, an exit) waits for the trim flag perhaps under shared_lock
 * or ta_pool_lock, which is safe because a pass holding the flag takes no lock but seg_lock and
 * waits for nothing but seg_lock and the brk flag. A third flag, arena->busy (arenas/arena.c),
 * excludes an arena's owner slow paths from a collector that stands in for an idle owner. An
 * owner's slow path holding it waits only for seg_lock, the brk flag and the trim flag, a collector
 * only for seg_lock, and neither holder of those waits for busy; so a waiter for it
 * (an owner entering a slow path, perhaps under shared_lock or ta_pool_lock, or malloc_trim) waits
 * for nothing that waits for it. Fork never waits for it; a child abandons an arena whose flag was
 * set (arena->tainted).
 * No tamalloc lock is held across a call into stdio or anything else that takes a lock of its own.
 *
 * Fork. glibc's fork runs the atfork prepare handlers, then (in a multithreaded process) takes its
 * stdio list lock and its own allocator's locks, forks, and releases (parent) or resets (child)
 * them before the parent and child handlers run. fork_prepare takes glibc's stdio list lock first,
 * so tamalloc's locks come after it exactly as glibc's own allocator's do: a thread in fflush(NULL)
 * holds the list lock while it waits for a stream's lock, whose holder may be in malloc waiting for a
 * tamalloc lock; with the list lock taken first the forking thread never holds a tamalloc lock while
 * it waits for the list lock. (The lock is recursive, so glibc's fork takes it again; glibc releases
 * its count in the parent and resets the lock in the child, and fork_parent releases ours.)
 * Then every lock in the order above, by ta_fork_lock (src/error.c), which leaves the locks the
 * forking thread itself holds (a fork from a signal handler that interrupted tamalloc) and, when the
 * thread is inside tamalloc, stops waiting for others after a bounded time. In the child every lock
 * is re-initialised; what a lock that was not taken guards may be halfway through an edit, so the
 * child rebuilds or abandons it (each module's fork function says how). The child's thread keeps
 * its arena only if the fork did not interrupt it inside tamalloc (ta_tls_depth == 0 and its
 * segment lock was taken); otherwise the arena is orphaned like every other thread's, and the next
 * allocation binds a fresh one: the child never resumes the interrupted call's half-made state.
 * A fork that interrupts the fork handlers themselves (fork_lock held by this thread) takes
 * nothing, and its child rebuilds everything (TA_FORK_CHILD_LOST). */
#include "src/init.h"

#include <sched.h>
#include <sys/single_threaded.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "arenas/arena.h"
#include "src/config.h"
#include "src/large.h"
#include "src/os.h"
#include "src/prof.h"
#include "src/sched.h"
#include "src/secret.h"

/* 0 not started, 2 done, or pid << 2 | 1 while a thread of process pid runs the initialisation.
 * The pid is there for fork: a child forked while another thread was initialising inherits a
 * state whose initialiser does not exist in it, and its first caller takes the initialisation over
 * (a thread of the initialiser's own process waits instead). init_done says which steps that must
 * run once per process tree had completed, so the taker-over neither changes the secret that
 * blocks may already be encoded with nor registers the key or the fork handlers twice; the other
 * steps only read the environment and are run again. Written by the initialiser alone, read by a
 * child after fork (the fork copies them as they were): relaxed is enough. */
_Atomic int ta_init_state;
enum { INIT_SECRET = 1, INIT_KEY = 2, INIT_ATFORK = 4 };
static _Atomic int init_done;
__thread unsigned ta_tls_depth __attribute__((tls_model("initial-exec")));
static __thread bool tls_initialising __attribute__((tls_model("initial-exec")));

/* glibc's stdio list lock (exported by libc.so.6 since 2.2.5; weak, so a libc without it links). */
extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));

static ta_lock_t fork_lock = TA_LOCK_INIT; /* one fork's handlers at a time; outermost of all */
static bool fork_whole;                    /* fork_lock: this fork's prepare took fork_lock */
static bool fork_io_locked;                /* fork_lock: and glibc's stdio list lock */
static bool fork_interrupted;              /* fork_lock: the forking thread was inside tamalloc */
/* Per thread: prepare handlers entered without taking fork_lock (a fork from a handler that
 * interrupted this thread's own fork handlers), whose parent and child handlers do nothing but the
 * child's rebuild. */
static __thread unsigned tls_fork_nested __attribute__((tls_model("initial-exec")));

static void fork_prepare(void) {
  bool inside = ta_tls_depth > 0;
  if (!ta_fork_lock(&fork_lock)) {
    tls_fork_nested++;
    return;
  }
  fork_whole = true;
  fork_interrupted = inside;
  /* A thread inside tamalloc must not wait for the list lock: its holder may be waiting (through a
   * stream's lock) for a lock the interrupted code holds. glibc's fork would take it next anyway. */
  fork_io_locked = !inside && !__libc_single_threaded && _IO_list_lock != NULL;
  if (fork_io_locked) _IO_list_lock();
  ta_prof_fork(TA_FORK_PREPARE);
  ta_arena_fork(TA_FORK_PREPARE);
  ta_seg_fork(TA_FORK_PREPARE);
  ta_large_fork(TA_FORK_PREPARE);
}

static void fork_parent(void) {
  if (tls_fork_nested) {
    tls_fork_nested--;
    return;
  }
  ta_large_fork(TA_FORK_PARENT);
  ta_seg_fork(TA_FORK_PARENT);
  ta_arena_fork(TA_FORK_PARENT);
  ta_prof_fork(TA_FORK_PARENT);
  if (fork_io_locked) _IO_list_unlock();
  fork_whole = false;
  pthread_mutex_unlock(&fork_lock);
}

static void fork_child(void) {
  /* glibc reset its stdio list lock already (multithreaded parent) or never took it. */
  ta_fork_phase_t phase = tls_fork_nested || !fork_whole ? TA_FORK_CHILD_LOST : TA_FORK_CHILD;
  bool keep_arena = phase == TA_FORK_CHILD && !fork_interrupted;
  tls_fork_nested = 0;
  fork_whole = false;
  ta_lock_t fresh = TA_LOCK_INIT;
  fork_lock = fresh;
  ta_large_fork(phase);
  ta_seg_fork(phase);
  ta_arena_fork_child(phase, keep_arena);
  ta_prof_fork(phase);
  ta_sched_fork_child();
  ta_tls_depth = 0;
  /* These handlers ran, so they are registered, even if the fork fell between pthread_atfork's
   * return and the initialiser's note of it: a child taking the initialisation over must not
   * register them a second time (fork_prepare would then wait for its own fork_lock). */
  atomic_fetch_or_explicit(&init_done, INIT_ATFORK, memory_order_relaxed);
}

static void init_step(int step, void (*run)(void)) {
  if (atomic_load_explicit(&init_done, memory_order_relaxed) & step) return;
  run();
  atomic_fetch_or_explicit(&init_done, step, memory_order_relaxed);
}

static void init_atfork(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

void ta_init_slow(void) {
  if (tls_initialising) return; /* this thread is the initialiser: pthread_atfork allocates */
  int mine = (int)getpid() << 2 | 1;
  for (;;) {
    int state = atomic_load_explicit(&ta_init_state, memory_order_acquire);
    if (state == 2) return;
    if (state == mine) { /* another thread of this process is initialising */
      sched_yield();
      continue;
    }
    /* Not started, or started by a process this one was forked from. */
    if (atomic_compare_exchange_weak_explicit(&ta_init_state, &state, mine, memory_order_acq_rel,
                                              memory_order_acquire))
      break;
  }
  tls_initialising = true;
  init_step(INIT_SECRET, ta_secret_init);
  ta_os_check_layout();
  ta_config_init();
  init_step(INIT_KEY, ta_arena_key_create);
  /* pthread_atfork may allocate: by now the secret and the key exist, and tls_initialising lets
   * that allocation through. */
  init_step(INIT_ATFORK, init_atfork);
  tls_initialising = false;
  atomic_store_explicit(&ta_init_state, 2, memory_order_release);
}
