/* Workload 6, realloc growth: (a) a thousand strings built by appending a few bytes at a time, each
 * append a realloc to the exact new length, as naive string builders do; (b) buffers doubled from
 * 4 KiB to 8 MiB, as vectors grow. Every byte of (a) and every page of (b) is checked after each move. */
#include "wl.h"

#include <stdlib.h>
#include <string.h>

enum {
  STRINGS = 1000,                /* strings under construction at once */
  DOUBLING_LIVE = 4,             /* vectors growing at once */
  DOUBLING_START = 4096,         /* a vector's first size, bytes */
  DOUBLING_END = 8 << 20         /* and its last */
};

typedef struct str_s {
  unsigned char *p; /* contents, byte i == str_byte(tag, i) */
  size_t len;       /* bytes written */
  size_t target;    /* length at which the string is checked and freed */
  uint64_t tag;     /* pattern tag */
} str_t;

static inline unsigned char str_byte(uint64_t tag, size_t i) { return (unsigned char)(tag + i * 131); }

static void str_check(const str_t *s) {
  for (size_t i = 0; i < s->len; i++)
    if (s->p[i] != str_byte(s->tag, i)) wl_fail("realloc_growth: string lost byte %zu of %zu", i, s->len);
}

static void str_start(str_t *s, bench_rng_t *rng, uint64_t tag) {
  s->p = NULL;
  s->len = 0;
  s->target = bench_rng_log_uniform(rng, 64, 16384);
  s->tag = tag;
}

/* Phase (a). */
static void grow_strings(size_t appends, bench_rng_t *rng, uint64_t seed) {
  static str_t s[STRINGS];
  uint64_t tag = seed << 32;
  for (int i = 0; i < STRINGS; i++) str_start(&s[i], rng, ++tag);
  for (size_t k = 0; k < appends; k++) {
    uint64_t r = bench_rng_next(rng);
    str_t *t = &s[(r >> 8) % STRINGS];
    size_t add = 1 + (r & 31);
    t->p = wl_realloc(t->p, t->len + add);
    for (size_t i = 0; i < add; i++) t->p[t->len + i] = str_byte(t->tag, t->len + i);
    t->len += add;
    if ((r >> 40) % 64 == 0) str_check(t); /* a sampled check mid-growth, a full one at the end */
    if (t->len >= t->target) {
      str_check(t);
      free(t->p);
      str_start(t, rng, ++tag);
    }
  }
  for (int i = 0; i < STRINGS; i++) {
    str_check(&s[i]);
    free(s[i].p);
  }
}

/* Page words of a vector: word at each 4 KiB offset below len. */
static inline uint64_t vec_word(uint64_t tag, size_t off) { return tag ^ (off * 0x9e3779b97f4a7c15ull); }

static void vec_fill(unsigned char *p, size_t from, size_t to, uint64_t tag) {
  for (size_t off = from; off + 8 <= to; off += 4096) {
    uint64_t w = vec_word(tag, off);
    memcpy(p + off, &w, 8);
  }
}

static void vec_check(const unsigned char *p, size_t len, uint64_t tag) {
  for (size_t off = 0; off + 8 <= len; off += 4096) {
    uint64_t w;
    memcpy(&w, p + off, 8);
    if (w != vec_word(tag, off)) wl_fail("realloc_growth: vector lost its page at %zu of %zu", off, len);
  }
}

/* Phase (b): DOUBLING_LIVE vectors grow in turn, so no single one always sits at the heap's end. */
static void grow_vectors(size_t rounds, uint64_t seed) {
  unsigned char *v[DOUBLING_LIVE];
  size_t len[DOUBLING_LIVE];
  uint64_t tag[DOUBLING_LIVE];
  uint64_t next = seed << 40;
  for (size_t round = 0; round < rounds; round++) {
    for (int i = 0; i < DOUBLING_LIVE; i++) {
      tag[i] = ++next;
      len[i] = DOUBLING_START;
      v[i] = wl_malloc(len[i]);
      vec_fill(v[i], 0, len[i], tag[i]);
    }
    for (size_t size = DOUBLING_START * 2; size <= DOUBLING_END; size *= 2) {
      for (int i = 0; i < DOUBLING_LIVE; i++) {
        v[i] = wl_realloc(v[i], size);
        vec_check(v[i], len[i], tag[i]);
        vec_fill(v[i], len[i], size, tag[i]);
        len[i] = size;
      }
    }
    for (int i = 0; i < DOUBLING_LIVE; i++) {
      vec_check(v[i], len[i], tag[i]);
      free(v[i]);
    }
  }
}

int main(int argc, char **argv) {
  wl_args_t a;
  wl_init(&a, "realloc_growth", 1, argc, argv);
  bench_rng_t rng = {a.seed};
  grow_strings(wl_scaled(&a, 3e6, 10000), &rng, a.seed);
  grow_vectors(wl_scaled(&a, 30, 2), a.seed);
  return 0;
}
