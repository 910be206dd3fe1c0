/* Shared vocabulary of every tamalloc source file: branch hints, the lock type, assertion tiers and
 * the fatal-error entry points. The lock order is written in src/init.c, where the locks are listed. */
#ifndef TA_COMMON_H
#define TA_COMMON_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
 * handler, and ta_lock says so. The fork handlers must survive one legitimate form of it, fork()
 * from a handler that interrupted tamalloc (perhaps halfway through taking a lock): they take each
 * lock with trylock for a bounded time and leave one they cannot get, which the child
 * re-initialises. */
typedef pthread_mutex_t ta_lock_t;
#define TA_LOCK_INIT PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP
void ta_lock(ta_lock_t *l);
#define ta_unlock(l) pthread_mutex_unlock(l)

/* Fork handlers. ta_fork_lock: true if it took the lock (src/error.c). */
typedef enum { TA_FORK_PREPARE, TA_FORK_PARENT, TA_FORK_CHILD } ta_fork_phase_t;
bool ta_fork_lock(ta_lock_t *l);
static inline void ta_fork_unlock(ta_lock_t *l, bool taken, ta_fork_phase_t phase) {
  if (phase == TA_FORK_CHILD) {
    /* The child's thread has a new id, so an error-checking mutex taken before fork cannot be
     * unlocked by it: start afresh (nothing else runs in the child yet). */
    ta_lock_t fresh = TA_LOCK_INIT;
    *l = fresh;
  } else if (taken) {
    pthread_mutex_unlock(l);
  }
}
/* One call per phase for all of a module's locks, in the documented order (src/init.c). */
static inline void ta_fork_one(ta_lock_t *l, bool *taken, ta_fork_phase_t phase) {
  if (phase == TA_FORK_PREPARE)
    *taken = ta_fork_lock(l);
  else
    ta_fork_unlock(l, *taken, phase);
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
