/* Workload 2, mixed sizes: one thread replaces random blocks whose sizes are log-uniform from 16 B to
 * 1 MiB, so the traffic crosses the small/large router line (128 KiB) all the time — the mix of a
 * document processor or an image pipeline. Every page of every block is touched. */
#include "wl.h"

#include <stdlib.h>

enum { LIVE = 1024, SIZE_TABLE = 4096 };

typedef struct slot_s {
  void *p;      /* live block */
  uint64_t tag; /* pattern tag written into it */
  size_t n;     /* its size in bytes */
} slot_t;

int main(int argc, char **argv) {
  wl_args_t a;
  wl_init(&a, "mixed_sizes", 1, argc, argv);
  size_t ops = wl_scaled(&a, 1e6, 2000);
  bench_rng_t rng = {a.seed};

  static size_t sizes[SIZE_TABLE];
  for (int i = 0; i < SIZE_TABLE; i++) sizes[i] = bench_rng_log_uniform(&rng, 16, 1 << 20);

  static slot_t slots[LIVE];
  uint64_t next_tag = a.seed * 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < LIVE; i++) {
    slots[i].n = sizes[bench_rng_below(&rng, SIZE_TABLE)];
    slots[i].tag = ++next_tag;
    slots[i].p = wl_malloc(slots[i].n);
    wl_fill(slots[i].p, slots[i].n, slots[i].tag);
  }
  for (size_t k = 0; k < ops; k++) {
    uint64_t r = bench_rng_next(&rng);
    slot_t *s = &slots[(r >> 16) % LIVE];
    wl_check(s->p, s->n, s->tag, "mixed_sizes");
    free(s->p);
    s->n = sizes[r & (SIZE_TABLE - 1)];
    s->tag = ++next_tag;
    s->p = wl_malloc(s->n);
    wl_fill(s->p, s->n, s->tag);
  }
  for (size_t i = 0; i < LIVE; i++) {
    wl_check(slots[i].p, slots[i].n, slots[i].tag, "mixed_sizes");
    free(slots[i].p);
  }
  return 0;
}
