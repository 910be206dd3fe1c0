/* The mmap path: one private anonymous mapping per block, for requests at or above the mmap
 * threshold and for alignments the bins cannot serve (src/large.c). No process-wide lock: the
 * registry and the retained mappings are sharded, each shard behind a lock of its own. */
#ifndef TA_LARGE_H
#define TA_LARGE_H

#include "src/common.h"

#pragma GCC visibility push(hidden)

/* The largest size class (TA_CLASS_MAX_SIZE in arenas/sizeclass.h, a layer this one may not
 * include; src/router.c asserts they are equal): larger requests only large blocks can serve. */
#define TA_LARGE_CLASS_MAX ((size_t)1 << 20)

/* The 16 bytes before every large block. */
typedef struct ta_large_hdr_s {
  size_t map_size;     /* bytes mapped for the block, header included, a page multiple */
  uint32_t map_offset; /* bytes from the mapping's start to the block */
  uint32_t tag;        /* large_tag() in large.c over all of the header: tells ours from stray bytes */
} ta_large_hdr_t;
_Static_assert(sizeof(ta_large_hdr_t) == 16, "the large header is 16 bytes");

/* A live block's header fields, read under its registry shard's lock after the tag was checked:
 * what the router may trust without reading the header again. */
typedef struct ta_large_view_s {
  size_t map_size;     /* bytes mapped, header included */
  uint32_t map_offset; /* bytes from the mapping's start to the block */
} ta_large_view_t;
static inline size_t ta_large_view_usable(const ta_large_view_t *v) { return v->map_size - v->map_offset; }

/* A block of size bytes aligned to align (a power of two; 16 for plain malloc). With `reuse`, a
 * retained mapping may serve it (then *fresh is false: its memory is not zero). */
void *ta_large_alloc(size_t size, size_t align, bool reuse, bool *fresh);
/* Unmap retained mappings older than decay_ms at `now` (all with force). Returns bytes released. */
size_t ta_large_cache_trim(uint32_t now, long decay_ms, bool force);
size_t ta_large_cached_bytes(void);
/* false if p is not a live large block; the caller reports it. A header that is not the one
 * tamalloc wrote aborts ("free"). *retained: the mapping was kept for reuse (the trimmer's to
 * release) rather than unmapped. */
bool ta_large_free(void *p, bool *retained);
/* What ta_large_resize did besides its result. */
typedef struct ta_large_resize_s {
  bool live;     /* false: p is not a live large block (the caller reports it; nothing changed) */
  bool retained; /* pages were kept for reuse (the trimmer's to release after the decay) */
  size_t copied; /* bytes copied from p into the block returned */
} ta_large_resize_t;
/* Grow or shrink a live large block. Below the mmap threshold (a heap block) it shrinks where it is,
 * its tail retained, and grows into the retained range after it, or by a copy into a retained range
 * when that copies little more than it would fault; otherwise by mremap. A bad header aborts
 * ("realloc"). NULL with how->live true: no memory, p untouched. */
void *ta_large_resize(void *p, size_t size, ta_large_resize_t *how);
bool ta_large_owns(const void *p);
/* p was a large block that has been freed (and its address not mapped for a block since): a second
 * free of it is a double free. Remembered for every freed block while the registry's bounded
 * memory of tombstones lasts (TA_TOMBS_PER_SHARD per shard in large.c). */
bool ta_large_was_freed(const void *p);
/* If p is a live large block, checks its header (a header that is not the one tamalloc wrote
 * aborts naming `func`), fills *out and returns true; false if p is no live large block. */
bool ta_large_lookup(const char *func, const void *p, ta_large_view_t *out);
/* Whether `size` (with `align`) could have been the request a block with this (checked) view was
 * made for. */
bool ta_large_size_matches(const ta_large_view_t *v, size_t size, size_t align);
void ta_large_totals(size_t *blocks, size_t *bytes);
/* Fork handlers (protocol in src/init.c): every registry shard's lock, then every cache shard's. */
void ta_large_fork(ta_fork_phase_t phase);

typedef struct ta_large_info_s {
  uintptr_t ptr;       /* the block */
  uintptr_t map_start; /* its mapping (ptr itself, with map_size 0, if its header is corrupted) */
  size_t map_size;     /* bytes mapped */
} ta_large_info_t;
/* Copies up to cap live large blocks' facts; returns how many there are. */
size_t ta_large_snapshot(ta_large_info_t *out, size_t cap);

#pragma GCC visibility pop

#endif
