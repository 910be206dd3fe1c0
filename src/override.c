/* The standard names: thin forwards to the router, so that linking libtamalloc.a (or preloading
 * libtamalloc.so) replaces the system allocator for the whole process. Nothing else lives here. */
#include <malloc.h>
#include <stdlib.h>

#include "router.h"

#define TA_EXPORT __attribute__((visibility("default")))

TA_EXPORT void *malloc(size_t size) { return ta_route_malloc(size); }
TA_EXPORT void free(void *p) { ta_route_free(p); }
TA_EXPORT void *calloc(size_t count, size_t size) { return ta_router_calloc(count, size); }
TA_EXPORT void *realloc(void *p, size_t size) { return ta_router_realloc(p, size); }
TA_EXPORT void *reallocarray(void *p, size_t count, size_t size) {
  return ta_router_reallocarray(p, count, size);
}
TA_EXPORT void *aligned_alloc(size_t align, size_t size) { return ta_router_aligned_alloc(align, size); }
TA_EXPORT int posix_memalign(void **out, size_t align, size_t size) {
  return ta_router_posix_memalign(out, align, size);
}
TA_EXPORT void *memalign(size_t align, size_t size) { return ta_router_memalign(align, size); }
TA_EXPORT void *valloc(size_t size) { return ta_router_valloc(size); }
TA_EXPORT void *pvalloc(size_t size) { return ta_router_pvalloc(size); }
TA_EXPORT size_t malloc_usable_size(void *p) { return ta_router_usable_size(p); }
TA_EXPORT void free_sized(void *p, size_t size) { ta_router_free_sized(p, size); }
TA_EXPORT void free_aligned_sized(void *p, size_t align, size_t size) {
  ta_router_free_aligned_sized(p, align, size);
}
TA_EXPORT int malloc_trim(size_t pad) { return ta_router_trim(pad); }
TA_EXPORT int mallopt(int param, int value) { return ta_router_mallopt_glibc(param, value); }
