/* The router: the size decision and the public ta_* entry points.
 *
 * A request below the mmap threshold (ta_config.mmap_threshold, 128 KiB by default) goes to the
 * calling thread's arena; a request of the threshold or more gets its own mapping (src/large.c). The
 * comparison is on the size the caller asked for, not on the block or mapping it becomes. Alignments
 * up to 64 KiB are served from the bins (a class whose blocks are all aligned), larger ones by the
 * mmap path whatever the size. */
#include "src/router.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <malloc.h>
#include <string.h>
#include <unistd.h>

#include "arenas/arena.h"
#include "src/config.h"
#include "src/init.h"
#include "src/large.h"
#include "src/os.h"
#include "src/prof.h"
#include "arenas/page.h"
#include "tamalloc.h"
#include "src/sched.h"

_Static_assert(TA_LARGE_CLASS_MAX == TA_CLASS_MAX_SIZE, "src/large.h names the largest class");

#define TA_ALIAS(name) __attribute__((alias(#name), visibility("default")))

/* Never inlined: the functions that tail-call it keep no stack frame of their own. */
TA_NOINLINE void *ta_router_malloc_miss(ta_arena_t *arena, size_t cls) {
  if (ta_unlikely(arena == &ta_arena_empty)) ta_init(); /* a thread's first call, maybe the process's */
  void *p = ta_arena_malloc_slow(arena, cls);
  ta_prof_thread_sync();
  /* Work the arena layer reported for the scheduler: start its thread now, the arena bound and the
   * operation finished (ta_sched_start_wanted checks both). */
  if (ta_unlikely(atomic_load_explicit(&ta_seg_sched_wanted, memory_order_relaxed))) ta_sched_start_wanted();
  return p;
}

/* A request the profiler samples (`caller`: the return address into the program). One the router
 * would give to the bins gets a block of the same class from the profiler arena (src/prof.c), whose
 * pages are reused like any arena's; measured, serving every sample from a mapping of its own made
 * mixed_sizes 13 times slower (fresh pages faulted in and zeroed). The rest are mappings as they
 * would be unsampled (a retained one when it fits), whose free reaches ta_router_free_slow. */
