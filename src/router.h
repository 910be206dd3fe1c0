/* The router: every public entry point, deciding between the calling thread's arena and the mmap
 * path (src/router.c). The standard names in src/override.c forward to these. */
#ifndef TA_ROUTER_H
#define TA_ROUTER_H

#include "arenas/arena.h"
#include "src/common.h"
#include "src/config.h"

#pragma GCC visibility push(hidden)

/* The two fast paths, inline so that both the ta_* names and the standard names in override.c run
 * them without an extra call. */
void *ta_router_malloc_big(size_t size);
/* The fast path missed: start-up on a thread's first call, then the arena's slow path. */
void *ta_router_malloc_miss(ta_arena_t *arena, size_t cls);
void ta_router_free_slow(void *p);
_Noreturn void ta_router_bad_pointer(const char *func, const void *p);

TA_INLINE void *ta_route_malloc(size_t size) {
  if (ta_likely(size <= ta_tls.small_max)) return ta_arena_alloc_or(ta_tls_arena, ta_class_small(size), ta_router_malloc_miss);
  return ta_router_malloc_big(size);
}

TA_INLINE void ta_route_free(void *p) {
  if (ta_likely(ta_segmap_has(p))) {
    ta_page_t *page = ta_arena_page_checked(p);
    if (ta_unlikely(page == NULL)) ta_router_bad_pointer("free", p);
    ta_arena_free(page, p);
    return;
  }
  ta_router_free_slow(p);
}

void *ta_router_malloc(size_t size);
void *ta_router_calloc(size_t count, size_t size);
void *ta_router_realloc(void *p, size_t size);
void *ta_router_reallocarray(void *p, size_t count, size_t size);
void ta_router_free(void *p);
void ta_router_free_sized(void *p, size_t size);
void ta_router_free_aligned_sized(void *p, size_t align, size_t size);
/* Frees p if `size` (and `align`, 0 for none) is one its block could have been made for (with
 * `at_most`: if it is no larger than the block), else aborts naming `func` and p. */
void ta_router_free_checked(const char *func, void *p, size_t align, size_t size, bool at_most);
void *ta_router_aligned_alloc(size_t align, size_t size);
int ta_router_posix_memalign(void **out, size_t align, size_t size);
/* posix_memalign's contract around alloc(align, size, caller), for the router and the secure
 * variant alike: EINVAL for a bad alignment before anything is tried; ENOMEM (also in errno, as
 * glibc) when alloc fails; on success errno as it was. */
int ta_posix_memalign_by(void **out, size_t align, size_t size, void *(*alloc)(size_t, size_t, void *),
                         void *caller);
/* pvalloc's size: rounded up to whole pages (0 counts as 1), or 0 with errno ENOMEM past the
 * largest request. */
size_t ta_pvalloc_size(size_t size);
void *ta_router_memalign(size_t align, size_t size);
void *ta_router_valloc(size_t size);
void *ta_router_pvalloc(size_t size);
size_t ta_router_usable_size(const void *p);
int ta_router_owns(const void *p);
int ta_router_trim(size_t pad);
int ta_router_mallopt(int option, long value);
int ta_router_mallopt_glibc(int param, int value);
/* Bytes realloc has copied from old blocks into new ones, process-wide (a counter for tests: the
 * copying bound of a growing buffer). */
size_t ta_router_realloc_copied(void);


#pragma GCC visibility pop
#endif
