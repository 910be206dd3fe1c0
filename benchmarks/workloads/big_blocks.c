/* Workload 8, big blocks: a handful of blocks from 128 KiB to 16 MiB (log-uniform) are allocated,
 * touched on every page, resized with realloc and freed, over and over — a media or compression
 * server's buffers. Allocators that map and unmap each block pay the page faults every time. */
#include "wl.h"

#include <stdlib.h>
#include <string.h>

enum { LIVE = 8, MIN_SIZE = 128 << 10, MAX_SIZE = 16 << 20, PAGE = 4096 };

typedef struct big_s {
  unsigned char *p; /* block, NULL when the slot is empty */
  size_t n;         /* its size in bytes */
  uint64_t tag;     /* the word at offset off is big_word(tag, off), for each multiple of PAGE with
                       off + 8 <= n */
} big_t;

static inline uint64_t big_word(uint64_t tag, size_t off) { return tag ^ (off * 0x9e3779b97f4a7c15ull); }

/* The first page word a block of n bytes has no room for. */
static size_t big_words_end(size_t n) { return n >= 8 ? ((n - 8) / PAGE + 1) * PAGE : 0; }

/* Writes the page words from offset `from` (a multiple of PAGE) on: every page of the block is touched. */
static void big_fill(big_t *b, size_t from) {
  for (size_t off = from; off + 8 <= b->n; off += PAGE) {
    uint64_t w = big_word(b->tag, off);
    memcpy(b->p + off, &w, 8);
  }
}

/* Checks the page words that fit in the first `upto` bytes. */
static void big_check(const big_t *b, size_t upto) {
  for (size_t off = 0; off + 8 <= upto; off += PAGE) {
    uint64_t w;
    memcpy(&w, b->p + off, 8);
    if (w != big_word(b->tag, off)) wl_fail("big_blocks: %zu-byte block lost its page at %zu", b->n, off);
  }
}

int main(int argc, char **argv) {
  wl_args_t a;
  wl_init(&a, "big_blocks", 1, argc, argv);
  size_t iters = wl_scaled(&a, 6000, 50);
  bench_rng_t rng = {a.seed};
  big_t slot[LIVE] = {{0}};
  uint64_t tag = a.seed << 40;

  for (size_t k = 0; k < iters; k++) {
    big_t *b = &slot[bench_rng_below(&rng, LIVE)];
    size_t n = bench_rng_log_uniform(&rng, MIN_SIZE, MAX_SIZE);
    if (b->p && bench_rng_below(&rng, 2)) {
      size_t old = b->n;
      b->p = wl_realloc(b->p, n);
      b->n = n;
      big_check(b, old < n ? old : n); /* the common prefix survived the move */
      if (n > old) big_fill(b, big_words_end(old)); /* the words the old size had no room for */
      continue;
    }
    if (b->p) {
      big_check(b, b->n);
      free(b->p);
    }
    b->n = n;
    b->tag = ++tag;
    b->p = wl_malloc(n);
    big_fill(b, 0);
  }
  for (int i = 0; i < LIVE; i++) {
    if (!slot[i].p) continue;
    big_check(&slot[i], slot[i].n);
    free(slot[i].p);
  }
  return 0;
}
