/* Seed behaviour 6: someone else's mapping right after the break. The page after sbrk(0) is mapped
 * before the main arena needs to grow; then the arena must grow anyway (64 MiB of small blocks) and
 * 10 MB blocks are allocated: everything succeeds and keeps its contents, the foreign page is never
 * written, and the break does not move (brk fails there, so the arena continues with mmap).
 * Its own executable: the layout must be fresh. Standard names; override builds only. */
#include <stdlib.h>
#include <sys/mman.h>

#include "../api/blocks.h"
#include "maps.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define SMALL_TOTAL ((size_t)64 << 20)
#define N_BIG 8
#define BIG ((size_t)10 * 1000 * 1000)

static void *blocks[(SMALL_TOTAL / 16) + 1];
static size_t block_size[(SMALL_TOTAL / 16) + 1];

int main(void) {
  void *first = malloc(1); /* the main arena and its heap exist */
  seed_sink = first;
  CHECK(ta_owns(first) == 1);

  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  uintptr_t brk0 = (uintptr_t)sbrk(0);
  uintptr_t at = (brk0 + page - 1) & ~(uintptr_t)(page - 1);
  unsigned char *fence = mmap((void *)at, page, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  CHECK_MSG(fence != MAP_FAILED, "cannot map the page after the break at %#lx", (unsigned long)at);
  CHECK_MSG((uintptr_t)fence == at, "the kernel placed the page at %p, not %#lx (no MAP_FIXED_NOREPLACE?)",
            (void *)fence, (unsigned long)at);
  for (size_t i = 0; i < page; i++) fence[i] = (unsigned char)(i * 7 + 1);

  test_rng_t r = {0xb4cull};
  size_t n = 0, total = 0;
  while (total < SMALL_TOTAL) {
    size_t sz = tb_log_uniform(&r, 4, 13); /* 16 B .. 8 KiB */
    blocks[n] = malloc(sz);
    CHECK_MSG(blocks[n] != NULL, "malloc(%zu) failed after %zu bytes with the break blocked", sz, total);
    block_size[n] = sz;
    tb_fill(blocks[n], sz, n, SIZE_MAX);
    CHECK_MSG((uintptr_t)blocks[n] + sz <= at || (uintptr_t)blocks[n] >= at + page,
              "block %p (%zu bytes) overlaps the foreign page at %#lx", blocks[n], sz, (unsigned long)at);
    total += sz;
    n++;
  }
  unsigned char *big[N_BIG];
  for (size_t i = 0; i < N_BIG; i++) {
    big[i] = malloc(BIG);
    CHECK(big[i] != NULL);
    CHECK((uintptr_t)big[i] + BIG <= at || (uintptr_t)big[i] >= at + page);
    tb_fill(big[i], BIG, 1000000 + i, TB_MIB);
  }

  for (size_t i = 0; i < n; i++) TB_CHECK(blocks[i], block_size[i], i, SIZE_MAX);
  for (size_t i = 0; i < N_BIG; i++) TB_CHECK(big[i], BIG, 1000000 + i, TB_MIB);
  for (size_t i = 0; i < page; i++)
    CHECK_MSG(fence[i] == (unsigned char)(i * 7 + 1), "the foreign page was written at offset %zu", i);
  CHECK_MSG((uintptr_t)sbrk(0) == brk0, "the break moved from %#lx to %p", (unsigned long)brk0, sbrk(0));

  /* Keep going: free half, allocate again, everything still right. */
  for (size_t i = 0; i < n; i += 2) free(blocks[i]);
  for (size_t i = 0; i < n; i += 2) {
    blocks[i] = malloc(block_size[i]);
    CHECK(blocks[i] != NULL);
    tb_fill(blocks[i], block_size[i], i, SIZE_MAX);
  }
  for (size_t i = 0; i < n; i++) {
    TB_CHECK(blocks[i], block_size[i], i, SIZE_MAX);
    free(blocks[i]);
  }
  for (size_t i = 0; i < N_BIG; i++) free(big[i]);
  CHECK((uintptr_t)sbrk(0) == brk0);
  maps_snapshot();
  map_t m;
  CHECK_MSG(maps_find(at, &m), "the foreign page is no longer mapped");
  for (size_t i = 0; i < page; i++) CHECK(fence[i] == (unsigned char)(i * 7 + 1));
  CHECK(munmap(fence, page) == 0);
  free(first);
  return 0;
}
