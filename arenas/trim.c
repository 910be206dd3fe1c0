/* Trim: giving memory back to the OS on time.
 *
 * Policy (ta_trim_due, ta_trim_brk_keep) is a pure function of unit masks, time stamps and a clock,
 * so tests drive it with a clock of their own. The mechanism (ta_trim_arena) takes an arena's
 * seg_lock, asks the policy which free units are due, takes them out of the free mask (so nobody
 * allocates them meanwhile), drops the lock, then releases them: madvise(MADV_DONTNEED) inside a
 * segment, munmap of a whole empty segment, or a lower break at the top of the brk heap. Then it
 * puts the purged units back as free and clean.
 *
 * When does it run? Free units are stamped when they become free; they are due once they have been
 * free for the decay time (TAMALLOC_DECAY_MS, 1 s by default), so a burst of free-then-malloc
 * reuses them without a syscall. A pass runs (1) from the owner's slow path when it returns a span
 * and half a decay period passed since its last pass, and (2) from a background thread, started the
 * first time a span is returned, which wakes every half decay period and passes over every arena:
 * a program that frees a lot and then sleeps still sees its RSS fall, and arenas in the pool (their
 * threads exited) are purged on the same schedule. TAMALLOC_BACKGROUND_THREAD=0 keeps the thread
 * from starting (purging then happens on slow paths only). Purging never runs on the malloc/free fast paths. */
#include "trim.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "large.h"
#include "os.h"
#include "page.h"

static _Atomic size_t purged_bytes; /* bytes given back so far */
static _Atomic size_t purge_calls;  /* release operations (madvise, munmap, brk) so far */
static _Atomic int bg_state;        /* 0 not started, 1 running, 2 failed */
/* Set when there is memory worth purging on schedule (a second segment, a retained mapping). The
 * thread is started at the top of the next malloc slow path, where the calling thread holds no lock
 * and its arena is between operations: pthread_create allocates, and that allocation re-enters
 * tamalloc. Starting it from a free path instead would hand a just-freed span straight to
 * pthread_create's own allocations and hide a double free of that span's block. */
_Atomic bool ta_trim_bg_wanted;

void ta_trim_totals(size_t *bytes, size_t *calls) {
  *bytes = atomic_load_explicit(&purged_bytes, memory_order_relaxed);
  *calls = atomic_load_explicit(&purge_calls, memory_order_relaxed);
}

uint32_t ta_trim_clock(void) { return ta_os_clock_ms(); }

uint64_t ta_trim_due(uint64_t dirty, const uint32_t since[TA_UNITS], uint32_t now, long decay_ms) {
  if (decay_ms < 0) return 0;
  if (decay_ms == 0) return dirty;
  uint64_t due = 0;
  for (uint64_t m = dirty; m; m &= m - 1) {
    unsigned u = (unsigned)__builtin_ctzll(m);
    if ((uint32_t)(now - since[u]) >= (uint64_t)decay_ms) due |= (uint64_t)1 << u;
  }
  return due;
}

unsigned ta_trim_brk_keep(unsigned mapped, unsigned used_end, bool tail_due, size_t trim_threshold,
                          size_t top_pad) {
  if (!tail_due || used_end >= mapped) return mapped;
  if ((size_t)(mapped - used_end) * TA_UNIT_SIZE <= trim_threshold) return mapped;
  size_t pad_units = (top_pad + TA_UNIT_SIZE - 1) / TA_UNIT_SIZE;
  size_t keep = used_end + pad_units;
  return keep < mapped ? (unsigned)keep : mapped;
}

/* One segment's share of a pass: decided under seg_lock, carried out after. */
typedef struct {
  ta_segment_t *seg;
  uint64_t purge;      /* units to madvise */
  uint8_t cut_from;    /* brk top: units [cut_from, cut_to) go back by lowering the break */
  uint8_t cut_to;
  bool release;        /* the whole segment goes back */
} trim_job_t;
#define TA_TRIM_BATCH 32

