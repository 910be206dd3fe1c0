/* Calls glibc's internal allocator names (contract in libc_names_lib.h). glibc 2.36 exports these
 * seven (nm -D libc.so.6, version GLIBC_2.2.5) and declares none of them. */
#include "libc_names_lib.h"

void *__libc_malloc(size_t size);
void *__libc_calloc(size_t count, size_t size);
void *__libc_realloc(void *p, size_t size);
void __libc_free(void *p);
void *__libc_memalign(size_t align, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);

void *lib_libc_malloc(size_t size) { return __libc_malloc(size); }
void *lib_libc_calloc(size_t count, size_t size) { return __libc_calloc(count, size); }
void *lib_libc_realloc(void *p, size_t size) { return __libc_realloc(p, size); }
void lib_libc_free(void *p) { __libc_free(p); }
void *lib_libc_memalign(size_t align, size_t size) { return __libc_memalign(align, size); }
void *lib_libc_valloc(size_t size) { return __libc_valloc(size); }
void *lib_libc_pvalloc(size_t size) { return __libc_pvalloc(size); }
