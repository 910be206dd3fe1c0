/* glibc's exported internal names are tamalloc's too: a library that allocates with __libc_malloc
 * (and the rest, libc_names_lib.c) gets tamalloc blocks that free() takes, and its __libc_free takes
 * blocks from malloc(). Built twice: linked with the archive (ta_owns called directly), and linked
 * without tamalloc and run under LD_PRELOAD=libtamalloc.so (TA_TEST_PRELOAD: ta_owns found at run
 * time). Small and large blocks, freed on the thread that made them, so ta_owns is exact. */
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libc_names_lib.h"
#include "test.h"

#if TA_TEST_PRELOAD
typedef int (*owns_fn)(const void *);
static owns_fn owns;
#else
#include "tamalloc.h"
#define owns ta_owns
#endif

#define PAGE ((size_t)4096)
#define BIG ((size_t)1 << 20) /* above the mmap threshold: the large path */

/* p, from `what`, is a live tamalloc block of at least n writable bytes; free() releases it. */
static void check_then_free(void *p, size_t n, const char *what) {
  CHECK_MSG(p != NULL, "%s returned NULL", what);
  CHECK_MSG(owns(p) == 1, "%s = %p is not a tamalloc block", what, p);
  memset(p, 0x3c, n);
  free(p);
  CHECK_MSG(owns(p) == 0, "free() of the block from %s left it live", what);
}

/* A block from malloc (size n) given to the library's __libc_free. */
static void check_libc_free(size_t n) {
  void *volatile p = malloc(n);
  CHECK(p != NULL && owns(p) == 1);
  lib_libc_free(p);
  CHECK_MSG(owns(p) == 0, "__libc_free of a %zu-byte block from malloc left it live", n);
}

int main(void) {
#if TA_TEST_PRELOAD
  owns = (owns_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "ta_owns");
  CHECK_MSG(owns != NULL, "ta_owns is not in the process: LD_PRELOAD=%s",
            getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "(unset)");
#endif
  static const size_t sizes[] = {1, 100, 5000, BIG};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    check_then_free(lib_libc_malloc(n), n, "__libc_malloc");

    unsigned char *c = lib_libc_calloc(n, 1);
    CHECK(c != NULL);
    for (size_t k = 0; k < n; k++) CHECK_MSG(c[k] == 0, "__libc_calloc(%zu, 1): byte %zu is not zero", n, k);
    check_then_free(c, n, "__libc_calloc");

    /* __libc_realloc of a block from malloc, growing it, and of NULL. */
    unsigned char *r = malloc(16);
    CHECK(r != NULL);
    memset(r, 0x5a, 16);
    r = lib_libc_realloc(r, n + 16);
    CHECK(r != NULL);
    for (size_t k = 0; k < 16; k++) CHECK_MSG(r[k] == 0x5a, "__libc_realloc lost byte %zu", k);
    check_then_free(r, n + 16, "__libc_realloc");
    check_then_free(lib_libc_realloc(NULL, n), n, "__libc_realloc(NULL)");

    void *m = lib_libc_memalign(256, n);
    CHECK_ALIGNED(m, 256);
    check_then_free(m, n, "__libc_memalign");
    void *v = lib_libc_valloc(n);
    CHECK_ALIGNED(v, PAGE);
    check_then_free(v, n, "__libc_valloc");
    void *pv = lib_libc_pvalloc(n);
    CHECK_ALIGNED(pv, PAGE);
    check_then_free(pv, (n + PAGE - 1) / PAGE * PAGE, "__libc_pvalloc");

    check_libc_free(n);
  }
  lib_libc_free(NULL); /* as free(NULL) */
  return 0;
}
