/* Seed behaviour 2: a request at the 128 KiB threshold gets an anonymous mapping of its own outside
 * [heap], which is gone from /proc/self/maps once the block is freed; a request one byte under it is
 * served from [heap]. Standard names; override builds only. */
#include <malloc.h>
#include <stdlib.h>

#include "maps.h"
#include "tamalloc.h"

#define THRESHOLD ((size_t)128 << 10)

static void describe(const char *what, const void *p, const map_t *m) {
  fprintf(stderr, "%s %p: mapping %#lx-%#lx %s inode %lu '%s'\n", what, p, (unsigned long)m->lo,
          (unsigned long)m->hi, m->perms, m->inode, m->name);
}

int main(void) {
  void *first = malloc(1); /* the main arena exists before anything is measured */
  seed_sink = first;

  unsigned char *under = malloc(THRESHOLD - 1);
  seed_sink = under;
  CHECK(under != NULL);
  heap_t h = heap_now();
  CHECK_MSG(in_heap(&h, under), "malloc(128 KiB - 1) = %p is not in [heap] %#lx-%#lx", (void *)under,
            (unsigned long)h.lo, (unsigned long)h.hi);
  CHECK_MSG(in_heap(&h, under + THRESHOLD - 2), "the end of malloc(128 KiB - 1) is not in [heap]");

  unsigned char *p = malloc(THRESHOLD);
  seed_sink = p;
  CHECK(p != NULL);
  CHECK(ta_owns(p) == 1);
  memset(p, 0xe1, THRESHOLD);
  h = heap_now();
  map_t m;
  CHECK_MSG(maps_find((uintptr_t)p, &m), "malloc(128 KiB) = %p is in no mapping", (void *)p);
  if (in_heap(&h, p) || !map_is_anon(&m)) describe("malloc(128 KiB)", p, &m);
  CHECK_MSG(!in_heap(&h, p), "malloc(128 KiB) = %p is in [heap]", (void *)p);
  CHECK_MSG(map_is_anon(&m), "malloc(128 KiB) is not in anonymous memory");
  CHECK_MSG(m.perms[0] == 'r' && m.perms[1] == 'w' && m.perms[3] == 'p', "mapping is %s", m.perms);
  /* The whole block and its 16-byte header are inside that one mapping. */
  CHECK(m.lo <= (uintptr_t)p - 16 && (uintptr_t)p + THRESHOLD <= m.hi);
  /* Its own: the block's pages are not shared with the heap or another block. */
  CHECK(m.hi - m.lo >= THRESHOLD + 16);
  map_t mu;
  CHECK(maps_find((uintptr_t)under, &mu) && (mu.lo != m.lo || mu.hi != m.hi));

  uintptr_t lo = m.lo, hi = m.hi;
  free(p);
  maps_snapshot();
  map_t after;
  int found = maps_find((uintptr_t)p, &after);
  if (found) describe("after free,", p, &after);
  CHECK_MSG(!found || after.lo != lo || after.hi != hi, "the mapping %#lx-%#lx of a freed 128 KiB block is still there",
            (unsigned long)lo, (unsigned long)hi);
  CHECK_MSG(!found, "the address %p of a freed 128 KiB block is still mapped", (void *)p);

  /* The heap block is untouched by all that. */
  memset(under, 0x3b, THRESHOLD - 1);
  free(under);
  free(first);
  return 0;
}
