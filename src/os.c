/* The OS layer: every memory syscall tamalloc makes is made here (contract in os.h). */
#include "src/os.h"

#include <errno.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static _Atomic long inject[TA_OS_KINDS];          /* pending injected failures per kind */
static _Atomic long inject_skip[TA_OS_KINDS];     /* calls let through before those failures */
static _Atomic unsigned long calls[TA_OS_KINDS];  /* calls made per kind */

void ta_os_inject_failure(ta_os_kind_t kind, long count) { ta_os_inject_failure_after(kind, 0, count); }

void ta_os_inject_failure_after(ta_os_kind_t kind, long skip, long count) {
  atomic_store_explicit(&inject_skip[kind], skip, memory_order_relaxed);
  atomic_store_explicit(&inject[kind], count, memory_order_relaxed);
}

unsigned long ta_os_calls(ta_os_kind_t kind) {
  return atomic_load_explicit(&calls[kind], memory_order_relaxed);
}

/* Address space given back by one thread (munmap, or mremap moving or shrinking a mapping) may be
 * handed to another by its next mmap or mremap: the kernel orders the two (its mmap lock), and a
 * block's last reads by its freeing thread come before the next owner's first writes. The call
 * counters carry that order into the C memory model (and so to ThreadSanitizer, which cannot see
 * the kernel's): the count of a call that gives space back is a release, made before the call, and
 * a mapping call that succeeded reads both counts with acquire after it. Free on x86-64 (the
 * increment is a locked add anyway; an acquire load is a plain load). */
static void os_after_map(void) {
  (void)atomic_load_explicit(&calls[TA_OS_MUNMAP], memory_order_acquire);
  (void)atomic_load_explicit(&calls[TA_OS_MREMAP], memory_order_acquire);
}

/* Counts the call; true when an injected failure consumes it. */
static bool os_enter(ta_os_kind_t kind) {
  bool gives_back = kind == TA_OS_MUNMAP || kind == TA_OS_MREMAP;
  atomic_fetch_add_explicit(&calls[kind], 1, gives_back ? memory_order_release : memory_order_relaxed);
  if (ta_likely(atomic_load_explicit(&inject[kind], memory_order_relaxed) <= 0)) return false;
  if (atomic_load_explicit(&inject_skip[kind], memory_order_relaxed) > 0 &&
      atomic_fetch_sub_explicit(&inject_skip[kind], 1, memory_order_relaxed) > 0)
    return false;
  return atomic_fetch_sub_explicit(&inject[kind], 1, memory_order_relaxed) > 0;
}

static void *os_mmap(size_t size, int extra_flags) {
  if (os_enter(TA_OS_MMAP)) return NULL;
  int saved = errno;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
  errno = saved;
  if (p == MAP_FAILED) return NULL;
  os_after_map();
  return p;
}

void *ta_os_map(size_t size) { return os_mmap(size, 0); }

bool ta_os_unmap(void *p, size_t size) {
  if (os_enter(TA_OS_MUNMAP)) return false;
  int saved = errno;
  int r = munmap(p, size);
  errno = saved;
  return r == 0;
}

void *ta_os_map_aligned(size_t size, size_t align) {
  ta_assert(ta_is_pow2(align) && align >= TA_PAGE && size % TA_PAGE == 0);
  if (size + align < size) return NULL;
  /* Over-map by the alignment, then cut the head and tail off. Unmapping the trims can only fail
   * for want of a VMA slot; then the slack stays mapped, which wastes address space but is safe. */
  char *raw = os_mmap(size + align, 0);
  if (raw == NULL) return NULL;
  uintptr_t start = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
  size_t head = start - (uintptr_t)raw;
  size_t tail = align - head;
  if (head) ta_os_unmap(raw, head);
  if (tail) ta_os_unmap((char *)start + size, tail);
  return (void *)start;
}

void *ta_os_remap(void *p, size_t old_size, size_t new_size, bool *spans) {
  *spans = false;
  if (os_enter(TA_OS_MREMAP)) return NULL;
  int saved = errno;
  void *q = mremap(p, old_size, new_size, MREMAP_MAYMOVE);
  *spans = q == MAP_FAILED && errno == EFAULT;
  errno = saved;
  if (q == MAP_FAILED) return NULL;
  os_after_map();
  return q;
}

bool ta_os_move(void *p, size_t size, void *to) {
  if (os_enter(TA_OS_MREMAP)) return false;
  int saved = errno;
  void *q = mremap(p, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
  errno = saved;
  if (q == MAP_FAILED) return false;
  os_after_map();
  return true;
}

bool ta_os_purge(void *p, size_t size) {
  if (os_enter(TA_OS_PURGE)) return false;
  int saved = errno;
  int r = madvise(p, size, MADV_DONTNEED);
  errno = saved;
  return r == 0;
}

uint32_t ta_os_clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

bool ta_os_protect(void *p, size_t size, bool accessible) {
  int saved = errno;
  int r = mprotect(p, size, accessible ? PROT_READ | PROT_WRITE : PROT_NONE);
  errno = saved;
  return r == 0;
}

void *ta_os_brk_current(void) {
  int saved = errno;
  void *cur = sbrk(0);
  errno = saved;
  return cur == (void *)-1 ? NULL : cur;
}

bool ta_os_brk_set(void *end) {
  if (os_enter(TA_OS_BRK)) return false;
  int saved = errno;
  int r = brk(end);
  errno = saved;
  return r == 0;
}

size_t ta_os_resident(const void *p, size_t size) {
  unsigned char vec[(4u << 20) / 4096];
  if (size > sizeof vec * TA_PAGE) return 0;
  int saved = errno;
  int r = mincore((void *)p, size, vec);
  errno = saved;
  if (r != 0) return 0;
  size_t n = 0;
  for (size_t i = 0; i < (size + TA_PAGE - 1) / TA_PAGE; i++) n += vec[i] & 1;
  return n * TA_PAGE;
}

void ta_os_check_layout(void) {
  int local;
  bool ok = ta_os_addr_fits(&local, sizeof local);
  /* Not counted, and no injected failure applies: tests count the calls the allocator makes. */
  int saved = errno;
  void *probe = mmap(NULL, TA_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (probe != MAP_FAILED) {
    ok = ok && ta_os_addr_fits(probe, TA_PAGE);
    munmap(probe, TA_PAGE);
  }
  errno = saved;
  if (!ok) ta_fatal("the user address space is wider than the 47 bits tamalloc was built for");
}
