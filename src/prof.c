/* The sampling heap profiler (contract in prof.h): the byte countdown, stack capture, the table of
 * live sampled blocks by stack, and its output (heap profiles pprof reads, the leak report).
 *
 * Sampling: every byte allocated is a sample point with probability 1/R (R = TAMALLOC_PROF_SAMPLE),
 * so the gaps between sample points are exponential with mean R; a block holding at least one
 * point is sampled, with probability 1 - exp(-size/R), and stands for size / (1 - exp(-size/R))
 * bytes. The countdown draws the next gap when a sample is taken (memoryless: the rest of the
 * sampled block need not be counted).
 *
 * Memory: the tables live in mappings of their own (ta_os_map), never in tamalloc's heap, and are
 * only made at the first sample, so a process that does not profile has none.
 *
 * Where sampled blocks live, and how their frees are found (the rule; measured with
 * benchmarks/ab-preload.py, README "Heap profiler cost"). A sampled request the router would give
 * to the bins gets a block of the same class from the profiler arena, an arena no thread owns
 * (state "shared", made at the first such sample): its pages are reused like any arena's, where a
 * mapping per sample had the kernel fault in and zero fresh pages (mixed_sizes 7-13 times slower).
 * Its owner operations (malloc, realloc in place) run under prof_lock, the calling thread's TLS
 * pointing at it meanwhile. No thread's ta_tls_arena is ever the profiler arena outside prof_lock,
 * so every free of its blocks takes the remote free, where ta_page_free_remote compares the page's
 * arena with ta_prof_arena and calls ta_prof_forget first: the local free fast path has no test,
 * and profiling off costs nothing. The freed blocks reach their pages through the xfree lists,
 * collected by the profiler arena's own slow path, as the shared arena's are. A sampled request
 * for the mmap path gets the mapping it would get unsampled; ta_router_free_slow forgets it while
 * ta_prof_live is not 0. An unsampled block never lives in the profiler arena, except one a realloc
 * kept in place whose new size was not sampled (its free then forgets nothing).
 *
 * Invariants, under prof_lock: every live sampled block is in exactly one bucket of `samples`; a
 * stack's live_n / live_bytes / live_est are the sums over the samples pointing at it; ta_prof_live
 * is the number of samples; a block is recorded before the malloc that made it returns, and
 * forgotten before its free lets the memory go. prof_lock is first in tamalloc's lock order
 * (src/init.c): its holder takes the arena locks below it as the profiler arena's owner, maps
 * table memory and writes profiles with raw system calls; nobody takes it holding another tamalloc
 * lock. No lock is held while a stack is unwound (the unwinder may take the loader's lock, whose
 * holder may be allocating).
 *
 * The unwinder (_Unwind_Backtrace, libgcc_s) is not linked: a process that never profiles does not
 * map it (about 100 KiB resident at start-up in every program). It is loaded with dlopen only at
 * points where the loader may be entered: this file's constructor, when TAMALLOC_PROF is set; else
 * the first capture whose caller is not the dynamic loader itself (profiling turned on by mallopt).
 * What must never happen is a dlopen from inside the loader (one of its own mallocs, its lists of
 * loaded objects half edited; glibc may abort on the inconsistency): that is why glibc's backtrace(),
 * which dlopens libgcc_s at its first call, is not safe inside malloc. Constructors, which a dlopen
 * runs, may themselves call dlopen. A capture before the constructor, or whose caller is the loader,
 * keeps one frame: its caller. */
#include "src/prof.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <unwind.h> /* types only: the functions are looked up (unwinder_load) */

#include "src/format.h"
#include "arenas/bind.h"
#include "src/os.h"
#include "tamalloc.h"

_Atomic size_t ta_prof_live;
/* Nonzero while this thread is inside the profiler (capture, record, dump, report): it samples
 * nothing then, so a malloc from the unwinder, from a signal handler that interrupted a capture or
 * from the fork child of one never re-enters the profiler. */
