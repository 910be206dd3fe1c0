/* The trim policy (pure functions of counters and a clock) and the mechanism that carries it out
 * (arenas/trim.c). */
#ifndef TA_TRIM_H
#define TA_TRIM_H

#include "arena.h"

#pragma GCC visibility push(hidden)

/* Milliseconds on a monotonic clock, wrapping; only differences are used. */
uint32_t ta_trim_clock(void);

/* Policy: of a segment's dirty units, those due for release at `now`: dirty for decay_ms or longer
 * (all of them when decay_ms == 0, none when decay_ms < 0). */
uint64_t ta_trim_due(uint64_t dirty, const uint32_t since[TA_UNITS], uint32_t now, long decay_ms);

/* Policy: how many units the brk top segment keeps mapped. `mapped` units are mapped now, units
 * from `used_end` up are free, and `tail_due` says whether all of those are due. The heap shrinks
 * only when its free tail exceeds trim_threshold bytes, and then keeps top_pad bytes of it. */
unsigned ta_trim_brk_keep(unsigned mapped, unsigned used_end, bool tail_due, size_t trim_threshold,
                          size_t top_pad);

/* Mechanism: release an arena's free units as the policy says (force: every free unit now, and
 * top_pad for the brk top). Any thread may call it. Returns the bytes given back. */
size_t ta_trim_arena(ta_arena_t *arena, uint32_t now, bool force, size_t top_pad);

/* Owner (or pool holder) only: current pages stop being current, empty pages go back to their
 * segments; with `deep`, the free OS pages inside live pages are released too. Returns bytes
 * released by the deep part. */
size_t ta_trim_pages(ta_arena_t *arena, bool deep);

/* Called by the owner after it gave a span back: purges on schedule, starts the background
 * thread when it is first needed. */
void ta_trim_after_span_free(ta_arena_t *arena, uint32_t now);

/* There is memory the schedule should release: have the background thread started (at the next
 * malloc slow path, ta_trim_start_wanted). */
void ta_trim_wake(void);
extern _Atomic bool ta_trim_bg_wanted;
void ta_trim_start_wanted(void);

/* One scheduled pass over every arena (what the background thread runs). */
void ta_trim_run_pass(void);

/* malloc_trim: everything releasable, now. 1 if memory was released. */
int ta_trim_now(size_t pad);

/* fork: the child has no background thread. */
void ta_trim_fork_child(void);

/* Counters, for stats. */
void ta_trim_totals(size_t *purged_bytes, size_t *purge_calls);

#pragma GCC visibility pop
#endif