static TA_NOINLINE void *malloc_sampled(size_t size, size_t align, bool *fresh, void *caller) {
  if (ta_unlikely(size > TA_MAX_REQUEST)) {
    errno = ENOMEM;
    return NULL;
  }
  size_t threshold = ta_mmap_threshold();
  if (align <= TA_ALIGN) {
    if (size <= TA_SMALL_TABLE_MAX) return ta_prof_malloc_arena(ta_class_small(size), size, caller);
    if (size < threshold && size <= TA_CLASS_MAX_SIZE) return ta_prof_malloc_arena(ta_class_large(size), size, caller);
  } else if (align <= TA_ALIGNED_BIN_MAX && size < threshold) {
    unsigned cls = ta_class_for_aligned(size, align);
    if (cls < TA_CLASSES) return ta_prof_malloc_arena(cls, size, caller);
  }
  void *p = ta_large_alloc(size, align, align <= TA_ALIGN, fresh);
  if (p == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  ta_prof_record(p, size, caller);
  return p;
}

/* Below the threshold and within the size classes: the arena. Below the threshold but above the
 * classes: a mapping that may be reused (src/large.c). At or above it: a mapping of its own. While
 * the profiler samples, every request comes here (small ones too: ta_tls.small_max is 0). */
static void *malloc_big(size_t size, bool *fresh, void *caller) {
  ta_init(); /* the threshold may come from the environment: read it before the first decision */
  *fresh = false;
  if (ta_unlikely(ta_prof_on()) && ta_prof_tick(size)) return malloc_sampled(size, TA_ALIGN, fresh, caller);
  if (size <= TA_SMALL_TABLE_MAX) return ta_arena_alloc_or(ta_tls_arena, ta_class_small(size), ta_router_malloc_miss);
  size_t threshold = ta_mmap_threshold();
  if (size < threshold && size <= TA_CLASS_MAX_SIZE) return ta_arena_alloc_or(ta_tls_arena, ta_class_large(size), ta_router_malloc_miss);
  if (ta_unlikely(size > TA_MAX_REQUEST)) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = ta_large_alloc(size, 16, size < threshold, fresh);
  if (p == NULL) errno = ENOMEM;
  return p;
}

/* Out of line, so that ta_router_malloc_big needs no stack frame of its own and tail-calls them. */
static TA_NOINLINE void *malloc_small_counted_out(size_t size, void *caller) {
  bool fresh;
  if (ta_likely(ta_prof_on())) {
    if (ta_prof_tick_slow()) return malloc_sampled(size, TA_ALIGN, &fresh, caller);
  } else {
    ta_prof_thread_sync(); /* turned off: the thread takes the fast path again */
  }
  return ta_arena_alloc_or(ta_tls_arena, ta_class_small(size), ta_router_malloc_miss);
}
static TA_NOINLINE void *malloc_big_from(size_t size, void *caller) {
  bool fresh;
  return malloc_big(size, &fresh, caller);
}

/* Reached by a tail call from the standard names, so the return address is the program's. A small
 * request comes here only while the thread's gate is 0 (profiling on, or just turned off and not
 * yet synced, src/prof.h): the countdown, then the arena as on the fast path. The countdown runs
 * without asking whether profiling is on (one load and branch fewer per request, measured on
 * small_churn): a thread whose countdown runs out after profiling was turned off finds out then,
 * or at its next malloc miss, whichever comes first. ta_init has run: the gate is lowered only after
 * it. */
void *ta_router_malloc_big(size_t size) {
  if (size <= TA_SMALL_TABLE_MAX) {
    if (ta_unlikely(ta_prof_countdown(size)))
      return malloc_small_counted_out(size, __builtin_return_address(0));
    return ta_arena_alloc_or(ta_tls_arena, ta_class_small(size), ta_router_malloc_miss);
  }
  return malloc_big_from(size, __builtin_return_address(0));
}

/* malloc on behalf of another entry point, whose own caller is `caller`. */
static void *malloc_for(size_t size, void *caller) {
  if (ta_likely(size <= ta_tls.small_max)) return ta_arena_alloc_or(ta_tls_arena, ta_class_small(size), ta_router_malloc_miss);
  bool fresh;
  return malloc_big(size, &fresh, caller);
}

void *ta_router_malloc(size_t size) { return ta_route_malloc(size); }

/* Not a block tamalloc handed out (or no longer one): say which, and stop. */
void ta_router_bad_pointer(const char *func, const void *p) {
  bool was_block = ta_segmap_has(p) ? ta_arena_was_block(p) : ta_large_was_freed(p);
  if (was_block) ta_fatal_ptr(func, "double free", p);
  ta_fatal_ptr(func, "invalid pointer", p);
}

/* Large pages were kept for reuse: the scheduler's thread must run to give them back after the
 * decay time, also in a program that frees its big buffers and then only sleeps (no malloc slow path
 * would ever poll the flag). No lock is held here, as on the malloc slow path. */
static void retained_wake(void) {
  ta_sched_wake();
  ta_sched_start_wanted();
}

void ta_router_free_slow(void *p) {
  if (p == NULL) return;
  bool retained;
  if (ta_unlikely(atomic_load_explicit(&ta_prof_live, memory_order_relaxed) != 0)) ta_prof_forget(p);
  if (!ta_large_free(p, &retained)) ta_router_bad_pointer("free", p);
  if (retained) retained_wake();
}

void ta_router_free(void *p) { ta_route_free(p); }

/* Block size of a live block, or aborts naming `func` if p is not one. A large block's header is
 * checked before anything in it is used (ta_large_lookup), and *large_out gets what it says. */
static size_t usable_checked(const char *func, const void *p, ta_page_t **page_out, ta_large_view_t *large_out) {
  if (ta_segmap_has(p)) {
    ta_page_t *page = ta_arena_page_checked(p);
    if (page == NULL) ta_router_bad_pointer(func, p);
    if (page_out) *page_out = page;
    return page->block_size;
  }
  if (page_out) *page_out = NULL;
  ta_large_view_t v;
  if (!ta_large_lookup(func, p, &v)) ta_router_bad_pointer(func, p);
  if (large_out) *large_out = v;
  return ta_large_view_usable(&v);
}

size_t ta_router_usable_size(const void *p) {
  if (p == NULL) return 0;
  return usable_checked("malloc_usable_size", p, NULL, NULL);
}

void *ta_router_calloc(size_t count, size_t size) {
  size_t n;
  if (ta_unlikely(__builtin_mul_overflow(count, size, &n))) {
    errno = ENOMEM;
    return NULL;
  }
  if (n > ta_tls.small_max) {
    bool fresh;
    void *p = malloc_big(n, &fresh, __builtin_return_address(0));
    if (p != NULL && !fresh) memset(p, 0, n); /* fresh mappings read as zero */
    return p;
  }
  void *p = ta_arena_alloc_or(ta_tls_arena, ta_class_small(n), ta_router_malloc_miss);
  if (ta_likely(p != NULL)) memset(p, 0, n);
  return p;
}

/* Blocks from the bins stay where they are when the new size still fits and is at least about half
 * the block (within four classes), so shrinking a little does not copy but shrinking a lot frees. */
#define TA_REALLOC_KEEP_CLASSES 4u

/* Whether the router gives a request of `size` to the bins. */
static bool realloc_binned(size_t size) { return size < ta_mmap_threshold() && size <= TA_CLASS_MAX_SIZE; }

/* Bytes realloc has copied from an old block into a new one since the process started. Relaxed: a
 * statistic no other memory depends on (tests read it on the thread that made the copies). */
static _Atomic size_t realloc_copied;

size_t ta_router_realloc_copied(void) { return atomic_load_explicit(&realloc_copied, memory_order_relaxed); }

/* Copying is the last resort: a bin block that still fits stays, a bin block alone in its span
 * changes class in place when the span can become the new class's (arenas/resize.c), a mapped
 * block that stays above the threshold (or the classes) is resized by mremap, which moves page
 * tables, not bytes. Only a move between the bins, or between the bins and a mapping, copies. */
void *ta_router_realloc(void *p, size_t size) {
  void *caller = __builtin_return_address(0);
  if (p == NULL) return malloc_for(size, caller);
  if (size == 0) {
    ta_router_free(p);
    return NULL;
  }
  if (ta_unlikely(size > TA_MAX_REQUEST)) {
    usable_checked("realloc", p, NULL, NULL);
    errno = ENOMEM;
    return NULL;
  }
  ta_page_t *page;
  size_t old = usable_checked("realloc", p, &page, NULL);
  if (page != NULL) {
    bool keep = size <= old && ta_class_of(size) + TA_REALLOC_KEEP_CLASSES >= page->cls;
    /* A block alone in its span may change class where it is (arenas/resize.c), on its owner's
     * thread, if the new size is one the router would give to the bins. */
    if (ta_likely(page->arena == ta_tls_arena)) {
      if (keep) return p;
      /* The owner test first: capacity is the owner's to read. */
      if (page->capacity == 1 && realloc_binned(size) && ta_arena_resize_in_place(page->arena, page, p, size)) return p;
    } else if (ta_unlikely(page->arena == atomic_load_explicit(&ta_prof_arena, memory_order_relaxed))) {
      /* A sampled block: the same rules, its owner being the profiler */
      if ((keep || realloc_binned(size)) && ta_prof_realloc_in_place(page, p, size, keep, caller)) return p;
    } else if (keep) {
      return p;
    }
  } else if (size >= ta_mmap_threshold() || size > TA_CLASS_MAX_SIZE) {
    /* A sampled block is forgotten before its mapping can move (the old address may be mapped again
     * by then), and the new size counted down like a new request; unsampled blocks too, so that a
     * block grown by mremap has the chance of being sampled its new size gives it. */
    bool sampled = atomic_load_explicit(&ta_prof_live, memory_order_relaxed) != 0 && ta_prof_forget(p);
    ta_large_resize_t how;
    void *q = ta_large_resize(p, size, &how);
    if (!how.live) ta_router_bad_pointer("realloc", p); /* freed by another thread since the check */
    if (how.copied) atomic_fetch_add_explicit(&realloc_copied, how.copied, memory_order_relaxed);
    if (how.retained) retained_wake();
    if (q == NULL) {
      if (sampled) ta_prof_record(p, old, caller); /* p stays as it was */
      errno = ENOMEM;
      return NULL;
    }
    if (ta_unlikely(ta_prof_on()) && ta_prof_tick(size)) ta_prof_record(q, size, caller);
    return q;
  }
  void *q = malloc_for(size, caller);
  if (q == NULL) return NULL;
  size_t n = old < size ? old : size;
  memcpy(q, p, n);
  atomic_fetch_add_explicit(&realloc_copied, n, memory_order_relaxed);
  if (page != NULL)
    ta_arena_free(page, p); /* the page usable_checked found: no second lookup */
  else
    ta_router_free_slow(p);
  return q;
}

void *ta_router_reallocarray(void *p, size_t count, size_t size) {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) {
    errno = ENOMEM;
    return NULL;
  }
  return ta_router_realloc(p, n);
}

