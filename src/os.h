/* The only door to the kernel's memory calls (brk, mmap, munmap, mremap, madvise).
 * Convention: every function leaves errno as it found it and reports failure in its return value
 * (NULL or false); callers decide what errno the user sees. Sizes and addresses must be multiples of
 * the page size (TA_PAGE) unless stated otherwise. Tests can make the next N calls of a kind fail
 * (ta_os_inject_failure) and read how many calls of each kind were made (ta_os_calls). */
#ifndef TA_OS_H
#define TA_OS_H

#include "common.h"

#pragma GCC visibility push(hidden)

#define TA_PAGE ((size_t)4096)

typedef enum {
  TA_OS_MMAP = 0,  /* ta_os_map, ta_os_map_aligned */
  TA_OS_MUNMAP,    /* ta_os_unmap */
  TA_OS_MREMAP,    /* ta_os_remap */
  TA_OS_PURGE,     /* ta_os_purge (madvise) */
  TA_OS_BRK,       /* ta_os_brk_set */
  TA_OS_KINDS
} ta_os_kind_t;

/* A fresh private anonymous read-write mapping of `size` bytes (zeroed), or NULL. */
void *ta_os_map(size_t size);
/* The same, with the start aligned to `align` (a power of two >= TA_PAGE); over-maps then trims. */
void *ta_os_map_aligned(size_t size, size_t align);
bool ta_os_unmap(void *p, size_t size);
/* mremap with MREMAP_MAYMOVE: the new address, or NULL with the old mapping untouched. */
void *ta_os_remap(void *p, size_t old_size, size_t new_size);
/* Give the pages back (MADV_DONTNEED): the range stays mapped and reads as zero afterwards. */
bool ta_os_purge(void *p, size_t size);
/* The program break as glibc's sbrk(0) reports it, and brk(end) through glibc so its cached break
 * stays true for other sbrk users. */
void *ta_os_brk_current(void);
bool ta_os_brk_set(void *end);

/* Milliseconds on a monotonic clock (coarse: a few ms), wrapping; only differences mean anything. */
uint32_t ta_os_clock_ms(void);

/* Test hook: the next `count` calls of `kind` fail as if the kernel said ENOMEM. */
void ta_os_inject_failure(ta_os_kind_t kind, long count);
/* How many calls of `kind` were made (failed or not) since the process started. */
unsigned long ta_os_calls(ta_os_kind_t kind);

#pragma GCC visibility pop

#endif