static __thread unsigned tls_guard __attribute__((tls_model("initial-exec")));
static __thread bool tls_seeded __attribute__((tls_model("initial-exec")));
static __thread uint64_t tls_rng __attribute__((tls_model("initial-exec")));
/* Threads seeded so far: each thread's generator starts from its ordinal, so a run of the same
 * program samples the same blocks (a test's result does not depend on luck). */
static _Atomic uint64_t seeds;

typedef struct ta_prof_stack_s ta_prof_stack_t;
struct ta_prof_stack_s {
  ta_prof_stack_t *next; /* prof_lock: next in its hash bucket */
  uint64_t hash;         /* of the frames */
  size_t live_n;         /* prof_lock: live samples from this stack */
  size_t live_bytes;     /* prof_lock: their requested bytes */
  double live_est;       /* prof_lock: the bytes they stand for (sum of size / P(sampled)) */
  double live_est_n;     /* prof_lock: the blocks they stand for (sum of 1 / P(sampled)) */
  size_t alloc_n;        /* prof_lock: samples ever taken from this stack */
  size_t alloc_bytes;    /* prof_lock: their requested bytes */
  bool reported;         /* prof_lock: the leak report (at exit, once) took it already */
  uint32_t depth;        /* frames in pc */
  uintptr_t pc[];        /* return addresses, innermost first */
};

typedef struct ta_prof_sample_s ta_prof_sample_t;
struct ta_prof_sample_s {
  ta_prof_sample_t *next;  /* prof_lock: next in its bucket, or on the free list */
  uintptr_t ptr;           /* the block */
  ta_prof_stack_t *stack;  /* where it was allocated */
  size_t size;             /* bytes requested */
  double weight;           /* 1 / P(sampled) for its size at the rate it was sampled at */
};

#define STACK_BUCKETS 4096u
#define SAMPLE_BUCKETS 16384u
#define BUMP_CHUNK ((size_t)1 << 20)

static ta_lock_t prof_lock = TA_LOCK_INIT;
static bool fork_taken;                      /* fork handlers: whether they took prof_lock */
static ta_prof_stack_t **stacks;             /* prof_lock: STACK_BUCKETS chains; NULL until used */
static ta_prof_sample_t **samples;           /* prof_lock: SAMPLE_BUCKETS chains */
static ta_prof_sample_t *free_samples;       /* prof_lock: recycled sample records */
static char *bump, *bump_end;                /* prof_lock: the current chunk of table memory */
static double live_est;                      /* prof_lock: estimated live bytes, all stacks */
static double next_interval_dump;            /* prof_lock: live_est that triggers a numbered dump */
static unsigned interval_seq;                /* prof_lock: numbered dumps written */

/* Table memory, never returned (stacks are few; sample records are recycled). */
static void *bump_alloc(size_t n) {
  n = ta_align_up(n, 16);
  if ((size_t)(bump_end - bump) < n) {
    size_t chunk = n > BUMP_CHUNK ? ta_align_up(n, TA_PAGE) : BUMP_CHUNK;
    char *m = ta_os_map(chunk);
    if (m == NULL) return NULL;
    bump = m;
    bump_end = m + chunk;
  }
  void *p = bump;
  bump += n;
  return p;
}

/* ---- the countdown ---- */

static uint64_t rng_next(void) {
  /* splitmix64: a full-period 64-bit generator, plenty for choosing sample points */
  uint64_t z = (tls_rng += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

/* ln(x) for x in (0, 1], without libm: x = m * 2^e with m in [sqrt(1/2), sqrt(2)), and
 * ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, whose series converges to 1e-10 in six
 * terms. */
static double prof_ln(double x) {
  uint64_t bits;
  memcpy(&bits, &x, sizeof bits);
  int e = (int)((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & ((UINT64_C(1) << 52) - 1)) | (UINT64_C(1023) << 52);
  double m;
  memcpy(&m, &bits, sizeof m);
  if (m > 1.4142135623730951) {
    m /= 2;
    e++;
  }
  double s = (m - 1) / (m + 1), s2 = s * s;
  double series = 1 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9 + s2 / 11))));
  return e * 0.6931471805599453 + 2 * s * series;
}