/* align: a power of two; caller: the return address into the program. */
static void *aligned(size_t align, size_t size, void *caller) {
  if (align <= TA_ALIGN) return malloc_for(size, caller);
  if (size > TA_MAX_REQUEST || align > TA_MAX_REQUEST) return NULL;
  bool fresh;
  if (ta_unlikely(ta_prof_on()) && ta_prof_tick(size)) return malloc_sampled(size, align, &fresh, caller);
  if (align <= TA_ALIGNED_BIN_MAX && size < ta_mmap_threshold()) {
    unsigned cls = ta_class_for_aligned(size, align);
    if (cls < TA_CLASSES) return ta_arena_alloc_or(ta_tls_arena, cls, ta_router_malloc_miss);
  }
  ta_init(); /* the large header's tag needs the secret */
  return ta_large_alloc(size, align, false, &fresh);
}

void *ta_router_aligned_alloc(size_t align, size_t size) {
  if (!ta_is_pow2(align)) {
    errno = EINVAL;
    return NULL;
  }
  void *p = aligned(align, size, __builtin_return_address(0));
  if (p == NULL) errno = ENOMEM;
  return p;
}

void *ta_router_memalign(size_t align, size_t size) { return ta_router_aligned_alloc(align, size); }

/* The error is the return value; errno is also ENOMEM when memory ran out, as with glibc (whose
 * allocation underneath sets it, and programs read it), and otherwise left as it was: a bad
 * alignment is refused before anything is tried, and a success must not leak an errno set on the way
 * (a brk refusal the arena got past, say). */
