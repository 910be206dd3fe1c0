/* The trim policy (contract in trim.h): pure functions, no state, no system call.
 *
 * Free units are stamped when they become free; they are due once they have been free for the decay
 * time (TAMALLOC_DECAY_MS, 1 s by default), so a burst of free-then-malloc reuses them without a
 * system call. The brk heap's top shrinks once its free tail passes the trim threshold, keeping the
 * top pad. */
#include "arenas/trim.h"

uint64_t ta_trim_due(uint64_t dirty, const uint32_t since[TA_UNITS], uint32_t now, long decay_ms) {
  if (decay_ms < 0) return 0;
  if (decay_ms == 0) return dirty;
  uint64_t due = 0;
  for (uint64_t m = dirty; m; m &= m - 1) {
    unsigned u = (unsigned)__builtin_ctzll(m);
    if ((uint32_t)(now - since[u]) >= (uint64_t)decay_ms) due |= (uint64_t)1 << u;
  }
  return due;
}

unsigned ta_trim_brk_keep(unsigned mapped, unsigned used_end, bool tail_due, size_t trim_threshold,
                          size_t top_pad) {
  if (!tail_due || used_end >= mapped) return mapped;
  if ((size_t)(mapped - used_end) * TA_UNIT_SIZE <= trim_threshold) return mapped;
  size_t pad_units = (top_pad + TA_UNIT_SIZE - 1) / TA_UNIT_SIZE;
  size_t keep = used_end + pad_units;
  return keep < mapped ? (unsigned)keep : mapped;
}
