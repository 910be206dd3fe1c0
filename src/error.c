/* Fatal errors and warnings. Messages are built with format.c into stack buffers and written with
 * the raw write system call (ta_out_fd_flush): this must work when the heap is corrupt, inside a
 * signal handler, before stdio exists, and in a thread with a pending cancel request (which glibc's
 * write() would act on, ending the thread instead of the abort or the warning). */
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "src/common.h"
#include "src/os.h" /* the platform assumptions */
#include "src/format.h"

#define TA_STDERR ((void *)(intptr_t)2)

static _Noreturn void die(ta_out_t *o) {
  ta_out_finish(o);
  abort();
}

void ta_lock(ta_lock_t *l) {
  ta_tls_depth++;
  if (ta_unlikely(pthread_mutex_lock(l) != 0))
    ta_fatal("a lock was taken twice by one thread: was malloc called from a signal handler?");
}

/* Take l for fork. Three cases:
 *  - the forking thread holds it itself: fork() from a signal handler that interrupted tamalloc.
 *    glibc's mutex records its owner's thread id (__data.__owner) right after taking the lock word,
 *    so a lock whose owner is this thread, or that stays taken with no owner recorded while this
 *    thread is inside tamalloc (interrupted between the two steps), is this thread's: leave it, the
 *    child re-initialises it and rebuilds what it guards;
 *  - another thread holds it and this thread holds no tamalloc lock and is in no slow path
 *    (ta_tls_depth == 0): wait. That holder waits for nothing this thread holds: every lock below it
 *    in the order (src/init.c) is free of this thread, no tamalloc lock is held across a call into
 *    stdio, and the stdio list lock glibc's fork wants next was taken first (src/init.c);
 *  - another thread holds it and this thread is inside tamalloc (a handler that interrupted it): that
 *    holder may be waiting for a lock the interrupted code holds, so wait only a bounded time, then
 *    leave it; the child rebuilds what it guards. */
/* glibc/x86-64 only (src/os.h refuses other platforms): the owner field is glibc's layout. */
_Static_assert(sizeof(((ta_lock_t *)0)->__data.__owner) == sizeof(int), "glibc's mutex owner field");
bool ta_fork_lock(ta_lock_t *l) {
  int self = (int)syscall(SYS_gettid);
  bool bounded = ta_tls_depth > 0;
  for (unsigned spins = 0;; spins++) {
    if (pthread_mutex_trylock(l) == 0) return true;
    int owner = __atomic_load_n(&l->__data.__owner, __ATOMIC_RELAXED);
    if (owner == self) return false;
    if (owner != 0 && !bounded) return pthread_mutex_lock(l) == 0;
    /* Taken with no owner recorded: most likely this thread's own, interrupted between the two
     * steps of its lock or unlock; another thread stays there only for a few instructions. Waiting
     * long for it would make every handler slower than a fast timer that keeps interrupting that
     * very unlock (seen: SIGALRM every 500 us, never letting the unlock finish). */
    if (bounded && spins > (owner == 0 ? 50u : 2000u)) return false;
    sched_yield();
  }
}

void ta_fatal_ptr(const char *func, const char *what, const void *p) {
  char buf[256];
  ta_out_t o = {.buf = buf, .cap = sizeof buf, .flush = ta_out_fd_flush, .ctx = TA_STDERR};
  ta_out_str(&o, "tamalloc: ");
  ta_out_str(&o, func);
  ta_out_str(&o, "(): ");
  ta_out_str(&o, what);
  ta_out_str(&o, " ");
  ta_out_hex(&o, (uintptr_t)p);
  ta_out_str(&o, "\n");
  die(&o);
}

void ta_fatal(const char *msg) {
  char buf[256];
  ta_out_t o = {.buf = buf, .cap = sizeof buf, .flush = ta_out_fd_flush, .ctx = TA_STDERR};
  ta_out_str(&o, "tamalloc: ");
  ta_out_str(&o, msg);
  ta_out_str(&o, "\n");
  die(&o);
}

void ta_fatal_assert(const char *file, int line, const char *expr) {
  char buf[512];
  ta_out_t o = {.buf = buf, .cap = sizeof buf, .flush = ta_out_fd_flush, .ctx = TA_STDERR};
  ta_out_str(&o, "tamalloc: internal check failed at ");
  ta_out_str(&o, file);
  ta_out_str(&o, ":");
  ta_out_i(&o, line);
  ta_out_str(&o, ": ");
  ta_out_str(&o, expr);
  ta_out_str(&o, "\n");
  die(&o);
}

void ta_warn(const char *msg1, const char *msg2, const char *msg3) {
  char buf[512];
  ta_out_t o = {.buf = buf, .cap = sizeof buf, .flush = ta_out_fd_flush, .ctx = TA_STDERR};
  ta_out_str(&o, "tamalloc: warning: ");
  ta_out_str(&o, msg1 ? msg1 : "");
  ta_out_str(&o, msg2 ? msg2 : "");
  ta_out_str(&o, msg3 ? msg3 : "");
  ta_out_str(&o, "\n");
  ta_out_finish(&o);
}
