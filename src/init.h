/* Process and thread start-up: the secret, the thread-exit key, fork handlers (src/init.c). */
#ifndef TA_INIT_H
#define TA_INIT_H

#include <stdatomic.h>

#include "arenas/arena.h" /* ta_thread_key */
#include "src/common.h"

#pragma GCC visibility push(hidden)

extern _Atomic int ta_init_state; /* 2 once done (src/init.c) */

void ta_init_slow(void);
TA_INLINE void ta_init(void) {
  if (ta_likely(atomic_load_explicit(&ta_init_state, memory_order_acquire) == 2)) return;
  ta_init_slow();
}


#pragma GCC visibility pop

#endif
