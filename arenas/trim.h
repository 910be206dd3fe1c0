/* The trim policy: pure functions of unit masks, time stamps and a clock the caller passes in, so
 * tests drive them with a clock of their own (arenas/trim.c). The mechanism that carries the policy
 * out is ta_seg_trim (arenas/segment.c); the scheduler that decides when it runs is src/sched.c. */
#ifndef TA_TRIM_H
#define TA_TRIM_H

#include "arenas/segment.h"
#include "src/os.h"

#pragma GCC visibility push(hidden)

/* Milliseconds on a monotonic clock, wrapping; only differences are used. */
static inline uint32_t ta_trim_clock(void) { return ta_os_clock_ms(); }

/* Policy: of a segment's dirty units, those due for release at `now`: dirty for decay_ms or longer
 * (all of them when decay_ms == 0, none when decay_ms < 0). */
uint64_t ta_trim_due(uint64_t dirty, const uint32_t since[TA_UNITS], uint32_t now, long decay_ms);

/* Policy: how many units the brk top segment keeps mapped. `mapped` units are mapped now, units
 * from `used_end` up are free, and `tail_due` says whether all of those are due. The heap shrinks
 * only when its free tail exceeds trim_threshold bytes, and then keeps top_pad bytes of it. */
unsigned ta_trim_brk_keep(unsigned mapped, unsigned used_end, bool tail_due, size_t trim_threshold,
                          size_t top_pad);

/* Policy: whether an owner-side pass is due at `now`, the last one having run at `last` (half a
 * decay period apart; at once with decay 0; never with decay < 0). */
static inline bool ta_trim_owner_due(uint32_t now, uint32_t last, long decay_ms) {
  return decay_ms == 0 || (decay_ms > 0 && (uint32_t)(now - last) >= (uint64_t)decay_ms / 2);
}

#pragma GCC visibility pop
#endif