/* 1 - exp(-x) for x >= 0, without libm: the alternating series while x < 1 (no cancellation for
 * small x), else exp(-x) = exp(-x/2^k)^(2^k) with x/2^k < 1. */
static double one_minus_exp_neg(double x) {
  if (x > 700) return 1;
  unsigned k = 0;
  double y = x;
  while (y >= 1) {
    y /= 2;
    k++;
  }
  double sum = 0, term = y;
  for (int i = 1; i <= 20 && term != 0; i++) {
    sum += term;
    term *= -y / (i + 1);
  }
  if (k == 0) return sum;
  double e = 1 - sum; /* exp(-y) */
  while (k--) e *= e;
  return 1 - e;
}

static size_t sample_rate(void) { return atomic_load_explicit(&ta_config.prof_sample, memory_order_relaxed); }

/* The next gap between sample points: exponential with mean R, at least one byte. */
static int64_t next_gap(void) {
  double u = (double)((rng_next() >> 11) + 1) * 0x1p-53; /* (0, 1] */
  double gap = -prof_ln(u) * (double)sample_rate();
  if (gap < 1) return 1;
  if (gap > 0x1p62) return INT64_MAX / 2;
  return (int64_t)gap;
}

bool ta_prof_tick_slow(void) {
  /* Inside the profiler: no sample, and the countdown stays run out, so the thread's first request
   * after it leaves is sampled in place of the one skipped here. */
  if (tls_guard) return false;
  if (!tls_seeded) {
    /* The thread's first request while profiling: the first gap starts here. */
    if (tls_rng == 0) tls_rng = (atomic_fetch_add_explicit(&seeds, 1, memory_order_relaxed) + 1) * 0x2545f4914f6cdd1du;
    tls_seeded = true;
    ta_tls.prof_left = next_gap();
    return false;
  }
  ta_tls.prof_left = next_gap();
  return true;
}

/* ---- the unwinder, loaded when needed ---- */

typedef _Unwind_Reason_Code (*backtrace_fn)(_Unwind_Trace_Fn, void *);
typedef _Unwind_Ptr (*getip_fn)(struct _Unwind_Context *);
/* Set once, getip first: a thread that sees unwind_backtrace (acquire) sees unwind_getip too. */
static _Atomic(backtrace_fn) unwind_backtrace;
static _Atomic(getip_fn) unwind_getip;
static _Atomic bool unwinder_failed;   /* dlopen or dlsym failed: never tried again */
static _Atomic bool unwinder_may_load; /* the constructor has run: a capture may load it */
/* The dynamic loader's image, [lo, hi), from its ELF program headers (found at start-up): a capture
 * whose caller is in it may be inside dlopen, and loads nothing. */
static uintptr_t ldso_lo, ldso_hi;

static void ldso_find(void) {
  uintptr_t base = (uintptr_t)getauxval(AT_BASE); /* 0 in a program without an interpreter */
  if (base == 0) return;
  const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)base;
  const ElfW(Phdr) *ph = (const ElfW(Phdr) *)(base + eh->e_phoff);
  uintptr_t hi = base;
  for (unsigned i = 0; i < eh->e_phnum; i++)
    if (ph[i].p_type == PT_LOAD && base + ph[i].p_vaddr + ph[i].p_memsz > hi) hi = base + ph[i].p_vaddr + ph[i].p_memsz;
  ldso_lo = base;
  ldso_hi = hi;
}

/* No lock held, and not from inside the loader (see the top of the file). Two threads may both
 * get here: dlopen serialises them and counts the second reference, harmlessly. */
