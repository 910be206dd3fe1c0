/* What statistics may read of an arena, and how: through these functions only (arenas/census.c).
 * They read; they never change allocator state (no collection, no retirement, no purge). */
#ifndef TA_CENSUS_H
#define TA_CENSUS_H

#include "arenas/arena.h"

#pragma GCC visibility push(hidden)

typedef struct ta_arena_census_s {
  unsigned id;
  uint8_t state;                 /* TA_ARENA_BOUND, ... */
  size_t live_blocks, live_bytes;
  size_t cls_live[TA_CLASSES];   /* live blocks per class */
  size_t cls_free[TA_CLASSES];   /* carved blocks not live per class */
  size_t keepcost;               /* free tail of the brk top */
} ta_arena_census_t;

/* One segment as it was under seg_lock. */
typedef struct ta_seg_census_s {
  uintptr_t addr;
  uint64_t free_units, dirty_units;
  uint8_t mapped, origin;
} ta_seg_census_t;

/* Segments the arena has now (0 for a fork child's tainted arena): room to reserve for the next
 * call. */
size_t ta_arena_census_segments(ta_arena_t *arena);
/* Fills *out and records up to cap of the arena's segments in segs; returns how many it recorded.
 * Live blocks come from the pages' own counters. An arena without an owner (pooled, or the shared
 * arena) is read as its owner for the moment, under the lock that keeps it unowned: the blocks other
 * threads freed into it, waiting on its remote lists, are counted free rather than live. A bound
 * arena's are live until its owner collects them. Reads race with owners by design (see
 * src/stats.c); the figures are exact once the threads are quiet. */
size_t ta_arena_census(ta_arena_t *arena, ta_arena_census_t *out, ta_seg_census_t *segs, size_t cap);

#pragma GCC visibility pop

#endif
