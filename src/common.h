/* Shared vocabulary of every tamalloc source file: branch hints, the lock type, assertion tiers and
 * the fatal-error entry points. The lock order is written in src/init.c, where the locks are listed. */
#ifndef TA_COMMON_H
#define TA_COMMON_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ThreadSanitizer builds (gcc defines __SANITIZE_THREAD__; clang answers __has_feature). */
#if defined(__SANITIZE_THREAD__)
#define TA_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TA_TSAN 1
#endif
#endif
#ifdef TA_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* Everything declared in tamalloc's internal headers is hidden: references to it compile to direct,
 * PC-relative accesses instead of going through the GOT. Public names say TA_API (tamalloc.h). */
#pragma GCC visibility push(hidden)

#ifndef TA_DEBUG
#define TA_DEBUG 0
#endif
#ifndef TA_HARDENING
#define TA_HARDENING 1
#endif

#define ta_likely(x) __builtin_expect(!!(x), 1)
#define ta_unlikely(x) __builtin_expect(!!(x), 0)
#define TA_NOINLINE __attribute__((noinline))
#define TA_INLINE static inline __attribute__((always_inline))
#define TA_COLD __attribute__((cold, noinline))

#define TA_KIB ((size_t)1 << 10)
#define TA_MIB ((size_t)1 << 20)

/* Every block tamalloc returns is aligned to this. */
#define TA_ALIGN ((size_t)16)
/* Requests above this are refused at once (ENOMEM), as glibc does: no object may exceed PTRDIFF_MAX. */
#define TA_MAX_REQUEST ((size_t)PTRDIFF_MAX - 2 * TA_MIB)

/* Assertion tiers (STYLE habit 5): always compiled, enabled by the constant. */
#define ta_assert_tier(tier, cond)                                                                   \
  do {                                                                                               \
    if (TA_DEBUG >= (tier) && ta_unlikely(!(cond))) ta_fatal_assert(__FILE__, __LINE__, #cond);     \
  } while (0)
#define ta_assert(cond) ta_assert_tier(1, cond)
#define ta_assert_internal(cond) ta_assert_tier(2, cond)

/* A lock: a glibc mutex (no allocation), error-checking so that a thread that takes a lock it
 * already holds is told so instead of deadlocking: that means tamalloc was re-entered from a signal
 * handler, and ta_lock says so.
 *
 * ta_tls_depth counts, per thread, the locks held and the allocator slow paths under way (the
 * ones that edit an arena's lists outside any lock). It is raised before a lock is taken and lowered
 * after it is released, so a signal handler that forks sees it nonzero whenever the interrupted
 * code might hold a lock or be halfway through an edit. The fork handlers (src/init.c) read it to
 * decide whether they may wait for locks and whether the child may keep the thread's arena. */
typedef pthread_mutex_t ta_lock_t;
#define TA_LOCK_INIT PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP
extern __thread unsigned ta_tls_depth __attribute__((tls_model("initial-exec")));
/* Only this thread and its signal handlers read the count: a signal fence (no instruction) keeps
 * the compiler from moving it across what it brackets. */
static inline void ta_busy_enter(void) {
  ta_tls_depth++;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
}
static inline void ta_busy_leave(void) {
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  /* Never below zero: a fork child re-zeroes the count while an interrupted call may still hold. */
  if (ta_tls_depth) ta_tls_depth--;
}
void ta_lock(ta_lock_t *l);
static inline void ta_unlock(ta_lock_t *l) {
  pthread_mutex_unlock(l);
  ta_busy_leave();
}

/* Fork handlers (src/init.c has the protocol). PREPARE takes a module's locks, PARENT releases those
 * it took; CHILD gives every lock a fresh state and tells each module, through ta_fork_one's result,
 * whether the data behind the lock is whole (the lock was taken before fork, so no thread was
 * halfway through it) or must be rebuilt. CHILD_LOST is CHILD when nothing was taken (a fork that
 * interrupted the fork handlers themselves). ta_fork_lock: true if it took the lock (src/error.c). */
typedef enum { TA_FORK_PREPARE, TA_FORK_PARENT, TA_FORK_CHILD, TA_FORK_CHILD_LOST } ta_fork_phase_t;
bool ta_fork_lock(ta_lock_t *l);
/* One lock in one phase. Returns, in the child phases, whether the data it guards is whole. */
static inline bool ta_fork_one(ta_lock_t *l, bool *taken, ta_fork_phase_t phase) {
  switch (phase) {
    case TA_FORK_PREPARE:
      *taken = ta_fork_lock(l);
      return *taken;
    case TA_FORK_PARENT:
      if (*taken) pthread_mutex_unlock(l);
      return true;
    default: {
      /* The child's thread has a new id, so an error-checking mutex taken before fork cannot be
       * unlocked by it: start afresh (nothing else runs in the child yet). */
#ifdef TA_TSAN
      /* ThreadSanitizer's child still sees the lock held by this thread (its prepare took it), and
       * the fresh state below is written behind its back: the next lock would be reported as a
       * double lock. Tell it of an unlock first. */
      if (*taken && phase == TA_FORK_CHILD) {
        __tsan_mutex_pre_unlock(l, 0);
        __tsan_mutex_post_unlock(l, 0);
      }
#endif
      ta_lock_t fresh = TA_LOCK_INIT;
      *l = fresh;
      if (phase == TA_FORK_CHILD_LOST) *taken = false;
      return *taken;
    }
  }
}

static inline size_t ta_align_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }
static inline bool ta_is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

/* error.c: fatal messages go out through write(2) and end in abort(); they never allocate. */
_Noreturn void ta_fatal_assert(const char *file, int line, const char *expr);
_Noreturn void ta_fatal_ptr(const char *func, const char *what, const void *p);
_Noreturn void ta_fatal(const char *msg);
void ta_warn(const char *msg1, const char *msg2, const char *msg3);

#pragma GCC visibility pop

#endif
