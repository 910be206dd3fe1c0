/* The trim scheduler (src/sched.c): when memory goes back to the OS. It sits above the arenas and
 * the large-block path and is the only caller of the large-block cache trim; the layers below only
 * report work (ta_seg_sched_wanted, the arenas' pending purges) and never call it. */
#ifndef TA_SCHED_H
#define TA_SCHED_H

#include "src/common.h"

#pragma GCC visibility push(hidden)

/* There is memory the schedule should release (a retained large mapping): have the background
 * thread started at the next malloc slow path. */
void ta_sched_wake(void);
/* The router's malloc slow path saw ta_seg_sched_wanted set: start the background thread if it is
 * not running and may run. Only on a thread whose arena is bound, between two operations (no lock
 * held, no edit under way): pthread_create allocates, and those allocations must find the thread's
 * arena bound and its lists whole. Otherwise the request waits for the next slow path. */
void ta_sched_start_wanted(void);
/* One scheduled pass (what the background thread runs): pooled and shared arenas' remote frees and
 * empty pages collected, every arena's due units released, expired retained mappings unmapped. */
void ta_sched_pass(void);
/* malloc_trim: everything releasable, now. 1 if memory was released. */
int ta_sched_trim_now(size_t pad);
/* fork: the child has no background thread. */
void ta_sched_fork_child(void);

#pragma GCC visibility pop
#endif
