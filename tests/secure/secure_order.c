/* Allocation order within a page. The secure variant carves a page's blocks in a random order
 * (arenas/page.c, seeded by src/secure.c at start-up): 64 consecutive malloc(64) must not come in
 * address order. The default build keeps address order (other tests and the locality of a fresh
 * page rely on it). Counted, not timed: of the 63 steps between consecutive blocks, how many go up.
 * Blocks of one carve in a uniformly random order go up on about half the steps (mean 31.5, standard
 * deviation about 2.3 over 63 steps, a carve boundary or two changing that by at most as many steps);
 * 48 or more is seven deviations out, less likely than 1e-11. In address order every step goes up
 * but where a carve ends and the next begins elsewhere: at least 56 of 63 here.
 * Built twice: TA_TEST_SECURE 1 against libtamalloc-secure, 0 against libtamalloc. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "tamalloc.h"

enum { N = 64 };

int main(void) {
  char *b[N];
  for (int i = 0; i < N; i++) {
    b[i] = ta_malloc(64);
    if (b[i] == NULL) {
      fprintf(stderr, "FAIL: ta_malloc(64) returned NULL\n");
      return 1;
    }
  }
  int up = 0;
  for (int i = 0; i + 1 < N; i++) up += (uintptr_t)b[i + 1] > (uintptr_t)b[i];
  for (int i = 0; i < N; i++) ta_free(b[i]);
#if TA_TEST_SECURE
  int ok = up < 48;
  printf("%s secure: %d of %d steps go up (want fewer than 48: not address order)\n", ok ? "ok  " : "FAIL", up, N - 1);
#else
  int ok = up >= 56;
  printf("%s default: %d of %d steps go up (want at least 56: address order)\n", ok ? "ok  " : "FAIL", up, N - 1);
#endif
  return ok ? 0 : 1;
}