/* madvise each run of consecutive units in mask. */
static size_t purge_units(ta_segment_t *seg, uint64_t mask) {
  size_t bytes = 0;
  while (mask) {
    unsigned from = (unsigned)__builtin_ctzll(mask);
    uint64_t run = ~(mask >> from);
    unsigned to = run ? from + (unsigned)__builtin_ctzll(run) : TA_UNITS;
    size_t len = (size_t)(to - from) * TA_UNIT_SIZE;
    if (ta_os_purge((char *)seg + (size_t)from * TA_UNIT_SIZE, len)) bytes += len;
    atomic_fetch_add_explicit(&purge_calls, 1, memory_order_relaxed);
    mask = to >= TA_UNITS ? 0 : mask & (~(uint64_t)0 << to);
  }
  return bytes;
}

/* seg_lock held: decide what to do with one segment. */
static bool plan_segment(ta_arena_t *arena, ta_segment_t *seg, uint32_t now, long decay, bool force,
                         size_t top_pad, trim_job_t *job) {
  uint64_t due = force ? seg->dirty_units : ta_trim_due(seg->dirty_units, seg->dirty_since, now, decay);
  uint64_t all = ta_units_below(seg->mapped_units);
  bool empty = seg->free_units == all;
  bool all_due = (seg->dirty_units & ~due) == 0;
  bool brk_top = seg->origin == TA_SEG_BRK && ta_seg_is_brk_top(seg);
  *job = (trim_job_t){.seg = seg};
  if (empty && all_due && (seg->origin == TA_SEG_MMAP || (brk_top && top_pad == 0))) {
    ta_seg_unlink_locked(arena, seg);
    job->release = true;
    return true;
  }
  if (brk_top) {
    uint64_t in_use = (all & ~seg->free_units) | 1;
    unsigned used_end = 64u - (unsigned)__builtin_clzll(in_use);
    uint64_t tail = all & ~ta_units_below(used_end);
    bool tail_due = (tail & seg->dirty_units & ~due) == 0;
    size_t threshold = force ? 0 : atomic_load_explicit(&ta_config.trim_threshold, memory_order_relaxed);
    unsigned keep = ta_trim_brk_keep(seg->mapped_units, used_end, tail_due, threshold, top_pad);
    if (keep < seg->mapped_units) {
      uint64_t cut = all & ~ta_units_below(keep);
      job->cut_from = (uint8_t)keep;
      job->cut_to = seg->mapped_units;
      seg->free_units &= ~cut;
      seg->dirty_units &= ~cut;
      seg->mapped_units = (uint8_t)keep;
      due &= ~cut;
    }
  }
  job->purge = due;
  seg->free_units &= ~due;
  seg->dirty_units &= ~due;
  return job->purge != 0 || job->cut_from != job->cut_to;
}

