/* Statistics: counters read from any thread at any moment. */
#include "arena.h"
#include "large.h"
#include "tamalloc.h"

void ta_stats_get(ta_stats_t *out) {
  size_t brk = 0;
  out->arenas = ta_arena_count();
  out->segments = ta_seg_count(&brk);
  out->segments_brk = brk;
  out->segment_bytes = out->segments * TA_SEGMENT_SIZE;
  ta_large_totals(&out->large_blocks, &out->large_bytes);
}
