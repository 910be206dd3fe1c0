// The C++ front end: every replaceable global operator new and delete of C++17 (plain, array,
// nothrow, sized, std::align_val_t and their combinations), served by the router's fast paths
// (src/cxx.h). Failure follows [new.delete]: the new_handler loop, then std::bad_alloc; the nothrow
// forms return null instead. libstdc++ is referenced weakly only (below), so a C program linked
// with the whole archive needs no libstdc++; README "C++" says what a C++ program needs.
#include <cstddef>
#include <new>

#include "src/cxx.h"

// libstdc++, referenced weakly: its new_handler, its bad_alloc thrower, and the runtime a try/catch
// and a noexcept function's terminate call on (the personality routine, the catch entry points).
// In a program without libstdc++ all are null: no handler can have been installed (set_new_handler
// is libstdc++'s), nothing throws, so none is called, and a throwing operator new that runs out of
// memory aborts with a message instead (ta_cxx_out_of_memory).
namespace std {
new_handler get_new_handler() noexcept __attribute__((weak));
[[noreturn]] void __throw_bad_alloc() __attribute__((weak));
}  // namespace std
__asm__(".weak __gxx_personality_v0\n"
        ".weak __cxa_begin_catch\n"
        ".weak __cxa_end_catch\n"
        ".weak _ZSt9terminatev\n"); /* clang's terminate helper calls it */

// The first try failed: run the new_handler and try again while one is installed ([new.delete.single]
// p4). Then bad_alloc, or null for the nothrow forms, which also turn a handler's throw into null
// (p7: they return null wherever the throwing form would throw).
extern "C" void *ta_cxx_new_failed(std::size_t size, std::size_t align, bool nothrow) {
  for (;;) {
    std::new_handler handler = &std::get_new_handler != nullptr ? std::get_new_handler() : nullptr;
    if (handler == nullptr) {
      if (nothrow) return nullptr;
      if (&std::__throw_bad_alloc != nullptr) std::__throw_bad_alloc();
      ta_cxx_out_of_memory();
    }
    if (!nothrow) {
      handler();
    } else {
      try {
        handler();
      } catch (...) {
        return nullptr;
      }
    }
    void *p = ta_cxx_alloc_aligned(size, align);
    if (p != nullptr) return p;
  }
}

namespace {

// An alignment that is not a power of two is a precondition the caller broke ([new.delete.single]
// p1); it fails as an allocation would (bad_alloc or null, as libstdc++ does), with no handler run,
// since no amount of freed memory could satisfy it.
void *new_aligned(std::size_t size, std::align_val_t al, bool nothrow) {
  std::size_t align = static_cast<std::size_t>(al);
  if (__builtin_expect(align == 0 || (align & (align - 1)) != 0, 0)) {
    if (nothrow) return nullptr;
    if (&std::__throw_bad_alloc != nullptr) std::__throw_bad_alloc();
    ta_cxx_out_of_memory();
  }
  void *p = ta_cxx_alloc_aligned(size, align);
  if (__builtin_expect(p != nullptr, 1)) return p;
  return ta_cxx_new_failed(size, align, nothrow);
}

}  // namespace

#define TA_CXX_EXPORT __attribute__((visibility("default")))

TA_CXX_EXPORT void *operator new(std::size_t size) { return ta_cxx_new(size); }
TA_CXX_EXPORT void *operator new[](std::size_t size) { return ta_cxx_new(size); }
TA_CXX_EXPORT void *operator new(std::size_t size, const std::nothrow_t &) noexcept { return ta_cxx_new_nothrow(size); }
TA_CXX_EXPORT void *operator new[](std::size_t size, const std::nothrow_t &) noexcept { return ta_cxx_new_nothrow(size); }
TA_CXX_EXPORT void *operator new(std::size_t size, std::align_val_t al) { return new_aligned(size, al, false); }
TA_CXX_EXPORT void *operator new[](std::size_t size, std::align_val_t al) { return new_aligned(size, al, false); }
TA_CXX_EXPORT void *operator new(std::size_t size, std::align_val_t al, const std::nothrow_t &) noexcept {
  return new_aligned(size, al, true);
}
TA_CXX_EXPORT void *operator new[](std::size_t size, std::align_val_t al, const std::nothrow_t &) noexcept {
  return new_aligned(size, al, true);
}

// delete[] of new[] is the same free: tamalloc keeps no array cookie of its own, so a mismatched
// pair of a trivially destructible type (no cookie from the compiler either) still frees the block.
TA_CXX_EXPORT void operator delete(void *p) noexcept { ta_cxx_free(p); }
TA_CXX_EXPORT void operator delete[](void *p) noexcept { ta_cxx_free(p); }
TA_CXX_EXPORT void operator delete(void *p, const std::nothrow_t &) noexcept { ta_cxx_free(p); }
TA_CXX_EXPORT void operator delete[](void *p, const std::nothrow_t &) noexcept { ta_cxx_free(p); }
TA_CXX_EXPORT void operator delete(void *p, std::size_t size) noexcept { ta_cxx_free_sized(p, size); }
TA_CXX_EXPORT void operator delete[](void *p, std::size_t size) noexcept { ta_cxx_free_sized(p, size); }
TA_CXX_EXPORT void operator delete(void *p, std::align_val_t al) noexcept {
  ta_cxx_free_aligned(p, static_cast<std::size_t>(al), 0);
}
TA_CXX_EXPORT void operator delete[](void *p, std::align_val_t al) noexcept {
  ta_cxx_free_aligned(p, static_cast<std::size_t>(al), 0);
}
TA_CXX_EXPORT void operator delete(void *p, std::align_val_t al, const std::nothrow_t &) noexcept {
  ta_cxx_free_aligned(p, static_cast<std::size_t>(al), 0);
}
TA_CXX_EXPORT void operator delete[](void *p, std::align_val_t al, const std::nothrow_t &) noexcept {
  ta_cxx_free_aligned(p, static_cast<std::size_t>(al), 0);
}
TA_CXX_EXPORT void operator delete(void *p, std::size_t size, std::align_val_t al) noexcept {
  ta_cxx_free_aligned(p, static_cast<std::size_t>(al), size);
}
TA_CXX_EXPORT void operator delete[](void *p, std::size_t size, std::align_val_t al) noexcept {
  ta_cxx_free_aligned(p, static_cast<std::size_t>(al), size);
}
