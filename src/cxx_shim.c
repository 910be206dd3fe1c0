/* The C half of the C++ front end: operator new and delete (src/cxx_new.cc) reach the router's
 * inline fast paths through these, one direct call each (src/cxx.h says why they are in C). */
#include "src/cxx.h"

#include "src/router.h"

/* The failure call is a tail call, so a bad_alloc thrown there unwinds no frame of this file. */
void *ta_cxx_new(size_t size) {
  void *p = ta_route_malloc(size);
  if (ta_likely(p != NULL)) return p;
  return ta_cxx_new_failed(size, TA_ALIGN, false);
}

void *ta_cxx_new_nothrow(size_t size) {
  void *p = ta_route_malloc(size);
  if (ta_likely(p != NULL)) return p;
  return ta_cxx_new_failed(size, TA_ALIGN, true);
}

void *ta_cxx_alloc_aligned(size_t size, size_t align) {
  if (align <= TA_ALIGN) return ta_route_malloc(size); /* every block is aligned this much */
  return ta_router_aligned_alloc(align, size);
}

void ta_cxx_free(void *p) { ta_route_free(p); }

/* The size of a sized delete may be smaller than the block's, never larger: delete (not delete[])
 * of a new[]'d array of a trivially destructible type passes the element's size, and that common
 * mismatch must still free the block. A size beyond the block is a lie nothing explains. */
void ta_cxx_free_sized(void *p, size_t size) {
  if (ta_likely(ta_segmap_has(p))) {
    ta_page_t *page = ta_arena_page_checked(p);
    if (ta_unlikely(page == NULL)) ta_router_bad_pointer("operator delete", p);
    if (ta_unlikely(size > page->block_size)) ta_fatal_ptr("operator delete", "size does not match the block", p);
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

void ta_cxx_out_of_memory(void) {
  ta_fatal("operator new: out of memory, and no libstdc++ in the program to throw std::bad_alloc");
}
