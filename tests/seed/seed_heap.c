/* Seed behaviour 1: the main thread's small blocks come from the brk heap. The first malloc(1) lies in
 * [heap], which is a pool of at least 128 KiB (grown by at least that much if malloc had to grow it);
 * free leaves [heap] as it was; the next malloc(1) reuses the cached memory; and a burst of small
 * blocks lies in [heap] too (grown with brk, not mapped elsewhere). Standard names; override builds only. */
#include <malloc.h>
#include <stdlib.h>

#include "maps.h"
#include "tamalloc.h"

#define POOL_MIN ((uintptr_t)128 << 10)

int main(void) {
  /* libc may have allocated before main (through our malloc): nothing below assumes a fresh heap. */
  heap_t before = heap_now();
  void *p = malloc(1);
  seed_sink = p;
  heap_t h1 = heap_now();
  CHECK(p != NULL);
  CHECK(ta_owns(p) == 1);
  CHECK_MSG(in_heap(&h1, p), "malloc(1) = %p is not in [heap] (%s %#lx-%#lx)", p,
            h1.exists ? "exists" : "absent", (unsigned long)h1.lo, (unsigned long)h1.hi);
  CHECK_MSG(h1.hi - h1.lo >= POOL_MIN, "[heap] is only %lu bytes", (unsigned long)(h1.hi - h1.lo));
  if (!before.exists) {
    CHECK(h1.hi - h1.lo >= POOL_MIN);
  } else if (h1.hi - h1.lo != before.hi - before.lo) {
    CHECK_MSG((h1.hi - h1.lo) - (before.hi - before.lo) >= POOL_MIN,
              "malloc(1) grew [heap] by only %lu bytes", (unsigned long)((h1.hi - h1.lo) - (before.hi - before.lo)));
  }
  /* The break is the end of [heap]: it is brk memory, not a mapping that happens to be named so. */
  uintptr_t brk_now = (uintptr_t)sbrk(0);
  CHECK_MSG(brk_now > h1.lo && brk_now <= h1.hi && h1.hi - brk_now < 4096,
            "sbrk(0) = %#lx, [heap] %#lx-%#lx", (unsigned long)brk_now, (unsigned long)h1.lo,
            (unsigned long)h1.hi);

  free(p);
  heap_t h2 = heap_now();
  CHECK_MSG(h2.exists && h2.lo == h1.lo && h2.hi == h1.hi, "free(malloc(1)) changed [heap]: %#lx-%#lx -> %#lx-%#lx",
            (unsigned long)h1.lo, (unsigned long)h1.hi, (unsigned long)h2.lo, (unsigned long)h2.hi);

  void *q = malloc(1);
  seed_sink = q;
  heap_t h3 = heap_now();
  CHECK(q != NULL);
  CHECK_MSG(q == p || (in_heap(&h3, q) && h3.lo == h2.lo && h3.hi == h2.hi),
            "second malloc(1) = %p (first %p) did not reuse the cached heap", q, p);
  free(q);

  /* A burst of small blocks (16 MiB) stays in [heap], which must have grown to hold them. */
  enum { N = 16384 };
  static void *blocks[N];
  heap_t h4 = heap_now();
  for (size_t i = 0; i < N; i++) {
    blocks[i] = malloc(1000);
    CHECK(blocks[i] != NULL);
    memset(blocks[i], (int)(i & 0xff), 1000);
  }
  heap_t h5 = heap_now();
  for (size_t i = 0; i < N; i++)
    CHECK_MSG(in_heap(&h5, blocks[i]), "small block #%zu = %p is outside [heap] %#lx-%#lx", i, blocks[i],
              (unsigned long)h5.lo, (unsigned long)h5.hi);
  CHECK_MSG(h5.hi - h5.lo >= ((uintptr_t)16 << 20), "[heap] (%lu bytes, was %lu) cannot hold 16 MB of blocks",
            (unsigned long)(h5.hi - h5.lo), (unsigned long)(h4.hi - h4.lo));
  for (size_t i = 0; i < N; i++) {
    const unsigned char *b = blocks[i];
    CHECK(b[0] == (i & 0xff) && b[999] == (i & 0xff));
    free(blocks[i]);
  }
  return 0;
}
