/* Issue test 3: the brk heap's top shrinks in /proc/self/maps once its free tail passes the trim
 * threshold, and not before; M_TRIM_THRESHOLD moves that point. Run with TAMALLOC_DECAY_MS=0 so
 * every release happens at the free that makes it possible. Blocks of 60000 bytes are served by a
 * 64 KiB class whose spans are one 64 KiB unit each, so each free grows the free tail by one unit. */
#include "tamalloc.h"
#include "trim_util.h"

#define UNIT ((uintptr_t)64 * 1024)
#define N 40

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
  return x < y ? -1 : x > y;
}

int main(void) {
  CHECK(ta_mallopt(TA_OPT_TOP_PAD, 0) == 1);
  CHECK(ta_getopt(TA_OPT_DECAY_MS) == 0);
  void *b[N];
  for (int i = 0; i < N; i++) {
    b[i] = ta_malloc(60000);
    CHECK(b[i] != NULL);
    memset(b[i], 1, 60000);
  }
  qsort(b, N, sizeof b[0], cmp_ptr);
  uintptr_t hs = (uintptr_t)sbrk(0);
  /* The blocks are in [heap], the newest at its top. */
  CHECK((uintptr_t)b[N - 1] < hs);
  ta_trim(0); /* a baseline: nothing above the highest block, no current pages */
  uintptr_t top = heap_end();
  CHECK_MSG(top == (uintptr_t)b[N - 1] + UNIT, "heap end %#lx, top block %p", (unsigned long)top, b[N - 1]);

  /* Default threshold 128 KiB: two free units at the top stay, the third makes the heap shrink. */
  ta_free(b[N - 1]);
  CHECK(heap_end() == top);
  ta_free(b[N - 2]);
  CHECK(heap_end() == top);
  ta_free(b[N - 3]);
  CHECK_MSG(heap_end() == top - 3 * UNIT, "heap end %#lx, expected %#lx", (unsigned long)heap_end(),
            (unsigned long)(top - 3 * UNIT));

  /* Threshold 512 KiB: eight free units stay, the ninth shrinks. */
  CHECK(ta_mallopt(TA_OPT_TRIM_THRESHOLD, 512 * 1024) == 1);
  top = heap_end();
  for (int k = 1; k <= 8; k++) {
    ta_free(b[N - 3 - k]);
    CHECK_MSG(heap_end() == top, "after %d frees the heap moved", k);
  }
  ta_free(b[N - 12]);
  CHECK(heap_end() == top - 9 * UNIT);

  /* It grows back when needed. */
  void *again = ta_malloc(60000);
  CHECK(again != NULL);
  memset(again, 2, 60000);
  CHECK(heap_end() > top - 9 * UNIT);
  printf("brk top: shrank at the threshold and not before\n");
  return 0;
}
