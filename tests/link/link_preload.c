/* tamalloc as an LD_PRELOAD shared object: this program is linked without tamalloc (plain glibc); run
 * under LD_PRELOAD=libtamalloc.so it finds ta_owns at run time and checks that its malloc, calloc,
 * realloc, the aligned functions and libc's strdup are served by tamalloc. */
#include <dlfcn.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

typedef int (*owns_fn)(const void *);
typedef size_t (*usable_fn)(const void *);

int main(void) {
  owns_fn owns = (owns_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "ta_owns");
  usable_fn usable = (usable_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "ta_usable_size");
  CHECK_MSG(owns != NULL && usable != NULL, "ta_owns is not in the process: LD_PRELOAD=%s",
            getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "(unset)");
  void *volatile p = malloc(10);
  CHECK_MSG(p != NULL && owns(p) == 1, "malloc(10) = %p is not tamalloc's", p);
  CHECK(malloc_usable_size(p) == usable(p));
  free(p);
  p = calloc(100, 100);
  CHECK(p != NULL && owns(p) == 1);
  p = realloc(p, (size_t)1 << 20);
  CHECK(p != NULL && owns(p) == 1);
  free(p);
  p = aligned_alloc(4096, 100);
  CHECK(p != NULL && owns(p) == 1);
  free(p);
  void *m = NULL;
  CHECK(posix_memalign(&m, 64, 1000) == 0 && owns(m) == 1);
  free(m);
  char *s = strdup("duplicated inside libc");
  CHECK(s != NULL && owns(s) == 1);
  free(s);
  return 0;
}
