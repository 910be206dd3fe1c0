/* Configuration (contract in config.h). Environment values are parsed by hand: no allocation, no
 * locale, and a malformed value is reported in one line and ignored, never half-read. */
#include "config.h"

#include <limits.h>
#include <stdlib.h>

#include "tamalloc.h"

ta_config_t ta_config = {
    .mmap_threshold = TA_MMAP_THRESHOLD_DEFAULT,
    .trim_threshold = 128 * 1024,
    .top_pad = 128 * 1024,
    .decay_ms = 1000,
    .arena_max = 0,
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
  for (const char *d = c; *d; d++)
    if (*d < '0' || *d > '9') return false;
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
      if (v > TA_MMAP_THRESHOLD_MAX + 1) v = TA_MMAP_THRESHOLD_MAX + 1;
      atomic_store_explicit(&ta_config.mmap_threshold, v, memory_order_relaxed);
      return 1;
    }
    case TA_OPT_TRIM_THRESHOLD:
      if (value < 0) return 0;
      atomic_store_explicit(&ta_config.trim_threshold, (size_t)value, memory_order_relaxed);
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
    default:
      return 0;
  }
}

long ta_config_get(int option) {
  switch (option) {
    case TA_OPT_MMAP_THRESHOLD: return (long)ta_mmap_threshold();
    case TA_OPT_TRIM_THRESHOLD: return (long)atomic_load(&ta_config.trim_threshold);
    case TA_OPT_TOP_PAD: return (long)atomic_load(&ta_config.top_pad);
    case TA_OPT_DECAY_MS: return atomic_load(&ta_config.decay_ms);
    case TA_OPT_ARENA_MAX: return (long)atomic_load(&ta_config.arena_max);
    default: return -1;
  }
}

static void env_option(const char *name, int option) {
  const char *s = getenv(name);
  if (s == NULL) return;
  long v;
  if (!parse_long(s, &v) || !ta_config_set(option, v))
    ta_warn(name, ": malformed value ignored, default kept: ", s);
}

void ta_config_init(void) {
  env_option("TAMALLOC_MMAP_THRESHOLD", TA_OPT_MMAP_THRESHOLD);
  env_option("TAMALLOC_TRIM_THRESHOLD", TA_OPT_TRIM_THRESHOLD);
  env_option("TAMALLOC_TOP_PAD", TA_OPT_TOP_PAD);
  env_option("TAMALLOC_DECAY_MS", TA_OPT_DECAY_MS);
  env_option("TAMALLOC_ARENA_MAX", TA_OPT_ARENA_MAX);
}
