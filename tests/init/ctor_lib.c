/* A shared library whose constructor allocates: it runs before the program's own constructors, so
 * this is tamalloc's first call in the process, from inside the dynamic loader's init sequence. */
#include <stdint.h>
#include <string.h>

#include "init_names.h"

__attribute__((visibility("default"))) int ctor_lib_result = -1; /* 0 once the constructor passed */
__attribute__((visibility("default"))) char *ctor_lib_block;     /* kept for the program to free */

__attribute__((constructor)) static void ctor_lib_init(void) {
  int rc = 0;
  char *a = TN(malloc)(100), *b = TN(malloc)((size_t)1 << 20), *c = TN(calloc)(10, 10);
  if (a == NULL || b == NULL || c == NULL) rc = 1;
  for (int i = 0; rc == 0 && i < 100; i++)
    if (c[i] != 0) rc = 2;
  if (rc == 0) {
    memset(a, 'a', 100);
    memset(b, 'b', (size_t)1 << 20);
    a = TN(realloc)(a, 5000);
    if (a == NULL || a[99] != 'a') rc = 3;
  }
  TN(free)(b);
  TN(free)(c);
  ctor_lib_block = a;
  ctor_lib_result = rc;
}
