/* The sampling heap profiler (src/prof.c): which call stacks hold the memory. With profiling on,
 * every request leaves the fast path (ta_tls.small_max is 0 on the threads it samples) and the
 * router's slow path counts its bytes down. A sampled block of a bin class comes from the profiler
 * arena, which no thread owns, so its free always takes the remote free (arenas/page.c), which
 * tells the profiler; a sampled block of the mmap path is a mapping like any other of its size, and
 * the router's slow free tells the profiler. Profiling off, nothing here runs on a fast path. */
#ifndef TA_PROF_H
#define TA_PROF_H

#include <stdatomic.h>

#include "arenas/arena.h" /* ta_tls */
#include "src/common.h"
#include "src/config.h"

#pragma GCC visibility push(hidden)

#define TA_PROF_FRAMES 64

/* Sampled blocks still live, process-wide: the slow free asks the profiler only while this is not
 * 0. Changed under the profiler's lock; read relaxed: a thread that frees a sampled block got it
 * from the thread that recorded it through some synchronisation after the recording, so it sees
 * the count of at least that block. */
extern _Atomic size_t ta_prof_live;

TA_INLINE bool ta_prof_on(void) { return atomic_load_explicit(&ta_config.prof, memory_order_relaxed) != 0; }

/* The calling thread takes the fast path again, or stops taking it, as profiling is off or on. The
 * router's malloc miss calls it, so every thread follows a change at its next slow path. */
TA_INLINE void ta_prof_thread_sync(void) { ta_tls.small_max = ta_prof_on() ? 0 : TA_SMALL_TABLE_MAX; }

/* Profiling is on and the calling thread asks for `size` bytes: counts them down; true when the
 * countdown ran out, and then ta_prof_tick_slow decides whether this request is sampled. */
TA_INLINE bool ta_prof_countdown(size_t size) {
  ta_tls.prof_left -= (int64_t)size;
  return ta_tls.prof_left <= 0;
}
bool ta_prof_tick_slow(void);
/* Both: whether to sample this request. */
TA_INLINE bool ta_prof_tick(size_t size) { return ta_unlikely(ta_prof_countdown(size)) && ta_prof_tick_slow(); }

/* Records p, a block of `size` bytes just allocated for the caller whose return address is `caller`
 * (the first frame kept; frames above it are tamalloc's own). */
void ta_prof_record(void *p, size_t size, void *caller);
/* p is being freed: forgets it if it is a sampled block. True if it was. */
bool ta_prof_forget(const void *p);
/* Profiling on, and ta_prof_tick said to sample a request of `size` bytes whose bin class is cls:
 * a block of that class from the profiler arena (src/prof.c), recorded. NULL with errno ENOMEM. */
void *ta_prof_malloc_arena(size_t cls, size_t size, void *caller);
/* realloc(p, size) of p, a block on `page`, a page of the profiler arena: the block stays if `keep`
 * (the router's rule for a bin block that still fits) or if it can change class where it is; then
 * its old sample is forgotten and the new size counted down like a new request. False (nothing
 * changed) when the block must move. */
bool ta_prof_realloc_in_place(ta_page_t *page, void *p, size_t size, bool keep, void *caller);
/* Fork handlers (protocol in src/init.c): the profiler's lock, last in the lock order. */
void ta_prof_fork(ta_fork_phase_t phase);

#pragma GCC visibility pop
#endif
