/* The archive linked the traditional way (link_with, no --whole-archive): a program that calls malloc
 * itself pulls the override in, and its blocks are tamalloc's. */
#include <stdlib.h>
#include <string.h>

#include "tamalloc.h"
#include "test.h"

int main(void) {
  void *volatile p = malloc(10);
  CHECK(p != NULL);
  CHECK_MSG(ta_owns(p) == 1, "malloc(10) = %p is not tamalloc's", p);
  free(p);
  p = calloc(4, 1000);
  CHECK(p != NULL && ta_owns(p) == 1);
  p = realloc(p, 200000);
  CHECK(p != NULL && ta_owns(p) == 1);
  free(p);
  char *s = strdup("libc's own allocation");
  CHECK_MSG(s != NULL && ta_owns(s) == 1, "strdup = %p is not tamalloc's", (void *)s);
  free(s);
  return 0;
}