static void unwinder_load(void) {
  tls_guard++; /* the loader's own mallocs are not sampled */
  void *lib = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_LOCAL);
  void *bt = lib != NULL ? dlsym(lib, "_Unwind_Backtrace") : NULL;
  void *ip = lib != NULL ? dlsym(lib, "_Unwind_GetIP") : NULL;
  if (bt != NULL && ip != NULL) {
    atomic_store_explicit(&unwind_getip, (getip_fn)ip, memory_order_relaxed);
    atomic_store_explicit(&unwind_backtrace, (backtrace_fn)bt, memory_order_release);
  } else {
    atomic_store_explicit(&unwinder_failed, true, memory_order_relaxed);
  }
  tls_guard--;
}

/* The unwinder, loaded now if this capture may load it; NULL if it cannot be had (yet). */
static backtrace_fn unwinder(uintptr_t caller) {
  backtrace_fn bt = atomic_load_explicit(&unwind_backtrace, memory_order_acquire);
  if (ta_likely(bt != NULL)) return bt;
  if (!atomic_load_explicit(&unwinder_may_load, memory_order_relaxed) ||
      atomic_load_explicit(&unwinder_failed, memory_order_relaxed) || (caller >= ldso_lo && caller < ldso_hi))
    return NULL;
  unwinder_load();
  return atomic_load_explicit(&unwind_backtrace, memory_order_acquire);
}

/* At start-up, outside malloc: where the loader is, and the unwinder now if TAMALLOC_PROF asks for
 * profiling from the start (set at all: its value is config.c's to judge). */
__attribute__((constructor)) static void prof_at_start(void) {
  ldso_find();
  const char *env = getenv("TAMALLOC_PROF");
  if (ta_prof_on() || (env != NULL && *env != '\0' && strcmp(env, "0") != 0)) unwinder_load();
  atomic_store_explicit(&unwinder_may_load, true, memory_order_release);
}

/* ---- capture ---- */

typedef struct walk_s {
  uintptr_t pc[TA_PROF_FRAMES + 16]; /* frames seen, innermost first: tamalloc's own, then the caller's */
  unsigned n;
} walk_t;

static _Unwind_Reason_Code walk_frame(struct _Unwind_Context *ctx, void *arg) {
  walk_t *w = arg;
  uintptr_t ip = atomic_load_explicit(&unwind_getip, memory_order_relaxed)(ctx);
  if (ip == 0) return _URC_END_OF_STACK;
  w->pc[w->n++] = ip;
  return w->n == sizeof w->pc / sizeof w->pc[0] ? _URC_END_OF_STACK : _URC_NO_REASON;
}

/* The stack from `caller` outwards; all of it if caller is not among the first frames (a build
 * without tail calls: then the standard name's own frame comes first, which pprof drops by name).
 * Without the unwinder, the caller alone. */
static unsigned capture(uintptr_t *out, uintptr_t caller) {
  backtrace_fn bt = unwinder(caller);
  if (bt == NULL) {
    out[0] = caller;
    return caller != 0;
  }
  walk_t w;
  w.n = 0;
  bt(walk_frame, &w);
  unsigned from = 0;
  while (from < w.n && from < 16 && w.pc[from] != caller) from++;
  if (from == w.n || from == 16) from = 0;
  unsigned depth = w.n - from < TA_PROF_FRAMES ? w.n - from : TA_PROF_FRAMES;
  memcpy(out, w.pc + from, depth * sizeof *out);
  return depth;
}

/* ---- the tables ---- */

static size_t sample_bucket(uintptr_t p) { return (size_t)((p >> 4) * 0x9e3779b97f4a7c15u >> 50) % SAMPLE_BUCKETS; }

static uint64_t stack_hash(const uintptr_t *pc, unsigned depth) {
  uint64_t h = depth;
  for (unsigned i = 0; i < depth; i++) h = (h ^ pc[i]) * 0x100000001b3u;
  return h ^ (h >> 29);
}

