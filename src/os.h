/* The platform layer's door to the kernel: every memory call tamalloc makes (brk, mmap, munmap,
 * mremap, madvise, mincore) is made in src/os.c, and the platform assumptions are written here.
 * Convention: every function leaves errno as it found it and reports failure in its return value
 * (NULL or false); callers decide what errno the user sees. Sizes and addresses must be multiples of
 * the page size (TA_PAGE) unless stated otherwise. Tests can make the next N calls of a kind fail
 * (ta_os_inject_failure) and read how many calls of each kind were made (ta_os_calls). */
#ifndef TA_OS_H
#define TA_OS_H

#include "src/common.h"

#pragma GCC visibility push(hidden)

/* Platform assumptions, each checked rather than assumed:
 *  - x86-64 Linux: 4 KiB pages, and a user address space of TA_ADDRESS_BITS (47) bits, which the
 *    kernel keeps to unless a mapping is asked for above it (5-level paging gives 56 bits only to a
 *    process that passes such a hint). The segment map (arenas/segment.h) has one slot per segment
 *    of that range and the free-list link check (ta_link_plausible) reads the bits above it, so:
 *    ta_os_check_layout, at start-up, stops the process with a message if the stack or a fresh
 *    mapping lies above the range; and ta_os_addr_fits is asked before a segment is entered in the
 *    map, so an address above the range is refused, never written past the map's end.
 *  - glibc: the fork handlers read a mutex's owner field (__data.__owner, src/error.c) and glibc's
 *    stdio list lock (_IO_list_lock, src/init.c); brk and sbrk are glibc's, so its cached break
 *    stays true. */
#if !defined(__x86_64__) || !defined(__linux__) || !defined(__GLIBC__)
#error "tamalloc assumes x86-64 Linux with glibc (src/os.h lists what depends on it)"
#endif
#define TA_PAGE ((size_t)4096)
#define TA_ADDRESS_BITS 47

/* Whether [p, p + size) lies inside the TA_ADDRESS_BITS-bit user address range. */
static inline bool ta_os_addr_fits(const void *p, size_t size) {
  uintptr_t end = (uintptr_t)p + size;
  return end >= (uintptr_t)p && end <= ((uintptr_t)1 << TA_ADDRESS_BITS);
}
/* Start-up: aborts with a message if the process's addresses do not fit TA_ADDRESS_BITS. */
void ta_os_check_layout(void);

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
/* mremap with MREMAP_MAYMOVE: the new address, or NULL with the old mapping untouched; then *spans
 * says whether the range was refused for spanning kernel mappings (EFAULT; an injected failure is
 * not that). */
void *ta_os_remap(void *p, size_t old_size, size_t new_size, bool *spans);
/* mremap with MREMAP_MAYMOVE | MREMAP_FIXED: the pages of [p, p + size) (one kernel mapping, else it
 * fails) move to `to`, replacing what was mapped there; page tables move, no byte is copied and no
 * page faults in again. False with both ranges untouched. Counted as TA_OS_MREMAP. */
bool ta_os_move(void *p, size_t size, void *to);
/* Give the pages back (MADV_DONTNEED): the range stays mapped and reads as zero afterwards. */
bool ta_os_purge(void *p, size_t size);
/* mprotect: [p, p + size) becomes inaccessible (no read or write), or read-write again. For the
 * secure variant's guard pages (src/secure.c); not counted, no injected failure applies. */
bool ta_os_protect(void *p, size_t size, bool accessible);
/* The program break as glibc's sbrk(0) reports it, and brk(end) through glibc so its cached break
 * stays true for other sbrk users. */
void *ta_os_brk_current(void);
bool ta_os_brk_set(void *end);

/* Bytes of [p, p + size) resident in memory (mincore); 0 if that cannot be told. size at most
 * 4 MiB. */
size_t ta_os_resident(const void *p, size_t size);

/* Milliseconds on a monotonic clock (coarse: a few ms), wrapping; only differences mean anything. */
uint32_t ta_os_clock_ms(void);

/* Test hook: the next `count` calls of `kind` fail as if the kernel said ENOMEM. */
void ta_os_inject_failure(ta_os_kind_t kind, long count);
/* The same after `skip` more calls of `kind` have gone through to the kernel (to fail a call in the
 * middle of a sequence, e.g. the moves after an mremap the kernel refused). */
void ta_os_inject_failure_after(ta_os_kind_t kind, long skip, long count);
/* How many calls of `kind` were made (failed or not) since the process started. */
unsigned long ta_os_calls(ta_os_kind_t kind);

#pragma GCC visibility pop

#endif
