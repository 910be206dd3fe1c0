/* What the C++ front end (src/cxx_new.cc) calls: the router's fast paths compiled in C
 * (src/cxx_shim.c), since the arena headers are C11 and not C++. Plain C, readable from both. */
#ifndef TA_CXX_H
#define TA_CXX_H

#include <stdbool.h>
#include <stddef.h>

/* Throws nothing (C++ may then tail-call it from a noexcept operator without a terminate region). */
#define TA_CXX_NOTHROW __attribute__((nothrow))

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(hidden)

/* operator new(size) and its nothrow form: malloc's fast path, and ta_cxx_new_failed when memory
 * ran out (its answer is theirs). */
void *ta_cxx_new(size_t size);
void *ta_cxx_new_nothrow(size_t size) TA_CXX_NOTHROW;
/* src/cxx_new.cc: the first try at a block of `size` bytes aligned to `align` failed; runs the
 * new_handler loop, then throws bad_alloc, or returns NULL if `nothrow`. */
void *ta_cxx_new_failed(size_t size, size_t align, bool nothrow);
/* A block of `size` bytes aligned to `align` (a power of two), or NULL when memory ran out. */
void *ta_cxx_alloc_aligned(size_t size, size_t align) TA_CXX_NOTHROW;
/* Frees a block of any form of operator new (free's fast path); NULL is ignored. */
void ta_cxx_free(void *p) TA_CXX_NOTHROW;
/* Frees a block of plain operator new(size); aborts, naming p, if size is larger than the block. */
void ta_cxx_free_sized(void *p, size_t size) TA_CXX_NOTHROW;
/* Frees a block of operator new(size, align) (size 0: unsized); aborts, naming p, if align is not a
 * power of two, p is not aligned to it, or size is larger than the block. */
void ta_cxx_free_aligned(void *p, size_t align, size_t size) TA_CXX_NOTHROW;
/* Out of memory in a throwing operator new of a program without libstdc++'s bad_alloc: aborts with
 * a message. */
__attribute__((noreturn)) void ta_cxx_out_of_memory(void);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
