/* Seed behaviour 6b: someone else moves the break. After the main arena has its heap, the program
 * takes 64 KiB with sbrk itself; the arena must then leave the break alone (it is not where the arena
 * left it) and continue with mmap segments: the program's sbrk memory is never written, no block lands
 * in it, and the break stays where the program put it. Its own executable. Override builds only. */
#include <stdlib.h>

#include "../api/blocks.h"
#include "maps.h"

#define MINE ((size_t)64 << 10)
#define SMALL_TOTAL ((size_t)64 << 20)

static void *blocks[(SMALL_TOTAL / 16) + 1];
static size_t block_size[(SMALL_TOTAL / 16) + 1];

int main(void) {
  void *first = malloc(1);
  seed_sink = first;
  CHECK(ta_owns(first) == 1);

  unsigned char *mine = sbrk((intptr_t)MINE);
  CHECK_MSG(mine != (void *)-1, "sbrk(64 KiB) failed");
  uintptr_t brk1 = (uintptr_t)sbrk(0);
  CHECK(brk1 == (uintptr_t)mine + MINE);
  for (size_t i = 0; i < MINE; i++) mine[i] = (unsigned char)(i * 13 + 5);

  test_rng_t r = {0x5b4cull};
  size_t n = 0, total = 0;
  while (total < SMALL_TOTAL) {
    size_t sz = tb_log_uniform(&r, 4, 13);
    blocks[n] = malloc(sz);
    CHECK_MSG(blocks[n] != NULL, "malloc(%zu) failed after %zu bytes", sz, total);
    block_size[n] = sz;
    CHECK_MSG((uintptr_t)blocks[n] + sz <= (uintptr_t)mine || (uintptr_t)blocks[n] >= (uintptr_t)mine + MINE,
              "block %p (%zu bytes) lies in the program's own sbrk memory %p", blocks[n], sz, (void *)mine);
    tb_fill(blocks[n], sz, n, SIZE_MAX);
    total += sz;
    n++;
  }
  void *big = malloc((size_t)10 << 20);
  CHECK(big != NULL);
  memset(big, 0x99, (size_t)10 << 20);

  for (size_t i = 0; i < MINE; i++)
    CHECK_MSG(mine[i] == (unsigned char)(i * 13 + 5), "the program's sbrk memory was written at offset %zu", i);
  CHECK_MSG((uintptr_t)sbrk(0) == brk1, "the break moved from %#lx to %p", (unsigned long)brk1, sbrk(0));
  for (size_t i = 0; i < n; i++) {
    TB_CHECK(blocks[i], block_size[i], i, SIZE_MAX);
    free(blocks[i]);
  }
  free(big);
  /* Freeing everything must not shrink the break under the program's memory either. */
  CHECK_MSG((uintptr_t)sbrk(0) == brk1, "after free the break is %p, not %#lx", sbrk(0), (unsigned long)brk1);
  for (size_t i = 0; i < MINE; i++) CHECK(mine[i] == (unsigned char)(i * 13 + 5));
  free(first);
  return 0;
}
