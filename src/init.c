/* Process start-up (on the first allocation, whenever that is: before main, inside the dynamic
 * loader's callbacks, inside pthread_create), the thread-exit hook, and fork.
 *
 * Lock order, outermost first; a thread holding one may take only those below it:
 *   0. shared_lock (arenas/arena.c)   the arena shared by threads beyond TAMALLOC_ARENA_MAX; its
 *                                     holder allocates, so every lock below may follow it
 *   1. pool_lock   (arenas/arena.c)   the arena pool and the list of all arenas
 *   2. meta_lock   (arenas/arena.c)   the bump allocator for arena structs
 *   3. trim_lock   (one per arena)    one trim pass at a time over the arena; held across the pass's
 *                                     syscalls (no allocation path takes it)
 *   3b. seg_lock   (one per arena)    an arena's segment list and unit masks; a thread holds at
 *                                     most one, except the fork handler, which takes them all in
 *                                     the order of the list of all arenas
 *   4. brk_lock    (arenas/segment.c) the program break; never taken while a seg_lock is held
 *   5. large_lock  (src/large.c)      the registry of large blocks
 * The fork handlers take all of them in this order before fork and release them after it, in the
 * parent and in the child, so the child of a multithreaded program can allocate. */
#include "init.h"

#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "segment.h"
#include "trim.h"

uintptr_t ta_secret;
pthread_key_t ta_thread_key;
_Atomic int ta_init_state;
static __thread bool tls_initialising __attribute__((tls_model("initial-exec")));

static void fork_prepare(void) {
  ta_arena_fork(TA_FORK_PREPARE);
  ta_seg_fork(TA_FORK_PREPARE);
  ta_large_fork(TA_FORK_PREPARE);
}

static void fork_parent(void) {
  ta_large_fork(TA_FORK_PARENT);
  ta_seg_fork(TA_FORK_PARENT);
  ta_arena_fork(TA_FORK_PARENT);
}

static void fork_child(void) {
  ta_large_fork(TA_FORK_CHILD);
  ta_seg_fork(TA_FORK_CHILD);
  ta_arena_fork(TA_FORK_CHILD);
  ta_trim_fork_child();
}

static uintptr_t make_secret(void) {
  uint64_t v = 0;
  if (syscall(SYS_getrandom, &v, sizeof v, 1 /* GRND_NONBLOCK */) != (long)sizeof v) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    v = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&v ^
        ((uint64_t)getpid() << 32);
  }
  /* Bit 63 set: the encoding of NULL (the secret itself) is never a user-space address, so a word
   * of zeros never decodes to a plausible link. */
  return (uintptr_t)(v | ((uint64_t)1 << 63));
}

void ta_init_slow(void) {
  int expect = 0;
  if (atomic_compare_exchange_strong_explicit(&ta_init_state, &expect, 1, memory_order_acq_rel,
                                              memory_order_acquire)) {
    tls_initialising = true;
    ta_secret = make_secret();
    ta_config_init();
    pthread_key_create(&ta_thread_key, ta_arena_thread_exit);
    /* pthread_atfork may allocate: by now the secret and the key exist, and tls_initialising lets
     * that allocation through. */
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    tls_initialising = false;
    atomic_store_explicit(&ta_init_state, 2, memory_order_release);
    return;
  }
  if (tls_initialising) return;
  while (atomic_load_explicit(&ta_init_state, memory_order_acquire) != 2) sched_yield();
}
