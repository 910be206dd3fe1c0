/* Configuration: defaults, TAMALLOC_* environment variables (read once, at the first allocation,
 * without allocating) and mallopt. src/config.c. */
#ifndef TA_CONFIG_H
#define TA_CONFIG_H

#include <stdatomic.h>

#include "src/common.h"

#pragma GCC visibility push(hidden)

#define TA_MMAP_THRESHOLD_DEFAULT ((size_t)128 * 1024)
#define TA_MMAP_THRESHOLD_MIN ((size_t)4096)
/* Up to this (glibc's 64-bit maximum) requests below the threshold are served from the heap: from the
 * bins up to the largest size class (1 MiB), above it from retained mappings (src/large.c). */
#define TA_MMAP_THRESHOLD_MAX ((size_t)32 << 20)
/* The heap profiler's mean gap between samples (src/prof.h). */
#define TA_PROF_SAMPLE_DEFAULT ((size_t)512 * 1024)

typedef struct ta_config_s {
  _Atomic size_t mmap_threshold; /* bytes: requests >= this go to the mmap path */
  _Atomic size_t trim_threshold; /* bytes: free brk tail kept before the heap shrinks */
  _Atomic size_t top_pad;        /* bytes: kept at the brk top when it shrinks */
  _Atomic long decay_ms;         /* ms: free pages stay committed this long; 0 now, < 0 never */
  _Atomic size_t arena_max;      /* arenas at most, 0 = no cap */
  _Atomic int background_thread; /* 1: purge from a background thread too */
  _Atomic size_t retain_min;     /* bytes: free memory that may always wait for the decay */
  _Atomic size_t retain_percent; /* of the peak segment memory: the cap on free-but-resident memory */
  int stats_at_exit;             /* set once at start: TA_STATS_* report written at exit */
  _Atomic bool mmap_threshold_set; /* the user chose the threshold: it no longer adapts */
  _Atomic bool trim_threshold_set; /* the user chose the trim threshold: it no longer adapts */
  _Atomic int prof;              /* 1: the heap profiler samples (src/prof.h) */
  _Atomic size_t prof_sample;    /* bytes: mean gap between the profiler's sample points, >= 1 */
  _Atomic size_t prof_interval;  /* bytes: a numbered profile each time the estimated live heap
                                    grows this much past its last high-water dump; 0 never */
  _Atomic int prof_leaks;        /* 1: the leak report at exit */
  const char *prof_dump;         /* set once at start: TAMALLOC_PROF_DUMP, the profile at exit */
} ta_config_t;

enum { TA_STATS_NONE = 0, TA_STATS_TEXT, TA_STATS_JSON, TA_STATS_MAP };

extern ta_config_t ta_config;

TA_INLINE size_t ta_mmap_threshold(void) {
  return atomic_load_explicit(&ta_config.mmap_threshold, memory_order_relaxed);
}

/* The environment, read once by ta_init_slow. */
void ta_config_init(void);
int ta_config_set(int option, long value);
/* The adaptive mmap threshold (see src/large.c): a freed large block of `usable` bytes; class_max,
 * the largest size class (above it the threshold jumps to its maximum). */
void ta_config_adapt_mmap_threshold(size_t usable, size_t class_max);
long ta_config_get(int option);
/* Parse a size with an optional k/m/g suffix; false if malformed. */
bool ta_config_parse_size(const char *s, size_t *out);

#pragma GCC visibility pop

#endif