/* prof_lock held. */
static bool tables_ready(void) {
  if (samples != NULL) return true;
  stacks = bump_alloc(STACK_BUCKETS * sizeof *stacks);
  if (stacks == NULL) return false;
  samples = bump_alloc(SAMPLE_BUCKETS * sizeof *samples);
  return samples != NULL;
}

/* prof_lock held. */
static ta_prof_stack_t *stack_find(const uintptr_t *pc, unsigned depth) {
  uint64_t h = stack_hash(pc, depth);
  ta_prof_stack_t **head = &stacks[h % STACK_BUCKETS];
  for (ta_prof_stack_t *s = *head; s != NULL; s = s->next)
    if (s->hash == h && s->depth == depth && memcmp(s->pc, pc, depth * sizeof *pc) == 0) return s;
  ta_prof_stack_t *s = bump_alloc(sizeof *s + depth * sizeof *pc);
  if (s == NULL) return NULL;
  s->hash = h;
  s->depth = depth;
  memcpy(s->pc, pc, depth * sizeof *pc);
  s->next = *head;
  *head = s;
  return s;
}

static void interval_dump(unsigned seq);

/* What a sample records besides its address, taken before prof_lock (the unwinder may take the
 * loader's lock). */
typedef struct shot_s {
  uintptr_t pc[TA_PROF_FRAMES];
  unsigned depth;
  size_t size;
  double weight;
} shot_t;

static void shoot(shot_t *shot, size_t size, void *caller) {
  shot->depth = capture(shot->pc, (uintptr_t)caller);
  shot->size = size;
  shot->weight = 1 / one_minus_exp_neg((double)size / (double)sample_rate());
}

/* prof_lock held: enters p; returns the number of the interval dump it triggers, or 0. */
static unsigned record_locked(void *p, const shot_t *shot) {
  ta_prof_stack_t *stack = tables_ready() ? stack_find(shot->pc, shot->depth) : NULL;
  ta_prof_sample_t *s = free_samples;
  if (s != NULL)
    free_samples = s->next;
  else if (stack != NULL)
    s = bump_alloc(sizeof *s);
  if (s == NULL || stack == NULL) return 0; /* out of memory for the tables: the block goes unrecorded */
  size_t size = shot->size;
  double weight = shot->weight;
  *s = (ta_prof_sample_t){.ptr = (uintptr_t)p, .stack = stack, .size = size, .weight = weight};
  size_t b = sample_bucket(s->ptr);
  s->next = samples[b];
  samples[b] = s;
  stack->live_n++;
  stack->live_bytes += size;
  stack->live_est += weight * (double)size;
  stack->live_est_n += weight;
  stack->alloc_n++;
  stack->alloc_bytes += size;
  live_est += weight * (double)size;
  atomic_store_explicit(&ta_prof_live, ta_prof_live + 1, memory_order_relaxed);
  size_t interval = atomic_load_explicit(&ta_config.prof_interval, memory_order_relaxed);
  if (interval != 0 && live_est >= next_interval_dump + (double)interval) {
    next_interval_dump = live_est;
    return ++interval_seq;
  }
  return 0;
}

void ta_prof_record(void *p, size_t size, void *caller) {
  tls_guard++;
  shot_t shot;
  shoot(&shot, size, caller);
  ta_lock(&prof_lock);
  unsigned dump_seq = record_locked(p, &shot);
  ta_unlock(&prof_lock);
  if (dump_seq) interval_dump(dump_seq);
  tls_guard--;
}

/* prof_lock held: unlinks and returns p's record, or NULL. */
static ta_prof_sample_t *sample_take(uintptr_t p) {
  if (samples == NULL) return NULL;
  for (ta_prof_sample_t **at = &samples[sample_bucket(p)]; *at != NULL; at = &(*at)->next) {
    ta_prof_sample_t *s = *at;
    if (s->ptr != p) continue;
    *at = s->next;
    return s;
  }
  return NULL;
}

