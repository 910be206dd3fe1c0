/* Configuration (contract in config.h). Environment values are parsed by hand: no allocation, no
 * locale, and a malformed value is reported in one line and ignored, never half-read. */
#include "src/config.h"

#include <limits.h>
#include <stdlib.h>

#include <string.h>

#include "src/format.h"
#include "tamalloc.h"

ta_config_t ta_config = {
    .mmap_threshold = TA_MMAP_THRESHOLD_DEFAULT,
    .trim_threshold = 128 * 1024,
    .top_pad = 128 * 1024,
    .decay_ms = 1000,
    .arena_max = 0,
    .background_thread = 1,
    .retain_min = (size_t)64 << 20,
    .retain_percent = 12,
    .prof_sample = TA_PROF_SAMPLE_DEFAULT,
};

/* The knobs settable from the environment, in the order TAMALLOC_VERBOSE lists them. */
static const struct {
  const char *env;
  int option;
} knobs[] = {
    {"TAMALLOC_MMAP_THRESHOLD", TA_OPT_MMAP_THRESHOLD},
    {"TAMALLOC_TRIM_THRESHOLD", TA_OPT_TRIM_THRESHOLD},
    {"TAMALLOC_TOP_PAD", TA_OPT_TOP_PAD},
    {"TAMALLOC_DECAY_MS", TA_OPT_DECAY_MS},
    {"TAMALLOC_ARENA_MAX", TA_OPT_ARENA_MAX},
    {"TAMALLOC_BACKGROUND_THREAD", TA_OPT_BACKGROUND_THREAD},
    {"TAMALLOC_RETAIN_MIN", TA_OPT_RETAIN_MIN},
    {"TAMALLOC_RETAIN_PERCENT", TA_OPT_RETAIN_PERCENT},
    {"TAMALLOC_PROF", TA_OPT_PROF},
    {"TAMALLOC_PROF_SAMPLE", TA_OPT_PROF_SAMPLE},
    {"TAMALLOC_PROF_INTERVAL", TA_OPT_PROF_INTERVAL},
    {"TAMALLOC_PROF_LEAKS", TA_OPT_PROF_LEAKS},
};

