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
 * is; meant for tests and assertions (it takes a lock for large blocks). Exact on the thread that
 * allocated the block; on another thread a block freed a moment ago may still read as live. */
TA_API int ta_owns(const void *ptr);

/* Checks that the heap is consistent: every segment, page (its counts and owner) and free list of
 * the calling thread's arena, of the arenas in the pool (their threads exited) and of the shared one;
 * not the arenas bound to other threads, which their owners change without locks. Returns 0 when all
 * is consistent; otherwise prints one line, "tamalloc: heap check failed: WHAT at 0x…", and aborts.
 * Works in every build, and costs time in proportion to those arenas' heaps (it holds each one's
 * locks meanwhile), so it is meant for tests and debugging: with -Ddebug_checks=3 the stress tests
 * and the fuzz target call it at checkpoints. */
TA_API int ta_validate(void);

/* Release every free page tamalloc can give back now; `pad` bytes are left at the top of the brk heap
 * (as glibc's malloc_trim). Returns 1 if any memory was released, else 0. */
TA_API int ta_trim(size_t pad);

/* Tunables: tamalloc's own names. ta_mallopt returns 1 when the value was taken, 0 when refused. */
enum ta_option {
  TA_OPT_MMAP_THRESHOLD = 1, /* bytes: requests of this size or more get their own mmap */
  TA_OPT_TRIM_THRESHOLD = 2, /* bytes: free tail of the brk heap kept before it shrinks */
  TA_OPT_TOP_PAD = 3,        /* bytes: extra kept at the brk top when it shrinks */
  TA_OPT_DECAY_MS = 4,       /* ms: how long free pages stay committed; 0 now, <0 never */
  TA_OPT_ARENA_MAX = 5,      /* arenas at most; 0 = no cap; threads beyond the cap share one */
  TA_OPT_BACKGROUND_THREAD = 6, /* 1: a background thread purges on schedule; 0: slow paths only */
  TA_OPT_RETAIN_MIN = 7,     /* bytes: free-but-resident memory always allowed to wait for the decay */
  TA_OPT_RETAIN_PERCENT = 8, /* % of the peak heap: above this (and RETAIN_MIN) free memory goes back
                                at once, not after the decay */
  TA_OPT_PROF = 9,           /* 1: the heap profiler samples allocations (README, "Heap profiler") */
  TA_OPT_PROF_SAMPLE = 10,   /* bytes: mean gap between sampled allocations (default 512 KiB) */
  TA_OPT_PROF_INTERVAL = 11, /* bytes: numbered dump each time the live heap grows this much; 0 off */
  TA_OPT_PROF_LEAKS = 12,    /* 1: report the stacks of sampled blocks still live at exit */
};
TA_API int ta_mallopt(int option, long value);
TA_API long ta_getopt(int option);

/* Statistics, current at any moment, from any thread (read without stopping the threads that
 * allocate, so a snapshot taken while they run is a close approximation, never a torn structure).
 * Sizes are bytes. "Committed" is address space backed by memory on demand (brk'd or mapped),
 * "resident" what of it is in RAM now (mincore), "live" what the program holds. */
typedef struct ta_stats_s {
  size_t arenas;                 /* arenas created so far */
  size_t arenas_pooled;          /* of which waiting in the pool (their threads exited) */
  size_t segments;               /* heap segments mapped now */
  size_t segments_brk;           /* of which on the brk heap */
  size_t segment_bytes;          /* address space reserved by segments */
  size_t committed_bytes;        /* of which committed */
  size_t resident_bytes;         /* of which resident */
  size_t live_bytes;             /* bytes in blocks handed out from the arenas (block sizes) */
  size_t live_blocks;            /* blocks handed out from the arenas */
  size_t large_blocks;           /* live blocks on the mmap path */
  size_t large_bytes;            /* bytes mapped for them */
  size_t large_retained_bytes;   /* freed large mappings kept for reuse (adaptive threshold) */
  size_t purged_bytes;           /* bytes given back to the OS by trimming so far */
  size_t purge_calls;            /* madvise/munmap/brk calls trimming made so far */
  size_t segment_grows;          /* segments obtained from the OS so far */
  size_t remote_frees_collected; /* blocks freed by other threads, collected by their owners */
  size_t arena_adoptions;        /* arenas a new thread took over from the pool */
  double fragmentation;          /* share of resident segment bytes not holding live blocks */
} ta_stats_t;
TA_API void ta_stats_get(ta_stats_t *out);

/* Live blocks and bytes of one size class (0 .. ta_stats_classes()-1) over all arenas, and the
 * class's block size. Returns 0, or -1 for a class out of range. */
TA_API int ta_stats_class(unsigned cls, size_t *block_size, size_t *live_blocks, size_t *live_bytes);
TA_API unsigned ta_stats_classes(void);

/* A human report (also malloc_stats(), to stderr). */
TA_API void ta_stats_print(FILE *out);
/* The same as one JSON object (schema in README.md, "Statistics"). Writes at most len bytes with a
 * terminating NUL, like snprintf, and returns the length the whole report needs (without the NUL). */
TA_API size_t ta_stats_json(char *buf, size_t len);
/* Writes a heap profile of the live sampled blocks (the heap profiler, TA_OPT_PROF) to path, in
 * the legacy text format google-pprof reads. 0 on success, -1 with errno if path cannot be written. */
TA_API int ta_prof_dump(const char *path);
/* Every segment (address range, origin brk/mmap, owning arena, units by state) and large block. */
TA_API void ta_heap_map(FILE *out);

#ifdef __cplusplus
}
#endif
#endif
