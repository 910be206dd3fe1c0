/* The shared library of prof_hold's "shlib" run: its allocations must be named in the profile. */
#include <stdlib.h>

__attribute__((noinline, visibility("default"))) void shlib_hold(void **out, int n, size_t size) {
  for (int i = 0; i < n; i++) out[i] = malloc(size);
}
