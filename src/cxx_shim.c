/* The C half of the C++ front end: operator new and delete (src/cxx_new.cc) reach the router's
 * inline fast paths through these, one direct call each (src/cxx.h says why they are in C). */
#include "src/cxx.h"

#include "arenas/sizeclass.h"
#include "src/router.h"

#if TA_SECURE
/* The secure variant: new and delete go through its checks (src/secure.c) like malloc and free, so
 * C++ blocks get the canary, the trailer and the quarantine too. Its usable size is the size asked
 * for, which a sized delete may undercut (see below) but not exceed. */
#include "src/secure.h"

void *ta_cxx_new(size_t size) {
  void *p = ta_secure_malloc(size);
  return ta_likely(p != NULL) ? p : ta_cxx_new_failed(size, TA_ALIGN, false);
}

void *ta_cxx_new_nothrow(size_t size) {
  void *p = ta_secure_malloc(size);
  return ta_likely(p != NULL) ? p : ta_cxx_new_failed(size, TA_ALIGN, true);
}

void *ta_cxx_alloc_aligned(size_t size, size_t align) {
  return align <= TA_ALIGN ? ta_secure_malloc(size) : ta_secure_aligned_alloc(align, size);
}

void ta_cxx_free(void *p) { ta_secure_free(p); }

static void free_at_most(void *p, size_t size) {
  if (p == NULL) return;
  if (size > ta_secure_usable_size(p)) ta_fatal_ptr("operator delete", "size does not match the block", p);
  ta_secure_free(p);
}

void ta_cxx_free_sized(void *p, size_t size) { free_at_most(p, size); }

void ta_cxx_free_aligned(void *p, size_t align, size_t size) {
  if (ta_unlikely(!ta_is_pow2(align))) ta_fatal_ptr("operator delete", "alignment is not a power of two, block", p);
  if (ta_unlikely((uintptr_t)p % align != 0)) ta_fatal_ptr("operator delete", "alignment does not match the block", p);
  if (size == 0)
    ta_secure_free(p);
  else
    free_at_most(p, size);
}

#else
/* operator new is ta_route_malloc, the profiler's gate (ta_tls.small_max) included, with its own
 * miss functions, which turn NULL into the new_handler loop: the fast path then keeps no size alive
 * across the call, exactly as malloc's (a retry asks for the class's size, which lands in the same
 * class). Failures are tail calls, so a bad_alloc thrown there unwinds no frame of this file. */
__attribute__((noinline)) static void *new_miss(ta_arena_t *arena, size_t cls) {
  void *p = ta_router_malloc_miss(arena, cls);
  if (ta_likely(p != NULL)) return p;
  return ta_cxx_new_failed(ta_class_size((unsigned)cls), TA_ALIGN, false);
}

__attribute__((noinline)) static void *new_nothrow_miss(ta_arena_t *arena, size_t cls) {
  void *p = ta_router_malloc_miss(arena, cls);
  if (ta_likely(p != NULL)) return p;
  return ta_cxx_new_failed(ta_class_size((unsigned)cls), TA_ALIGN, true);
}

__attribute__((noinline)) static void *new_big(size_t size, bool nothrow) {
  void *p = ta_router_malloc_big(size);
  if (ta_likely(p != NULL)) return p;
  return ta_cxx_new_failed(size, TA_ALIGN, nothrow);
}

void *ta_cxx_new(size_t size) {
  if (ta_likely(size <= ta_tls.small_max)) return ta_arena_alloc_or(ta_tls_arena, ta_class_small(size), new_miss);
  return new_big(size, false);
}

void *ta_cxx_new_nothrow(size_t size) {
  if (ta_likely(size <= ta_tls.small_max)) return ta_arena_alloc_or(ta_tls_arena, ta_class_small(size), new_nothrow_miss);
  return new_big(size, true);
}

void *ta_cxx_alloc_aligned(size_t size, size_t align) {
  if (align <= TA_ALIGN) return ta_route_malloc(size); /* every block is aligned this much */
  return ta_router_aligned_alloc(align, size);
}

void ta_cxx_free(void *p) { ta_route_free(p); }

/* The size of a sized delete may be smaller than the block's, never larger: delete (not delete[])
 * of a new[]'d array of a trivially destructible type passes the element's size, and that common
 * mismatch must still free the block. A size beyond the block is a lie nothing explains. */
/* Not a block, or a size beyond it: one cold call site, so the fast path sets up no frame. */
__attribute__((noinline, cold, noreturn)) static void free_sized_bad(const ta_page_t *page, void *p) {
  if (page == NULL) ta_router_bad_pointer("operator delete", p);
  ta_fatal_ptr("operator delete", "size does not match the block", p);
}

void ta_cxx_free_sized(void *p, size_t size) {
  if (ta_likely(ta_segmap_has(p))) {
    ta_page_t *page = ta_arena_page_checked(p);
    if (ta_unlikely(page == NULL || size > page->block_size)) free_sized_bad(page, p);
    ta_arena_free(page, p);
    return;
  }
  ta_router_free_checked("operator delete", p, 0, size, true); /* NULL, or a mapping: its header's check */
}

void ta_cxx_free_aligned(void *p, size_t align, size_t size) {
  if (ta_unlikely(!ta_is_pow2(align))) ta_fatal_ptr("operator delete", "alignment is not a power of two, block", p);
  if (ta_unlikely((uintptr_t)p % align != 0)) ta_fatal_ptr("operator delete", "alignment does not match the block", p);
  if (size == 0)
    ta_route_free(p);
  else
    ta_router_free_checked("operator delete", p, align, size, true);
}

#endif

void ta_cxx_out_of_memory(void) {
  ta_fatal("operator new: out of memory, and no libstdc++ in the program to throw std::bad_alloc");
}
