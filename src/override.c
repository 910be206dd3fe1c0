/* The standard names: thin forwards to the router, so that linking libtamalloc.a (or preloading
 * libtamalloc.so) replaces the system allocator for the whole process. Nothing else lives here. */
#include <limits.h>
#include <malloc.h>
#include <stdlib.h>

#include "src/router.h"
#include "src/stats.h"

#if TA_SECURE
/* The secure variant: every name below reaches the checking layer (src/secure.c), which calls the
 * router itself. */
#include "src/secure.h"
#define ta_route_malloc ta_secure_malloc
#define ta_route_free ta_secure_free
#define ta_router_calloc ta_secure_calloc
#define ta_router_realloc ta_secure_realloc
#define ta_router_reallocarray ta_secure_reallocarray
#define ta_router_aligned_alloc ta_secure_aligned_alloc
#define ta_router_posix_memalign ta_secure_posix_memalign
#define ta_router_memalign ta_secure_memalign
#define ta_router_valloc ta_secure_valloc
#define ta_router_pvalloc ta_secure_pvalloc
#define ta_router_usable_size ta_secure_usable_size
#define ta_router_free_sized ta_secure_free_sized
#define ta_router_free_aligned_sized ta_secure_free_aligned_sized
#define ta_router_trim ta_secure_trim
#endif

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
TA_EXPORT void malloc_stats(void) { ta_stats_malloc_stats(); }
TA_EXPORT struct mallinfo2 mallinfo2(void) { return ta_stats_mallinfo2(); }
TA_EXPORT int malloc_info(int options, FILE *out) { return ta_stats_malloc_info(options, out); }

/* glibc's exported internal names (libc.so.6, GLIBC_2.2.5), which some libraries call to reach "the
 * real malloc": without these, such a library would get glibc blocks that our free() aborts on, or
 * hand our blocks to glibc's free. glibc 2.36 exports no __posix_memalign (nor a public
 * __libc_reallocarray: it is GLIBC_PRIVATE), so there is nothing to define for them. */
TA_EXPORT void *__libc_malloc(size_t size) { return ta_route_malloc(size); }
TA_EXPORT void __libc_free(void *p) { ta_route_free(p); }
TA_EXPORT void *__libc_calloc(size_t count, size_t size) { return ta_router_calloc(count, size); }
TA_EXPORT void *__libc_realloc(void *p, size_t size) { return ta_router_realloc(p, size); }
TA_EXPORT void *__libc_memalign(size_t align, size_t size) { return ta_router_memalign(align, size); }
TA_EXPORT void *__libc_valloc(size_t size) { return ta_router_valloc(size); }
TA_EXPORT void *__libc_pvalloc(size_t size) { return ta_router_pvalloc(size); }

/* The old int-sized form: each count clamped to INT_MAX instead of wrapping. */
static int clamp_int(size_t v) { return v > INT_MAX ? INT_MAX : (int)v; }
TA_EXPORT struct mallinfo mallinfo(void) {
  struct mallinfo2 m = ta_stats_mallinfo2();
  struct mallinfo r = {
      .arena = clamp_int(m.arena), .ordblks = clamp_int(m.ordblks), .smblks = clamp_int(m.smblks),
      .hblks = clamp_int(m.hblks), .hblkhd = clamp_int(m.hblkhd), .usmblks = clamp_int(m.usmblks),
      .fsmblks = clamp_int(m.fsmblks), .uordblks = clamp_int(m.uordblks),
      .fordblks = clamp_int(m.fordblks), .keepcost = clamp_int(m.keepcost)};
  return r;
}