/* prof_lock held. */
static bool forget_locked(const void *p) {
  ta_prof_sample_t *s = sample_take((uintptr_t)p);
  if (s == NULL) return false;
  ta_prof_stack_t *st = s->stack;
  double est = s->weight * (double)s->size;
  st->live_n--;
  st->live_bytes -= s->size;
  st->live_est -= est;
  st->live_est_n -= s->weight;
  live_est -= est;
  s->next = free_samples;
  free_samples = s;
  atomic_store_explicit(&ta_prof_live, ta_prof_live - 1, memory_order_relaxed);
  return true;
}

bool ta_prof_forget(const void *p) {
  ta_lock(&prof_lock);
  bool found = forget_locked(p);
  ta_unlock(&prof_lock);
  return found;
}

/* ---- the profiler arena ---- */

_Atomic(ta_arena_t *) ta_prof_arena;

/* prof_lock held: the calling thread acts as the profiler arena's owner until arena_leave, through
 * the ordinary owner paths (its TLS points at the arena meanwhile, as for the shared arena in
 * arenas/bind.c). NULL without memory for the arena. */
static ta_arena_t *arena_enter(ta_arena_t **own) {
  ta_arena_t *a = atomic_load_explicit(&ta_prof_arena, memory_order_relaxed);
  if (a == NULL) {
    ta_lock(&ta_pool_lock);
    a = ta_arena_new(TA_ARENA_SHARED);
    ta_unlock(&ta_pool_lock);
    if (a == NULL) return NULL;
    atomic_store_explicit(&ta_prof_arena, a, memory_order_relaxed);
  }
  *own = ta_tls_arena;
  ta_tls_arena = a;
  return a;
}

static void arena_leave(ta_arena_t *own) { ta_tls_arena = own; }

void *ta_prof_malloc_arena(size_t cls, size_t size, void *caller) {
  tls_guard++;
  shot_t shot;
  shoot(&shot, size, caller);
  ta_lock(&prof_lock);
  ta_arena_t *own;
  ta_arena_t *a = arena_enter(&own);
  void *p = NULL;
  if (a != NULL) {
    p = ta_arena_alloc(a, cls);
    arena_leave(own);
  }
  unsigned dump_seq = p != NULL ? record_locked(p, &shot) : 0;
  ta_unlock(&prof_lock);
  if (dump_seq) interval_dump(dump_seq);
  tls_guard--;
  if (p == NULL) errno = ENOMEM;
  return p;
}

bool ta_prof_realloc_in_place(ta_page_t *page, void *p, size_t size, bool keep, void *caller) {
  ta_lock(&prof_lock);
  if (!keep) {
    /* capacity is the owner's to read: under prof_lock this thread is the profiler arena's owner */
    ta_arena_t *own = ta_tls_arena;
    ta_tls_arena = page->arena;
    keep = page->capacity == 1 && ta_arena_resize_in_place(page->arena, page, p, size);
    ta_tls_arena = own;
  }
  if (keep) forget_locked(p);
  ta_unlock(&prof_lock);
  if (keep && ta_prof_on() && ta_prof_tick(size)) ta_prof_record(p, size, caller);
  return keep;
}

void ta_prof_fork(ta_fork_phase_t phase) {
  bool whole = ta_fork_one(&prof_lock, &fork_taken, phase);
  if (phase < TA_FORK_CHILD) return;
  /* The child runs this after the arena layer's handler, which tainted an arena its owner left
   * mid-operation: a profiler arena left so (or whose lock was not taken) is dropped, its blocks
   * freed into it as remote frees of an orphaned arena from now on, and the next sample makes a
   * new one. */
  ta_arena_t *a = atomic_load_explicit(&ta_prof_arena, memory_order_relaxed);
  if (a != NULL && (!whole || a->tainted)) atomic_store_explicit(&ta_prof_arena, NULL, memory_order_relaxed);
  if (whole) return;
  /* A child whose parent held the lock mid-edit: start over with empty tables. The sampled blocks
   * stay valid blocks; their frees are simply not looked up any more. */
  stacks = NULL;
  samples = NULL;
  free_samples = NULL;
  bump = bump_end = NULL;
  live_est = next_interval_dump = 0;
  atomic_store_explicit(&ta_prof_live, 0, memory_order_relaxed);
}

