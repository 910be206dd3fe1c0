/* Seed behaviour 5: free needs only the pointer. A freed small block is reused at once for a request of
 * the same size class (40 and 48 bytes share the 48-byte class); a large block carries its mapping
 * size in the 16-byte header before it, a page multiple covering the block and the header, and
 * malloc_usable_size reads it. Standard names; override builds only. */
#include <malloc.h>
#include <stdlib.h>

#include "maps.h"
#include "tamalloc.h"

#define MIB ((size_t)1 << 20)

int main(void) {
  void *first = malloc(1);
  seed_sink = first;

  void *p = malloc(40);
  CHECK(p != NULL);
  memset(p, 0x40, 40);
  free(p);
  void *q = malloc(40);
  seed_sink = q;
  CHECK_MSG(q == p, "malloc(40) after free(malloc(40)) = %p, not the freed %p", q, p);
  free(q);
  void *r = malloc(48);
  seed_sink = r;
  CHECK_MSG(r == p, "malloc(48) after freeing a 40-byte block = %p, not the freed %p", r, p);
  free(r);
  void *s = malloc(33);
  seed_sink = s;
  CHECK_MSG(s == p, "malloc(33) after freeing a 48-byte-class block = %p, not the freed %p", s, p);
  free(s);

  /* The same for several classes, and free(p) of many blocks of one class in a row. */
  static const size_t classes[] = {16, 64, 128, 160, 1024, 5000, 40000};
  for (size_t c = 0; c < sizeof classes / sizeof classes[0]; c++) {
    void *a = malloc(classes[c]);
    CHECK(a != NULL);
    free(a);
    void *b = malloc(classes[c]);
    seed_sink = b;
    CHECK_MSG(b == a, "malloc(%zu) did not reuse the block just freed (%p, then %p)", classes[c], a, b);
    free(b);
  }

  long page = sysconf(_SC_PAGESIZE);
  static const size_t large[] = {128 << 10, MIB, MIB + 1, 3 * MIB + 12345, 64 * MIB};
  for (size_t i = 0; i < sizeof large / sizeof large[0]; i++) {
    size_t n = large[i];
    unsigned char *big = malloc(n);
    seed_sink = big;
    CHECK(big != NULL);
    CHECK_ALIGNED(big, 16);
    size_t map_size;
    memcpy(&map_size, big - 16, sizeof map_size);
    CHECK_MSG(map_size >= n + 16, "malloc(%zu): header says the mapping is %zu bytes", n, map_size);
    CHECK_MSG(map_size % (size_t)page == 0, "malloc(%zu): mapping size %zu is not a page multiple", n, map_size);
    size_t usable = malloc_usable_size(big);
    CHECK_MSG(usable >= n && usable <= map_size - 16, "malloc_usable_size(malloc(%zu)) = %zu (mapping %zu)", n,
              usable, map_size);
    maps_snapshot();
    map_t m;
    CHECK(maps_find((uintptr_t)big - 16, &m));
    CHECK_MSG(m.hi - m.lo >= map_size, "malloc(%zu): mapping %#lx-%#lx smaller than the header's %zu", n,
              (unsigned long)m.lo, (unsigned long)m.hi, map_size);
    memset(big, 0x11, usable);
    free(big);
  }
  free(first);
  return 0;
}
