/* The trim policy, driven by a clock of the test's own: which dirty units are due, and how far the
 * brk top shrinks. Pure functions, so every case is exact. */
#include "test.h"
#include "arenas/trim.h"

int main(void) {
  uint32_t since[TA_UNITS] = {0};
  /* Units 1..3 dirty since t=1000, unit 5 since t=1400. */
  uint64_t dirty = 0xE | (1u << 5);
  for (int u = 1; u <= 3; u++) since[u] = 1000;
  since[5] = 1400;
  CHECK(ta_trim_due(dirty, since, 1500, 1000) == 0);          /* nothing old enough yet */
  CHECK(ta_trim_due(dirty, since, 1999, 1000) == 0);
  CHECK(ta_trim_due(dirty, since, 2000, 1000) == 0xE);        /* the first three are */
  CHECK(ta_trim_due(dirty, since, 2400, 1000) == dirty);      /* then all */
  CHECK(ta_trim_due(dirty, since, 1000, 0) == dirty);         /* decay 0: at once */
  CHECK(ta_trim_due(dirty, since, 99999, -1) == 0);           /* decay < 0: never */
  CHECK(ta_trim_due(0, since, 99999, 0) == 0);
  /* The clock wraps: differences still count. */
  since[1] = 0xFFFFFF00u;
  CHECK(ta_trim_due(0x2, since, 0x100, 0x150) == 0x2);
  CHECK(ta_trim_due(0x2, since, 0x10, 0x150) == 0);

  /* brk top: 64 units mapped, used up to unit 10 (used_end 10): tail 54 units = 3.4 MiB. */
  size_t unit = TA_UNIT_SIZE;
  CHECK(ta_trim_brk_keep(64, 10, true, 128 * 1024, 0) == 10);
  CHECK(ta_trim_brk_keep(64, 10, true, 128 * 1024, 128 * 1024) == 12);   /* keeps the pad */
  CHECK(ta_trim_brk_keep(64, 10, false, 128 * 1024, 0) == 64);           /* tail not due yet */
  /* Exactly at the threshold: not yet; one unit past it: shrink. */
  CHECK(ta_trim_brk_keep(64, 62, true, 2 * unit, 0) == 64);
  CHECK(ta_trim_brk_keep(64, 61, true, 2 * unit, 0) == 61);
  /* A bigger threshold moves the point. */
  CHECK(ta_trim_brk_keep(64, 40, true, 32 * unit, 0) == 64);
  CHECK(ta_trim_brk_keep(64, 31, true, 32 * unit, 0) == 31);
  /* A pad larger than the tail keeps everything. */
  CHECK(ta_trim_brk_keep(64, 10, true, 0, 100 * unit) == 64);
  printf("trim policy: all cases passed\n");
  return 0;
}