/* ---- output ---- */

#define TA_STDERR ((void *)(intptr_t)2)

/* Writes a heap profile (pprof's legacy text format, sampling version 2: pprof scales each stack's
 * counts by 1 / (1 - exp(-avg_size / R)) itself) to fd, then this process's memory map. */
static void write_profile(int fd) {
  char buf[4096];
  ta_out_t o = {.buf = buf, .cap = sizeof buf, .flush = ta_out_fd_flush, .ctx = (void *)(intptr_t)fd};
  ta_lock(&prof_lock);
  size_t n = 0, bytes = 0, an = 0, abytes = 0;
  if (stacks != NULL)
    for (unsigned b = 0; b < STACK_BUCKETS; b++)
      for (ta_prof_stack_t *s = stacks[b]; s != NULL; s = s->next) {
        n += s->live_n;
        bytes += s->live_bytes;
        an += s->alloc_n;
        abytes += s->alloc_bytes;
      }
  ta_out_str(&o, "heap profile: ");
  ta_out_u(&o, n);
  ta_out_str(&o, ": ");
  ta_out_u(&o, bytes);
  ta_out_str(&o, " [ ");
  ta_out_u(&o, an);
  ta_out_str(&o, ": ");
  ta_out_u(&o, abytes);
  ta_out_str(&o, "] @ heap_v2/");
  ta_out_u(&o, sample_rate());
  ta_out_str(&o, "\n");
  if (stacks != NULL)
    for (unsigned b = 0; b < STACK_BUCKETS; b++)
      for (ta_prof_stack_t *s = stacks[b]; s != NULL; s = s->next) {
        ta_out_u(&o, s->live_n);
        ta_out_str(&o, ": ");
        ta_out_u(&o, s->live_bytes);
        ta_out_str(&o, " [ ");
        ta_out_u(&o, s->alloc_n);
        ta_out_str(&o, ": ");
        ta_out_u(&o, s->alloc_bytes);
        ta_out_str(&o, "] @");
        for (unsigned i = 0; i < s->depth; i++) {
          ta_out_str(&o, " ");
          ta_out_hex(&o, s->pc[i]);
        }
        ta_out_str(&o, "\n");
      }
  ta_unlock(&prof_lock);
  ta_out_str(&o, "\nMAPPED_LIBRARIES:\n");
  ta_out_finish(&o);
  int maps = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (maps < 0) return;
  long r;
  while ((r = syscall(SYS_read, maps, buf, sizeof buf)) > 0) ta_out_fd_flush((void *)(intptr_t)fd, buf, (size_t)r);
  syscall(SYS_close, maps);
}

static int dump_to(const char *path) {
  int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  write_profile(fd);
  syscall(SYS_close, fd);
  return 0;
}

int ta_prof_dump(const char *path) {
  if (path == NULL) return -1;
  tls_guard++;
  int saved = errno;
  int r = dump_to(path);
  if (r < 0) ta_warn("cannot write the heap profile ", path, "");
  else errno = saved;
  tls_guard--;
  return r;
}

/* TAMALLOC_PROF_DUMP with every %p replaced by the pid, then `suffix` (a number; 0 for none). */
static bool dump_path(char *out, size_t cap, unsigned suffix) {
  const char *tmpl = ta_config.prof_dump != NULL ? ta_config.prof_dump : "tamalloc.%p.heap";
  ta_out_t o = {.buf = out, .cap = cap};
  for (const char *c = tmpl; *c; c++) {
    if (c[0] == '%' && c[1] == 'p') {
      ta_out_u(&o, (unsigned long long)syscall(SYS_getpid));
      c++;
    } else {
      char one[2] = {*c, 0};
      ta_out_str(&o, one);
    }
  }
  if (suffix) {
    ta_out_str(&o, ".");
    ta_out_u(&o, suffix);
  }
  ta_out_finish(&o);
  return o.total < cap;
}

