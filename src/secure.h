/* The secure variant's checking layer (src/secure.c): the public entry points of a build with
 * TA_SECURE=1 (libtamalloc-secure, or any build with -Dsecure=true). Each checks and arms the block
 * around the router's call (src/router.c); the block layout and the quarantine are described at the
 * top of secure.c. Only src/override.c and secure.c include this header, and only when TA_SECURE. */
#ifndef TA_SECURE_H
#define TA_SECURE_H

#include "src/common.h"

#pragma GCC visibility push(hidden)

void *ta_secure_malloc(size_t size);
void *ta_secure_calloc(size_t count, size_t size);
void *ta_secure_realloc(void *p, size_t size);
void *ta_secure_reallocarray(void *p, size_t count, size_t size);
void ta_secure_free(void *p);
void ta_secure_free_sized(void *p, size_t size);
void ta_secure_free_aligned_sized(void *p, size_t align, size_t size);
void *ta_secure_aligned_alloc(size_t align, size_t size);
int ta_secure_posix_memalign(void **out, size_t align, size_t size);
void *ta_secure_memalign(size_t align, size_t size);
void *ta_secure_valloc(size_t size);
void *ta_secure_pvalloc(size_t size);
/* The size the block was asked for (not the block's size: the bytes past it are the canary). */
size_t ta_secure_usable_size(const void *p);
/* ta_owns: a block in a quarantine is freed for the program, though the router holds it as live. */
int ta_secure_owns(const void *p);
/* Empties the calling thread's quarantine (checking every block), then the router's trim. */
int ta_secure_trim(size_t pad);

#pragma GCC visibility pop
#endif