size_t ta_trim_arena(ta_arena_t *arena, uint32_t now, bool force, size_t top_pad) {
  long decay = atomic_load_explicit(&ta_config.decay_ms, memory_order_relaxed);
  if (!force && decay < 0) return 0;
  /* Passes over one arena run one at a time: a job holds units (or a whole unlinked segment) out of
   * the masks between its planning and its return, and a second pass must not plan around that
   * (seen: a segment released by one pass while another still had a job on it). A scheduled pass
   * that finds another running just skips this arena; malloc_trim waits for it. The flag is not a
   * lock: a pass makes system calls (munmap, brk, madvise) and takes seg_lock, and a fork handler
   * or another thread must never wait behind those. In a fork child a pass that was running is
   * gone: the units it held out of the masks stay out (free memory lost to the child, no block). */
  if (arena->tainted) return 0; /* a fork child's arena whose lists may be half edited */
  if (!ta_arena_trim_claim(arena, force)) return 0;
  size_t released = 0;
  for (;;) {
    trim_job_t jobs[TA_TRIM_BATCH];
    unsigned n = 0;
    bool more = false;
    ta_lock(&arena->seg_lock);
    /* Only segments with free units have anything to give back. */
    for (ta_segment_t *seg = arena->segments_tail; seg != NULL;) {
      ta_segment_t *prev = seg->prev;
      if (n == TA_TRIM_BATCH) {
        more = true;
        break;
      }
      if (plan_segment(arena, seg, now, decay, force, top_pad, &jobs[n])) n++;
      seg = prev;
    }
    ta_unlock(&arena->seg_lock);

    bool cut_ok[TA_TRIM_BATCH];
    for (unsigned i = 0; i < n; i++) {
      trim_job_t *j = &jobs[i];
      cut_ok[i] = true;
      if (j->release) {
        size_t bytes = (size_t)j->seg->mapped_units * TA_UNIT_SIZE;
        atomic_fetch_add_explicit(&purge_calls, 1, memory_order_relaxed);
        if (ta_seg_release(j->seg)) {
          released += bytes;
          j->seg = NULL; /* gone: nothing to put back */
          continue;
        }
        /* Still mapped (munmap failed, or the break moved meanwhile): it goes back to the arena
         * below, purged. Unlinked, it is this thread's alone until then. */
        j->purge = j->seg->free_units;
        j->seg->free_units = 0;
        j->seg->dirty_units = 0;
      }
      if (j->cut_from != j->cut_to) {
        uintptr_t base = (uintptr_t)j->seg;
        atomic_fetch_add_explicit(&purge_calls, 1, memory_order_relaxed);
        cut_ok[i] = ta_seg_brk_cut(base + (size_t)j->cut_to * TA_UNIT_SIZE,
                                   base + (size_t)j->cut_from * TA_UNIT_SIZE);
        if (cut_ok[i]) released += (size_t)(j->cut_to - j->cut_from) * TA_UNIT_SIZE;
      }
      if (j->purge) released += purge_units(j->seg, j->purge);
    }

    ta_lock(&arena->seg_lock);
    for (unsigned i = 0; i < n; i++) {
      trim_job_t *j = &jobs[i];
      if (j->seg == NULL) continue;
      if (j->release) ta_seg_link_locked(arena, j->seg); /* a release that failed */
      j->seg->free_units |= j->purge;
      ta_seg_requeue_locked(arena, j->seg);
      if (!cut_ok[i]) {
        /* Someone else moved the break: the units stay mapped, and stay ours. */
        uint64_t cut = ta_units_below(j->cut_to) & ~ta_units_below(j->cut_from);
        j->seg->free_units |= cut;
        j->seg->dirty_units |= cut;
        if (j->seg->mapped_units == j->cut_from) j->seg->mapped_units = j->cut_to;
        ta_seg_requeue_locked(arena, j->seg);
      }
    }
    ta_unlock(&arena->seg_lock);
    if (!more) break;
  }
  ta_arena_trim_release(arena);
  atomic_fetch_add_explicit(&purged_bytes, released, memory_order_relaxed);
  return released;
}

size_t ta_trim_pages(ta_arena_t *arena, bool deep) {
  size_t released = 0;
  if (atomic_load_explicit(&arena->xfree, memory_order_relaxed) != 0) ta_arena_drain_xfree(arena);
  for (unsigned cls = 0; cls < TA_CLASSES; cls++) {
    ta_bin_clear_current(arena, cls);
    for (ta_page_t *page = arena->bins[cls]; page != NULL;) {
      ta_page_t *next = page->next;
      released += ta_page_trim(page, deep);
      page = next;
    }
  }
  atomic_fetch_add_explicit(&purged_bytes, released, memory_order_relaxed);
  return released;
}

