/* A C program for tests/link/link_lines.sh: linked with cc and the whole archive, it runs with
 * tamalloc's malloc although the archive also holds the C++ operators. */
#include <stdio.h>
#include <stdlib.h>

#include "tamalloc.h"

int main(void) {
  void *volatile p = malloc(100);
  if (p == NULL || ta_owns(p) != 1) {
    fprintf(stderr, "link_c_only: malloc(100) = %p is not tamalloc's\n", p);
    return 1;
  }
  free(p);
  return 0;
}
