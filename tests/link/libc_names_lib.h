/* A shared library that allocates and frees through glibc's exported internal names (__libc_malloc,
 * __libc_free, ...), as some libraries do to reach "the real malloc". Built without tamalloc; where
 * those names resolve is decided when the library is loaded. tests/link/libc_names_lib.c. */
#ifndef TA_LIBC_NAMES_LIB_H
#define TA_LIBC_NAMES_LIB_H

#include <stddef.h>

void *lib_libc_malloc(size_t size);
void *lib_libc_calloc(size_t count, size_t size);
void *lib_libc_realloc(void *p, size_t size);
void lib_libc_free(void *p);
void *lib_libc_memalign(size_t align, size_t size);
void *lib_libc_valloc(size_t size);
void *lib_libc_pvalloc(size_t size);

#endif
