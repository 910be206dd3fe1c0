/* Workload realloc_heavy: (a) 10,000 buffers grown round-robin, each realloc adding 1–64 B, until each
 * reaches its own final size of 256 B – 16 KiB (log-uniform) — many small buffers growing at once, as a
 * server's per-connection output buffers do, so no buffer has the heap to itself; (b) 8 buffers doubled
 * together from 64 B to 8 MiB, four times. After every realloc the pattern of the old size is checked
 * in the moved block and rewritten for the new size. Time and peak RSS are the measurement. */
#include "wl.h"

#include <stdlib.h>

enum {
  BUFFERS = 10000,
  MIN_FINAL = 256,
  MAX_FINAL = 16 << 10,
  MAX_STEP = 64,
  DOUBLING_LIVE = 8,
  DOUBLING_START = 64,
  DOUBLING_END = 8 << 20,
  DOUBLING_REPS = 4
};

typedef struct buf_s {
  void *p;      /* the buffer */
  uint32_t n;   /* its size */
  uint32_t end; /* its final size */
} buf_t;

/* Grows b to n bytes: the old pattern must have moved with it. */
static void buf_grow(buf_t *b, size_t n, uint64_t tag, const char *what) {
  b->p = wl_realloc(b->p, n);
  wl_check(b->p, b->n, tag, what);
  b->n = (uint32_t)n;
  wl_fill(b->p, n, tag);
}

int main(int argc, char **argv) {
  wl_args_t a;
  wl_init(&a, "realloc_heavy", 1, argc, argv);
  size_t count = wl_scaled(&a, BUFFERS, 100);
  bench_rng_t rng = {a.seed};
  uint64_t tag0 = a.seed << 40;
  buf_t *buf = wl_table(sizeof(buf_t) * count);

  for (size_t i = 0; i < count; i++) {
    buf[i].n = 1 + (uint32_t)bench_rng_below(&rng, MAX_STEP);
    buf[i].end = (uint32_t)bench_rng_log_uniform(&rng, MIN_FINAL, MAX_FINAL);
    buf[i].p = wl_malloc(buf[i].n);
    wl_fill(buf[i].p, buf[i].n, tag0 + i);
  }
  for (size_t growing = count; growing > 0;) {
    growing = 0;
    for (size_t i = 0; i < count; i++) {
      if (buf[i].n >= buf[i].end) continue;
      size_t n = buf[i].n + 1 + bench_rng_below(&rng, MAX_STEP);
      buf_grow(&buf[i], n < buf[i].end ? n : buf[i].end, tag0 + i, "realloc_heavy (round-robin)");
      growing++;
    }
  }
  for (size_t i = 0; i < count; i++) {
    wl_check(buf[i].p, buf[i].n, tag0 + i, "realloc_heavy (round-robin)");
    free(buf[i].p);
  }

  buf_t dbl[DOUBLING_LIVE];
  for (int rep = 0; rep < DOUBLING_REPS; rep++) {
    uint64_t dtag = tag0 + count + (uint64_t)rep * DOUBLING_LIVE;
    for (int i = 0; i < DOUBLING_LIVE; i++) {
      dbl[i].n = DOUBLING_START;
      dbl[i].p = wl_malloc(DOUBLING_START);
      wl_fill(dbl[i].p, DOUBLING_START, dtag + (uint64_t)i);
    }
    for (size_t n = 2 * DOUBLING_START; n <= DOUBLING_END; n *= 2)
      for (int i = 0; i < DOUBLING_LIVE; i++) buf_grow(&dbl[i], n, dtag + (uint64_t)i, "realloc_heavy (doubling)");
    for (int i = 0; i < DOUBLING_LIVE; i++) {
      wl_check(dbl[i].p, dbl[i].n, dtag + (uint64_t)i, "realloc_heavy (doubling)");
      free(dbl[i].p);
    }
  }
  wl_free_table(buf, sizeof(buf_t) * count);
  return 0;
}