int ta_posix_memalign_by(void **out, size_t align, size_t size, void *(*alloc)(size_t, size_t, void *),
                         void *caller) {
  if (!ta_is_pow2(align) || align % sizeof(void *) != 0) return EINVAL;
  int saved = errno;
  void *p = alloc(align, size, caller);
  if (p == NULL) {
    errno = ENOMEM;
    return ENOMEM;
  }
  errno = saved;
  *out = p;
  return 0;
}

int ta_router_posix_memalign(void **out, size_t align, size_t size) {
  return ta_posix_memalign_by(out, align, size, aligned, __builtin_return_address(0));
}

void *ta_router_valloc(size_t size) { return ta_router_aligned_alloc(TA_PAGE, size); }

size_t ta_pvalloc_size(size_t size) {
  if (size > TA_MAX_REQUEST) {
    errno = ENOMEM;
    return 0;
  }
  return ta_align_up(size ? size : 1, TA_PAGE);
}

void *ta_router_pvalloc(size_t size) {
  size_t rounded = ta_pvalloc_size(size);
  return rounded ? ta_router_aligned_alloc(TA_PAGE, rounded) : NULL;
}

/* free_sized, free_aligned_sized and the sized operator deletes' slow path: the size must be one the
 * block could have been made for, or with `at_most` only no larger than the block. */
void ta_router_free_checked(const char *func, void *p, size_t align, size_t size, bool at_most) {
  if (p == NULL) return;
  ta_page_t *page;
  ta_large_view_t large;
  size_t usable = usable_checked(func, p, &page, &large);
  bool ok = size <= usable;
  if (ok && !at_most && page != NULL) {
    unsigned cls = ta_class_of(size);
    bool as_aligned = align > TA_ALIGN && ta_class_for_aligned(size, align) == page->cls;
    ok = as_aligned || cls + TA_REALLOC_KEEP_CLASSES >= page->cls;
  } else if (ok && !at_most) {
    ok = ta_large_size_matches(&large, size, align);
  }
  if (!ok) ta_fatal_ptr(func, "size does not match the block", p);
  ta_router_free(p);
}

void ta_router_free_sized(void *p, size_t size) { ta_router_free_checked("free_sized", p, 0, size, false); }

void ta_router_free_aligned_sized(void *p, size_t align, size_t size) {
  ta_router_free_checked("free_aligned_sized", p, align, size, false);
}

int ta_router_trim(size_t pad) { return ta_sched_trim_now(pad); }

/* mallopt before the first malloc must not be undone by the environment read at start-up. */
int ta_router_mallopt(int option, long value) {
  ta_init();
  int taken = ta_config_set(option, value);
  /* TA_OPT_PROF: the calling thread follows at once, the others at their next slow path */
  ta_prof_thread_sync();
  return taken;
}

