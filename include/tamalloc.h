/* tamalloc public API: the only header users include.
 * Every ta_* function has the contract of the standard function it is named after (glibc's semantics
 * where the standards leave room); with the default build the standard names forward to these. */
#ifndef TAMALLOC_H
#define TAMALLOC_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TA_API __attribute__((visibility("default")))
#define TA_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define TA_API
#define TA_MALLOC_ATTR
#endif

/* The C/POSIX allocation contract. */
TA_API TA_MALLOC_ATTR void *ta_malloc(size_t size);
TA_API TA_MALLOC_ATTR void *ta_calloc(size_t count, size_t size);
TA_API void *ta_realloc(void *ptr, size_t size);
TA_API void *ta_reallocarray(void *ptr, size_t count, size_t size);
TA_API void ta_free(void *ptr);
TA_API void ta_free_sized(void *ptr, size_t size);
TA_API void ta_free_aligned_sized(void *ptr, size_t alignment, size_t size);
TA_API TA_MALLOC_ATTR void *ta_aligned_alloc(size_t alignment, size_t size);
TA_API int ta_posix_memalign(void **memptr, size_t alignment, size_t size);
TA_API TA_MALLOC_ATTR void *ta_memalign(size_t alignment, size_t size);
TA_API TA_MALLOC_ATTR void *ta_valloc(size_t size);
TA_API TA_MALLOC_ATTR void *ta_pvalloc(size_t size);
TA_API size_t ta_usable_size(const void *ptr);

/* 1 when ptr is the start of a live block handed out by tamalloc, else 0. Never faults, whatever ptr
 * is; meant for tests and assertions (it takes a lock for large blocks). */
TA_API int ta_owns(const void *ptr);

/* Release every free page tamalloc can give back now; `pad` bytes are left at the top of the brk heap
 * (as glibc's malloc_trim). Returns 1 if any memory was released, else 0. */
TA_API int ta_trim(size_t pad);

/* Tunables: tamalloc's own names. ta_mallopt returns 1 when the value was taken, 0 when refused. */
enum ta_option {
  TA_OPT_MMAP_THRESHOLD = 1, /* bytes: requests of this size or more get their own mmap */
  TA_OPT_TRIM_THRESHOLD = 2, /* bytes: free tail of the brk heap kept before it shrinks */
  TA_OPT_TOP_PAD = 3,        /* bytes: extra kept at the brk top when it shrinks */
  TA_OPT_DECAY_MS = 4,       /* ms: how long free pages stay committed; 0 now, <0 never */
  TA_OPT_ARENA_MAX = 5,      /* arenas at most; 0 = no cap */
};
TA_API int ta_mallopt(int option, long value);
TA_API long ta_getopt(int option);

/* Statistics, current at any moment, from any thread. Byte counts are bytes of address space. */
typedef struct ta_stats_s {
  size_t arenas;          /* arenas created so far (live or pooled) */
  size_t segments;        /* heap segments mapped now */
  size_t segments_brk;    /* of which grown with brk */
  size_t segment_bytes;   /* address space reserved by segments */
  size_t large_blocks;    /* live blocks on the mmap path */
  size_t large_bytes;     /* bytes mapped for them */
} ta_stats_t;
TA_API void ta_stats_get(ta_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