static void *bg_main(void *arg) {
  (void)arg;
  for (;;) {
    long decay = atomic_load_explicit(&ta_config.decay_ms, memory_order_relaxed);
    long interval = decay <= 0 ? 1000 : decay / 2;
    if (interval < 10) interval = 10;
    if (interval > 1000) interval = 1000;
    struct timespec ts = {.tv_sec = interval / 1000, .tv_nsec = (interval % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    if (decay < 0) continue;
    ta_trim_run_pass();
  }
  return NULL;
}

static void pooled_pages(ta_arena_t *arena, void *ctx) {
  (void)ctx;
  ta_trim_pages(arena, false);
}

static void arena_pass(ta_arena_t *arena, void *ctx) {
  uint32_t now = *(uint32_t *)ctx;
  ta_trim_arena(arena, now, false, atomic_load_explicit(&ta_config.top_pad, memory_order_relaxed));
}

/* One scheduled pass over every arena: pooled arenas' empty pages first go back to their segments. */
void ta_trim_run_pass(void) {
  ta_arena_foreach_pooled(pooled_pages, NULL);
  ta_arena_with_shared(pooled_pages, NULL);
  uint32_t now = ta_trim_clock();
  ta_arena_foreach(arena_pass, &now);
  size_t released = ta_large_cache_trim(now, atomic_load_explicit(&ta_config.decay_ms, memory_order_relaxed), false);
  atomic_fetch_add_explicit(&purged_bytes, released, memory_order_relaxed);
}

static void bg_start(void) {
  int expect = 0;
  if (!atomic_compare_exchange_strong(&bg_state, &expect, 1)) return;
  if (!atomic_load_explicit(&ta_config.background_thread, memory_order_relaxed)) {
    atomic_store(&bg_state, 0); /* it may be turned on later */
    return;
  }
  /* The thread must not take the program's signals. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  pthread_t tid;
  if (pthread_create(&tid, &attr, bg_main, NULL) != 0) atomic_store(&bg_state, 2);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void ta_trim_wake(void) { atomic_store_explicit(&ta_trim_bg_wanted, true, memory_order_relaxed); }

void ta_trim_start_wanted(void) {
  atomic_store_explicit(&ta_trim_bg_wanted, false, memory_order_relaxed);
  if (atomic_load_explicit(&bg_state, memory_order_relaxed) == 0 &&
      atomic_load_explicit(&ta_config.decay_ms, memory_order_relaxed) > 0)
    bg_start();
}

void ta_trim_fork_child(void) { atomic_store(&bg_state, 0); }

void ta_trim_after_span_free(ta_arena_t *arena, uint32_t now) {
  long decay = atomic_load_explicit(&ta_config.decay_ms, memory_order_relaxed);
  if (decay < 0) return;
  if (decay == 0 || (uint32_t)(now - arena->last_trim) >= (uint64_t)decay / 2) {
    arena->last_trim = now;
    ta_trim_arena(arena, now, false, atomic_load_explicit(&ta_config.top_pad, memory_order_relaxed));
  }
}

/* Everything now. A pass releases the brk heap's top segment only (the one below becomes the top
 * once the break has moved), so passes repeat while they give whole segments back. (Not merely
 * while they release bytes: a segment whose munmap fails is purged instead, every pass.) */
static void arena_force(ta_arena_t *arena, void *ctx) {
  size_t *acc = ctx;
  for (;;) {
    size_t segments = ta_seg_count(NULL);
    size_t got = ta_trim_arena(arena, 0, true, acc[0]);
    acc[1] += got;
    if (got == 0 || ta_seg_count(NULL) >= segments) break;
  }
}

static void pooled_deep(ta_arena_t *arena, void *ctx) { *(size_t *)ctx += ta_trim_pages(arena, true); }

int ta_trim_now(size_t pad) {
  ta_busy_enter(); /* it edits this thread's bins (common.h) */
  size_t acc[2] = {pad, 0};
  ta_arena_t *own = ta_tls_arena;
  if (own != &ta_arena_empty) acc[1] += ta_trim_pages(own, true);
  ta_arena_foreach_pooled(pooled_deep, &acc[1]);
  ta_arena_with_shared(pooled_deep, &acc[1]);
  ta_arena_foreach(arena_force, acc);
  size_t large = ta_large_cache_trim(0, 0, true);
  atomic_fetch_add_explicit(&purged_bytes, large, memory_order_relaxed);
  ta_busy_leave();
  return acc[1] + large > 0;
}
