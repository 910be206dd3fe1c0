/* The standard names are tamalloc's in a program linked with the archive (link_whole, the way
 * tamalloc_dep links it): for each of them, the address the program calls is not libc's, and what it
 * does is tamalloc's (ta_owns of every block, frees that accept tamalloc's blocks, usable sizes and
 * options that agree with the ta_* view). Also libc's own allocations (strdup, asprintf, getline). */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tamalloc.h"
#include "test.h"

/* C23 names that glibc 2.36 does not declare yet. */
void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t alignment, size_t size);

typedef void (*fn_t)(void);

/* The program's definition of `name` is not the next one in the search order (libc's). Every name is
 * tried before the test fails, so one report lists all the names that are missing. */
static int names_missing;
#define CHECK_NOT_LIBC(name)                                                                         \
  do {                                                                                               \
    void *next_ = dlsym(RTLD_NEXT, #name);                                                           \
    void *ours_ = (void *)(uintptr_t)(fn_t)(name);                                                   \
    if (ours_ == next_) {                                                                            \
      fprintf(stderr, "%s:%d: " #name " resolves to the next definition (%p), not tamalloc's\n",     \
              __FILE__, __LINE__, next_);                                                            \
      names_missing++;                                                                               \
    }                                                                                                \
  } while (0)

#define CHECK_OWNED(p, what) CHECK_MSG((p) != NULL && ta_owns(p) == 1, "%s: %p is not tamalloc's", what, (void *)(p))

int main(void) {
  CHECK_NOT_LIBC(malloc);
  CHECK_NOT_LIBC(free);
  CHECK_NOT_LIBC(calloc);
  CHECK_NOT_LIBC(realloc);
  CHECK_NOT_LIBC(reallocarray);
  CHECK_NOT_LIBC(aligned_alloc);
  CHECK_NOT_LIBC(posix_memalign);
  CHECK_NOT_LIBC(memalign);
  CHECK_NOT_LIBC(valloc);
  CHECK_NOT_LIBC(pvalloc);
  CHECK_NOT_LIBC(malloc_usable_size);
  CHECK_NOT_LIBC(malloc_trim);
  CHECK_NOT_LIBC(mallopt);
  CHECK_NOT_LIBC(mallinfo2);
  CHECK_NOT_LIBC(free_sized);
  CHECK_NOT_LIBC(free_aligned_sized);

  void *volatile p = malloc(10);
  CHECK_OWNED(p, "malloc(10)");
  CHECK(malloc_usable_size(p) == ta_usable_size(p));
  free(p);

  p = calloc(10, 10);
  CHECK_OWNED(p, "calloc");
  p = realloc(p, 1000);
  CHECK_OWNED(p, "realloc");
  p = reallocarray(p, 100, 100);
  CHECK_OWNED(p, "reallocarray");
  CHECK(realloc(p, 0) == NULL);

  p = aligned_alloc(256, 1000);
  CHECK_OWNED(p, "aligned_alloc");
  free_aligned_sized(p, 256, 1000);

  void *m = NULL;
  CHECK(posix_memalign(&m, 4096, 5000) == 0);
  CHECK_OWNED(m, "posix_memalign");
  free(m);
  p = memalign(64, 100);
  CHECK_OWNED(p, "memalign");
  free(p);
  p = valloc(100);
  CHECK_OWNED(p, "valloc");
  free(p);
  p = pvalloc(100);
  CHECK_OWNED(p, "pvalloc");
  CHECK(malloc_usable_size(p) == ta_usable_size(p));
  free(p);
  p = malloc(300);
  CHECK_OWNED(p, "malloc(300)");
  free_sized(p, 300);
  p = malloc((size_t)1 << 20);
  CHECK_OWNED(p, "malloc(1 MiB)");
  CHECK(malloc_usable_size(p) == ta_usable_size(p));
  free(p);

  /* Errors come from tamalloc too. */
  errno = 0;
  volatile size_t huge = SIZE_MAX - 8;
  CHECK(malloc(huge) == NULL && errno == ENOMEM);

  /* mallopt forwards, translated to tamalloc's options. */
  long thr = ta_getopt(TA_OPT_MMAP_THRESHOLD);
  CHECK(mallopt(M_MMAP_THRESHOLD, 256 * 1024) == 1);
  CHECK_MSG(ta_getopt(TA_OPT_MMAP_THRESHOLD) == 256 * 1024, "mallopt(M_MMAP_THRESHOLD) gave ta_getopt %ld",
            ta_getopt(TA_OPT_MMAP_THRESHOLD));
  CHECK(mallopt(M_MMAP_THRESHOLD, (int)thr) == 1);
  CHECK(ta_getopt(TA_OPT_MMAP_THRESHOLD) == thr);
  long trim = ta_getopt(TA_OPT_TRIM_THRESHOLD);
  CHECK(mallopt(M_TRIM_THRESHOLD, 1 << 20) == 1);
  CHECK(ta_getopt(TA_OPT_TRIM_THRESHOLD) == 1 << 20);
  CHECK(mallopt(M_TRIM_THRESHOLD, (int)trim) == 1);
  long pad = ta_getopt(TA_OPT_TOP_PAD);
  CHECK(mallopt(M_TOP_PAD, 64 << 10) == 1);
  CHECK(ta_getopt(TA_OPT_TOP_PAD) == 64 << 10);
  CHECK(mallopt(M_TOP_PAD, (int)pad) == 1);
  long amax = ta_getopt(TA_OPT_ARENA_MAX);
  CHECK(mallopt(M_ARENA_MAX, 3) == 1);
  CHECK(ta_getopt(TA_OPT_ARENA_MAX) == 3);
  CHECK(mallopt(M_ARENA_MAX, (int)amax) == 1);

  int t = malloc_trim(0);
  CHECK(t == 0 || t == 1);
  struct mallinfo2 mi = mallinfo2();
  (void)mi;

  /* libc's allocations inside libc come to tamalloc as well. */
  char *s = strdup("a string duplicated by libc");
  CHECK_OWNED(s, "strdup");
  free(s);
  s = strndup("another string", 7);
  CHECK_OWNED(s, "strndup");
  free(s);
  s = NULL;
  CHECK(asprintf(&s, "%d and %s", 42, "more") > 0);
  CHECK_OWNED(s, "asprintf");
  free(s);
  FILE *f = fopen("/proc/self/maps", "r");
  CHECK(f != NULL);
  char *line = NULL;
  size_t cap = 0;
  CHECK(getline(&line, &cap, f) > 0);
  CHECK_OWNED(line, "getline");
  free(line);
  fclose(f);
  CHECK_MSG(names_missing == 0, "%d standard names are not tamalloc's (listed above)", names_missing);
  return 0;
}
