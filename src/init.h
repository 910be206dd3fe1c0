/* Process and thread start-up: the secret, the thread-exit key, fork handlers (src/init.c). */
#ifndef TA_INIT_H
#define TA_INIT_H

#include <stdatomic.h>

#include "common.h"

#pragma GCC visibility push(hidden)

extern pthread_key_t ta_thread_key;
extern _Atomic int ta_init_state; /* 0 not started, 1 running, 2 done */

void ta_init_slow(void);
TA_INLINE void ta_init(void) {
  if (ta_likely(atomic_load_explicit(&ta_init_state, memory_order_acquire) == 2)) return;
  ta_init_slow();
}

/* Locks of the other modules, for the fork handlers (each takes its module's locks in order). */
void ta_arena_fork(ta_fork_phase_t phase);
/* The child phase: `keep_arena` false orphans the forking thread's own arena too. */
void ta_arena_fork_child(ta_fork_phase_t phase, bool keep_arena);
void ta_arena_thread_exit(void *arena);
void ta_seg_fork(ta_fork_phase_t phase);
void ta_large_fork(ta_fork_phase_t phase);
void ta_config_init(void);

#pragma GCC visibility pop

#endif
