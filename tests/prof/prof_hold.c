/* A program whose live heap is 64 MiB from hold_big and 8 MiB from hold_small, everything else it
 * allocates freed (churn): run_prof.py profiles it and reads the profile with google-pprof.
 *   prof_hold exit      the profile comes from TAMALLOC_PROF_DUMP at exit
 *   prof_hold mid PATH  ta_prof_dump(PATH) while the blocks are held, then everything is freed
 *   prof_hold shlib     16 MiB more held by shlib_hold, a function of a shared library */
#include <stdlib.h>
#include <string.h>

#include "tamalloc.h"
#include "test.h"

#define BLOCK 4096
#define BIG_BLOCKS (64 * 1024 * 1024 / BLOCK)
#define SMALL_BLOCKS (8 * 1024 * 1024 / BLOCK)

void shlib_hold(void **out, int n, size_t size);

static void *big[BIG_BLOCKS];
static void *small[SMALL_BLOCKS];
static void *from_lib[4096];

__attribute__((noinline)) void hold_big(void) {
  for (int i = 0; i < BIG_BLOCKS; i++) CHECK((big[i] = malloc(BLOCK)) != NULL);
}

__attribute__((noinline)) void hold_small(void) {
  for (int i = 0; i < SMALL_BLOCKS; i++) CHECK((small[i] = malloc(BLOCK)) != NULL);
}

/* Allocations of every size, all freed: 256 MiB in total, none of it live at the end. */
__attribute__((noinline)) void churn(void) {
  test_rng_t r = {42};
  for (int i = 0; i < 300000; i++) {
    size_t n = 16 + test_rng_next(&r) % 1777;
    char *volatile p = malloc(n);
    CHECK(p != NULL);
    p[0] = 1;
    free(p);
  }
}

int main(int argc, char **argv) {
  CHECK(argc >= 2);
  churn();
  hold_big();
  churn();
  hold_small();
  if (strcmp(argv[1], "shlib") == 0) shlib_hold(from_lib, 4096, BLOCK);
  churn();
  if (strcmp(argv[1], "mid") == 0) {
    CHECK(argc == 3);
    CHECK(ta_prof_dump(argv[2]) == 0);
    for (int i = 0; i < BIG_BLOCKS; i++) free(big[i]);
    for (int i = 0; i < SMALL_BLOCKS; i++) free(small[i]);
  }
  return 0;
}