/* glibc reads a size parameter as its int converted to size_t, so a negative value is a huge size
 * (mallopt(M_TRIM_THRESHOLD, -1): never trim). Past LONG_MAX it is as good as infinite here, and
 * clamped there it still reads back through ta_getopt. */
static long glibc_size(int value) {
  size_t v = (size_t)(long)value;
  return v > (size_t)LONG_MAX ? LONG_MAX : (long)v;
}

/* mallopt with glibc's parameters (<malloc.h>) and glibc 2.36's answers: 1 taken, 0 refused. glibc
 * refuses only an M_MXFAST above its largest fastbin size; tamalloc has no fastbins, so a value glibc
 * takes is accepted and ignored, as are M_MMAP_MAX, M_CHECK_ACTION (errors always abort), M_PERTURB
 * and M_ARENA_TEST. A negative M_ARENA_MAX is ignored but answered 1, as glibc does; 0 lifts the cap
 * (glibc ignores 0 too, but there 0 is also the uncapped default, which it gives no way back to). */
int ta_router_mallopt_glibc(int param, int value) {
  ta_init();
  switch (param) {
    case M_MMAP_THRESHOLD: /* ta_config_set clamps it to 4 KiB .. 32 MiB */
      return ta_config_set(TA_OPT_MMAP_THRESHOLD, glibc_size(value));
    case M_TRIM_THRESHOLD: return ta_config_set(TA_OPT_TRIM_THRESHOLD, glibc_size(value));
    case M_TOP_PAD: return ta_config_set(TA_OPT_TOP_PAD, glibc_size(value));
    case M_ARENA_MAX: return value >= 0 ? ta_config_set(TA_OPT_ARENA_MAX, value) : 1;
    case M_MXFAST: return glibc_size(value) <= (long)(80 * sizeof(size_t) / 4);
    case M_MMAP_MAX:
    case M_CHECK_ACTION:
    case M_PERTURB:
    case M_ARENA_TEST:
      return 1;
    default:
      return 0;
  }
}

/* The public names; the secure variant's checking layer defines them instead (src/secure.c). */
#if !TA_SECURE
void *ta_malloc(size_t size) TA_ALIAS(ta_router_malloc);
void *ta_calloc(size_t count, size_t size) TA_ALIAS(ta_router_calloc);
void *ta_realloc(void *p, size_t size) TA_ALIAS(ta_router_realloc);
void *ta_reallocarray(void *p, size_t count, size_t size) TA_ALIAS(ta_router_reallocarray);
void ta_free(void *p) TA_ALIAS(ta_router_free);
void ta_free_sized(void *p, size_t size) TA_ALIAS(ta_router_free_sized);
void ta_free_aligned_sized(void *p, size_t align, size_t size) TA_ALIAS(ta_router_free_aligned_sized);
void *ta_aligned_alloc(size_t align, size_t size) TA_ALIAS(ta_router_aligned_alloc);
int ta_posix_memalign(void **out, size_t align, size_t size) TA_ALIAS(ta_router_posix_memalign);
void *ta_memalign(size_t align, size_t size) TA_ALIAS(ta_router_memalign);
void *ta_valloc(size_t size) TA_ALIAS(ta_router_valloc);
void *ta_pvalloc(size_t size) TA_ALIAS(ta_router_pvalloc);
size_t ta_usable_size(const void *p) TA_ALIAS(ta_router_usable_size);
int ta_trim(size_t pad) TA_ALIAS(ta_router_trim);
int ta_owns(const void *p) TA_ALIAS(ta_router_owns);
#endif
int ta_mallopt(int option, long value) TA_ALIAS(ta_router_mallopt);

long ta_getopt(int option) {
  ta_init();
  return ta_config_get(option);
}

/* Exact for large blocks and, on the thread that owns the block's arena, for small ones; from
 * another thread a small block its owner freed a moment ago may still read as live (the owner's
 * free list is the owner's alone to read). */
int ta_router_owns(const void *p) {
  if (p == NULL) return 0;
  if (ta_segmap_has(p)) {
    ta_page_t *page = ta_arena_page_checked(p);
    if (page == NULL) return 0;
    if (page->arena != ta_tls_arena) return 1;
    ta_arena_slow_enter(page->arena); /* a collector may be editing the lists */
    bool is_free = ta_page_block_is_free(page, p);
    ta_arena_slow_leave(page->arena);
    return !is_free;
  }
  return ta_large_owns(p);
}
