/* The mmap path: one private anonymous mapping per block, for requests at or above the mmap
 * threshold and for alignments the bins cannot serve (src/large.c). */
#ifndef TA_LARGE_H
#define TA_LARGE_H

#include "src/common.h"

#pragma GCC visibility push(hidden)

/* The 16 bytes before every large block. */
typedef struct ta_large_hdr_s {
  size_t map_size;     /* bytes mapped for the block, header included, a page multiple */
  uint32_t map_offset; /* bytes from the mapping's start to the block */
  uint32_t tag;        /* large_tag() in large.c over all of the header: tells ours from stray bytes */
} ta_large_hdr_t;
_Static_assert(sizeof(ta_large_hdr_t) == 16, "the large header is 16 bytes");

/* A block of size bytes aligned to align (a power of two; 16 for plain malloc). With `reuse`, a
 * retained mapping may serve it (then *fresh is false: its memory is not zero). */
void *ta_large_alloc(size_t size, size_t align, bool reuse, bool *fresh);
/* Unmap retained mappings older than decay_ms at `now` (all with force). Returns bytes released. */
size_t ta_large_cache_trim(uint32_t now, long decay_ms, bool force);
size_t ta_large_cached_bytes(void);
/* false if p is not a live large block; the caller reports it. */
bool ta_large_free(void *p);
/* p must be a live large block (ta_large_owns) whose header ta_large_usable checked. NULL on
 * failure, p untouched. */
void *ta_large_resize(void *p, size_t size);
bool ta_large_owns(const void *p);
bool ta_large_recently_freed(const void *p);
/* Usable bytes of a live large block (ta_large_owns), after checking its header: a header that is
 * not the one tamalloc wrote aborts naming `func`. Call it before ta_large_size_matches and
 * ta_large_resize, which trust the header. */
size_t ta_large_usable(const char *func, const void *p);
/* Whether `size` (with `align`) could have been the request p was made for. */
bool ta_large_size_matches(const void *p, size_t size, size_t align);
void ta_large_totals(size_t *blocks, size_t *bytes);
/* Fork handlers (protocol in src/init.c): large_lock. */
void ta_large_fork(ta_fork_phase_t phase);

typedef struct ta_large_info_s {
  uintptr_t ptr;       /* the block */
  uintptr_t map_start; /* its mapping */
  size_t map_size;     /* bytes mapped */
} ta_large_info_t;
/* Copies up to cap live large blocks' facts; returns how many there are. */
size_t ta_large_snapshot(ta_large_info_t *out, size_t cap);

#pragma GCC visibility pop

#endif