bool ta_config_parse_size(const char *s, size_t *out) {
  if (s == NULL || *s == '\0') return false;
  size_t v = 0;
  const char *c = s;
  for (; *c >= '0' && *c <= '9'; c++) {
    size_t d = (size_t)(*c - '0');
    if (v > (SIZE_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  if (c == s) return false;
  unsigned shift = 0;
  switch (*c) {
    case '\0': break;
    case 'k': case 'K': shift = 10; c++; break;
    case 'm': case 'M': shift = 20; c++; break;
    case 'g': case 'G': shift = 30; c++; break;
    default: return false;
  }
  if (*c == 'b' || *c == 'B') c++;
  if (*c != '\0') return false;
  if (shift && v > (SIZE_MAX >> shift)) return false;
  *out = v << shift;
  return true;
}

static bool parse_long(const char *s, long *out) {
  if (s == NULL || *s == '\0') return false;
  bool neg = *s == '-';
  const char *c = neg ? s + 1 : s;
  size_t v;
  if (!ta_config_parse_size(c, &v) || v > (size_t)LONG_MAX) return false;
  *out = neg ? -(long)v : (long)v;
  return true;
}

int ta_config_set(int option, long value) {
  switch (option) {
    case TA_OPT_MMAP_THRESHOLD: {
      if (value < 0) return 0;
      size_t v = (size_t)value;
      if (v < TA_MMAP_THRESHOLD_MIN) v = TA_MMAP_THRESHOLD_MIN;
      if (v > TA_MMAP_THRESHOLD_MAX) v = TA_MMAP_THRESHOLD_MAX;
      atomic_store_explicit(&ta_config.mmap_threshold, v, memory_order_relaxed);
      atomic_store_explicit(&ta_config.mmap_threshold_set, true, memory_order_relaxed);
      return 1;
    }
    case TA_OPT_TRIM_THRESHOLD:
      if (value < 0) return 0;
      atomic_store_explicit(&ta_config.trim_threshold, (size_t)value, memory_order_relaxed);
      atomic_store_explicit(&ta_config.trim_threshold_set, true, memory_order_relaxed);
      return 1;
    case TA_OPT_TOP_PAD:
      if (value < 0) return 0;
      atomic_store_explicit(&ta_config.top_pad, (size_t)value, memory_order_relaxed);
      return 1;
    case TA_OPT_DECAY_MS:
      atomic_store_explicit(&ta_config.decay_ms, value, memory_order_relaxed);
      return 1;
    case TA_OPT_ARENA_MAX:
      if (value < 0) return 0;
      atomic_store_explicit(&ta_config.arena_max, (size_t)value, memory_order_relaxed);
      return 1;
    case TA_OPT_BACKGROUND_THREAD:
      if (value != 0 && value != 1) return 0;
      atomic_store_explicit(&ta_config.background_thread, (int)value, memory_order_relaxed);
      return 1;
    case TA_OPT_RETAIN_MIN:
      if (value < 0) return 0;
      atomic_store_explicit(&ta_config.retain_min, (size_t)value, memory_order_relaxed);
      return 1;
    case TA_OPT_RETAIN_PERCENT:
      if (value < 0 || value > 100) return 0;
      atomic_store_explicit(&ta_config.retain_percent, (size_t)value, memory_order_relaxed);
      return 1;
    case TA_OPT_PROF:
      if (value != 0 && value != 1) return 0;
      atomic_store_explicit(&ta_config.prof, (int)value, memory_order_relaxed);
      return 1;
    case TA_OPT_PROF_SAMPLE:
      if (value < 1) return 0;
      atomic_store_explicit(&ta_config.prof_sample, (size_t)value, memory_order_relaxed);
      return 1;
    case TA_OPT_PROF_INTERVAL:
      if (value < 0) return 0;
      atomic_store_explicit(&ta_config.prof_interval, (size_t)value, memory_order_relaxed);
      return 1;
    case TA_OPT_PROF_LEAKS:
      if (value != 0 && value != 1) return 0;
      atomic_store_explicit(&ta_config.prof_leaks, (int)value, memory_order_relaxed);
      return 1;
    default:
      return 0;
  }
}

/* As glibc does: a program that frees a large block of this size will likely ask for one again, and
 * serving it from the heap saves a mmap, a munmap and a page fault per page each time (measured:
 * a malloc/memset/free loop of 256 KiB blocks, 242 us per iteration with mmap, 15.5 us without).
 * Raised only, up to TA_MMAP_THRESHOLD_MAX, and never once the user set the threshold.
 *
 * A freed block above the largest size class raises it to TA_MMAP_THRESHOLD_MAX at once, not to its
 * own size: below the threshold such blocks are retained page ranges (src/large.c) that split and
 * merge to serve any size, while glibc's rule kept every request above the largest block freed so
 * far a fresh mapping, faulted in whole and unmapped on free. Measured (issue 12, --scale 0.1, seeds
 * 1-3, minor faults): large_loop (5-25 MiB) unmapped 197 of its 316 MiB that way and faulted 74-113k
 * pages, 40-46k now (tcmalloc 48-53k); big_blocks 51-54k, 21-22k now (tcmalloc 21-23k); peak RSS fell
 * (169 from 190 MiB, 75 from 98 MiB at seed 1: a freed block's pages serve the next request instead
 * of a fresh mapping beside them). The retained ranges' byte limit (cache_max_bytes) bounds their
 * memory, and the trim threshold still follows the block's own size. Blocks within the classes keep
 * glibc's rule (they go to the bins, whose trim policy mixed_sizes was measured with);
 * tests/large/large_adapt checks the rule on both sides of the edge. */
void ta_config_adapt_mmap_threshold(size_t usable, size_t class_max) {
  if (atomic_load_explicit(&ta_config.mmap_threshold_set, memory_order_relaxed)) return;
  if (usable > TA_MMAP_THRESHOLD_MAX || usable <= ta_mmap_threshold()) return;
  size_t threshold = usable > class_max ? TA_MMAP_THRESHOLD_MAX : usable;
  atomic_store_explicit(&ta_config.mmap_threshold, threshold, memory_order_relaxed);
  if (!atomic_load_explicit(&ta_config.trim_threshold_set, memory_order_relaxed))
    atomic_store_explicit(&ta_config.trim_threshold, 2 * usable, memory_order_relaxed);
}

long ta_config_get(int option) {
  switch (option) {
    case TA_OPT_MMAP_THRESHOLD: return (long)ta_mmap_threshold();
    case TA_OPT_TRIM_THRESHOLD: return (long)atomic_load(&ta_config.trim_threshold);
    case TA_OPT_TOP_PAD: return (long)atomic_load(&ta_config.top_pad);
    case TA_OPT_DECAY_MS: return atomic_load(&ta_config.decay_ms);
    case TA_OPT_ARENA_MAX: return (long)atomic_load(&ta_config.arena_max);
    case TA_OPT_BACKGROUND_THREAD: return atomic_load(&ta_config.background_thread);
    case TA_OPT_RETAIN_MIN: return (long)atomic_load(&ta_config.retain_min);
    case TA_OPT_RETAIN_PERCENT: return (long)atomic_load(&ta_config.retain_percent);
    case TA_OPT_PROF: return atomic_load(&ta_config.prof);
    case TA_OPT_PROF_SAMPLE: return (long)atomic_load(&ta_config.prof_sample);
    case TA_OPT_PROF_INTERVAL: return (long)atomic_load(&ta_config.prof_interval);
    case TA_OPT_PROF_LEAKS: return atomic_load(&ta_config.prof_leaks);
    default: return -1;
  }
}

static void env_option(const char *name, int option) {
  const char *s = getenv(name);
  if (s == NULL) return;
  long v;
  if (parse_long(s, &v) && ta_config_set(option, v)) return;
  char buf[256];
  ta_out_t o = {.buf = buf, .cap = sizeof buf, .flush = ta_out_fd_flush, .ctx = (void *)(intptr_t)2};
  ta_out_str(&o, "tamalloc: warning: ");
  ta_out_str(&o, name);
  ta_out_str(&o, "=");
  ta_out_str(&o, s);
  ta_out_str(&o, " is malformed; keeping the default ");
  ta_out_i(&o, ta_config_get(option));
  ta_out_str(&o, "\n");
  ta_out_finish(&o);
}

static void env_stats(void) {
  const char *s = getenv("TAMALLOC_STATS");
  if (s == NULL || *s == '\0' || strcmp(s, "0") == 0) return;
  if (strcmp(s, "1") == 0 || strcmp(s, "text") == 0)
    ta_config.stats_at_exit = TA_STATS_TEXT;
  else if (strcmp(s, "json") == 0)
    ta_config.stats_at_exit = TA_STATS_JSON;
  else if (strcmp(s, "map") == 0)
    ta_config.stats_at_exit = TA_STATS_MAP;
  else
    ta_warn("TAMALLOC_STATS=", s, " is malformed (want 1, text, json or map); no report at exit");
}

static void print_config(void) {
  char buf[1024];
  ta_out_t o = {.buf = buf, .cap = sizeof buf, .flush = ta_out_fd_flush, .ctx = (void *)(intptr_t)2};
  for (size_t i = 0; i < sizeof knobs / sizeof knobs[0]; i++) {
    ta_out_str(&o, "tamalloc: config: ");
    ta_out_str(&o, knobs[i].env);
    ta_out_str(&o, "=");
    ta_out_i(&o, ta_config_get(knobs[i].option));
    ta_out_str(&o, "\n");
  }
  static const char *const stats_names[] = {"0", "text", "json", "map"};
  ta_out_str(&o, "tamalloc: config: TAMALLOC_STATS=");
  ta_out_str(&o, stats_names[ta_config.stats_at_exit]);
  ta_out_str(&o, "\n");
  ta_out_finish(&o);
}

void ta_config_init(void) {
  for (size_t i = 0; i < sizeof knobs / sizeof knobs[0]; i++) env_option(knobs[i].env, knobs[i].option);
  env_stats();
  const char *dump = getenv("TAMALLOC_PROF_DUMP");
  if (dump != NULL && *dump != '\0') ta_config.prof_dump = dump;
  const char *verbose = getenv("TAMALLOC_VERBOSE");
  if (verbose != NULL && *verbose != '\0' && strcmp(verbose, "0") != 0) print_config();
}
