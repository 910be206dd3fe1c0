/* The trim scheduler: when free memory goes back to the OS (contract in sched.h).
 *
 * The policy (arenas/trim.h) says which units are due, the mechanism (ta_seg_trim, arenas/segment.c)
 * releases them; this file decides when passes run. (1) The owner of an arena runs one from its
 * malloc slow path, amortised (arenas/arena.c: a free only marks the purge pending). (2) A background
 * thread, started the first time there is memory worth purging on schedule (a second segment, a
 * retained large mapping: ta_seg_sched_wanted, polled by the router's malloc slow path), wakes every
 * half decay period and passes over every arena: a program that frees a lot and then sleeps still
 * sees its RSS fall, and arenas in the pool (their threads exited) have their remote frees collected
 * and are purged on the same schedule. TAMALLOC_BACKGROUND_THREAD=0 keeps the thread from starting.
 * (3) malloc_trim releases everything now. Purging never runs on the malloc/free fast paths. */
#include "src/sched.h"

#include <signal.h>
#include <stdatomic.h>
#include <time.h>

#include "arenas/arena.h"
#include "arenas/trim.h"
#include "src/config.h"
#include "src/large.h"

static _Atomic int bg_state; /* 0 not started, 1 running, 2 failed */

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
    ta_sched_pass();
  }
  return NULL;
}

static void pooled_pages(ta_arena_t *arena, void *ctx) {
  (void)ctx;
  ta_arena_collect(arena, false);
}

/* Pooled and shared arenas: the OS pages of their idle pages that hold only free blocks too. */
static void pooled_idle(ta_arena_t *arena, void *ctx) {
  ta_arena_collect_idle(arena, *(uint32_t *)ctx, true, false);
}

static void arena_pass(ta_arena_t *arena, void *ctx) {
  uint32_t now = *(uint32_t *)ctx;
  /* Bound arenas: the collector stands in for an owner that is idle (arenas/arena.c). */
  if (__atomic_load_n(&arena->state, __ATOMIC_RELAXED) == TA_ARENA_BOUND) ta_arena_collect_idle(arena, now, false, false);
  ta_seg_trim(arena, now, false, atomic_load_explicit(&ta_config.top_pad, memory_order_relaxed), 0);
}

/* One scheduled pass over every arena: pooled arenas' empty pages first go back to their segments. */
void ta_sched_pass(void) {
  uint32_t now = ta_trim_clock();
  ta_arena_foreach_pooled(pooled_pages, NULL);
  ta_arena_with_shared(pooled_pages, NULL);
  ta_arena_foreach_pooled(pooled_idle, &now);
  ta_arena_with_shared(pooled_idle, &now);
  ta_arena_foreach(arena_pass, &now);
  ta_seg_count_released(ta_large_cache_trim(now, atomic_load_explicit(&ta_config.decay_ms, memory_order_relaxed), false));
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

void ta_sched_wake(void) { atomic_store_explicit(&ta_seg_sched_wanted, true, memory_order_relaxed); }

void ta_sched_start_wanted(void) {
  if (ta_tls_arena == &ta_arena_empty || ta_tls_depth != 0) return; /* not bound, or mid-operation */
  atomic_store_explicit(&ta_seg_sched_wanted, false, memory_order_relaxed);
  if (atomic_load_explicit(&bg_state, memory_order_relaxed) == 0 &&
      atomic_load_explicit(&ta_config.decay_ms, memory_order_relaxed) > 0)
    bg_start();
}

void ta_sched_fork_child(void) { atomic_store(&bg_state, 0); }

/* Everything now. A pass releases the brk heap's top segment only (the one below becomes the top
 * once the break has moved), so passes repeat while they give whole segments back. (Not merely
 * while they release bytes: a segment whose munmap fails is purged instead, every pass.) */
static void arena_force(ta_arena_t *arena, void *ctx) {
  size_t *acc = ctx;
  for (;;) {
    size_t segments = ta_seg_count(NULL);
    size_t got = ta_seg_trim(arena, 0, true, acc[0], 0);
    acc[1] += got;
    if (got == 0 || ta_seg_count(NULL) >= segments) break;
  }
}

static void pooled_deep(ta_arena_t *arena, void *ctx) { *(size_t *)ctx += ta_arena_collect(arena, true); }

/* Arenas other threads own: the collector, waiting for an owner's slow path to end. */
static void bound_deep(ta_arena_t *arena, void *ctx) {
  if (arena != ta_tls_arena && __atomic_load_n(&arena->state, __ATOMIC_RELAXED) == TA_ARENA_BOUND)
    *(size_t *)ctx += ta_arena_collect_idle(arena, ta_trim_clock(), true, true);
}

int ta_sched_trim_now(size_t pad) {
  ta_busy_enter(); /* it edits this thread's bins (common.h) */
  size_t acc[2] = {pad, 0};
  ta_arena_t *own = ta_tls_arena;
  if (own != &ta_arena_empty) acc[1] += ta_arena_collect(own, true);
  ta_arena_foreach_pooled(pooled_deep, &acc[1]);
  ta_arena_with_shared(pooled_deep, &acc[1]);
  ta_arena_foreach(bound_deep, &acc[1]);
  ta_arena_foreach(arena_force, acc);
  size_t large = ta_large_cache_trim(0, 0, true);
  ta_seg_count_released(large);
  ta_busy_leave();
  return acc[1] + large > 0;
}