static void interval_dump(unsigned seq) {
  char path[4096];
  if (dump_path(path, sizeof path, seq)) dump_to(path);
}

/* "64.0 MiB": one decimal, binary units. */
static void out_bytes(ta_out_t *o, double v) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  unsigned u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  unsigned long long tenths = (unsigned long long)(v * 10 + 0.5);
  ta_out_u(o, tenths / 10);
  ta_out_str(o, ".");
  ta_out_u(o, tenths % 10);
  ta_out_str(o, " ");
  ta_out_str(o, units[u]);
}

static void out_frame(ta_out_t *o, uintptr_t pc) {
  Dl_info info;
  /* pc - 1: a return address may already be past the end of the calling function */
  if (dladdr((void *)(pc - 1), &info) != 0 && info.dli_sname != NULL) {
    ta_out_str(o, info.dli_sname);
    ta_out_str(o, "+");
    ta_out_hex(o, pc - (uintptr_t)info.dli_saddr);
  } else {
    ta_out_hex(o, pc);
  }
  if (info.dli_fname != NULL) {
    ta_out_str(o, " (");
    ta_out_str(o, info.dli_fname);
    ta_out_str(o, ")");
  }
}

#define LEAK_STACKS 10

/* TAMALLOC_PROF_LEAKS: the stacks holding the most estimated live bytes, largest first. Copied out
 * under the lock, named after it: dladdr takes the loader's lock, whose holder may be allocating. */
static void leak_report(void) {
  struct {
    double est, est_n;
    unsigned depth;
    uintptr_t pc[TA_PROF_FRAMES];
  } top[LEAK_STACKS];
  unsigned found = 0;
  ta_lock(&prof_lock);
  for (; found < LEAK_STACKS && stacks != NULL; found++) {
    ta_prof_stack_t *best = NULL;
    for (unsigned b = 0; b < STACK_BUCKETS; b++)
      for (ta_prof_stack_t *s = stacks[b]; s != NULL; s = s->next)
        if (!s->reported && s->live_n != 0 && (best == NULL || s->live_est > best->live_est)) best = s;
    if (best == NULL) break;
    best->reported = true;
    top[found].est = best->live_est;
    top[found].est_n = best->live_est_n;
    top[found].depth = best->depth;
    memcpy(top[found].pc, best->pc, best->depth * sizeof best->pc[0]);
  }
  ta_unlock(&prof_lock);
  char buf[4096];
  ta_out_t o = {.buf = buf, .cap = sizeof buf, .flush = ta_out_fd_flush, .ctx = TA_STDERR};
  for (unsigned k = 0; k < found; k++) {
    ta_out_str(&o, "tamalloc: leak: ~");
    out_bytes(&o, top[k].est);
    ta_out_str(&o, " in ");
    ta_out_u(&o, (unsigned long long)(top[k].est_n + 0.5));
    ta_out_str(&o, " blocks from ");
    if (top[k].depth == 0) ta_out_str(&o, "an unknown stack\n");
    for (unsigned i = 0; i < top[k].depth; i++) {
      if (i) ta_out_str(&o, "tamalloc: leak:     called from ");
      out_frame(&o, top[k].pc[i]);
      ta_out_str(&o, "\n");
    }
  }
  ta_out_finish(&o);
}

/* At exit: the profile to TAMALLOC_PROF_DUMP and the leak report, if asked for. */
__attribute__((destructor)) static void prof_at_exit(void) {
  if (!ta_prof_on() && samples == NULL) return;
  tls_guard++;
  char path[4096];
  if (ta_config.prof_dump != NULL && dump_path(path, sizeof path, 0) && dump_to(path) < 0)
    ta_warn("cannot write the heap profile ", path, "");
  if (atomic_load_explicit(&ta_config.prof_leaks, memory_order_relaxed)) leak_report();
  tls_guard--;
}
