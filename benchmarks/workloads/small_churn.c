/* Workload 1, small churn: one thread keeps ~100k small objects alive and replaces random ones — the
 * steady state of an interpreter or a parser's AST. Measures the single-thread fast paths under a
 * working set larger than the caches. */
#include "wl.h"

#include <stdlib.h>

enum { LIVE = 100000, SIZE_TABLE = 4096 };

typedef struct slot_s {
  void *p;      /* live block, never NULL after setup */
  uint64_t tag; /* pattern tag written into it */
  uint32_t n;   /* its size in bytes */
} slot_t;

int main(int argc, char **argv) {
  wl_args_t a;
  wl_init(&a, "small_churn", 1, argc, argv);
  size_t ops = wl_scaled(&a, 10e6, 10000);
  bench_rng_t rng = {a.seed};

  /* Sizes drawn from a precomputed log-uniform table so the loop costs an allocation, not an exp(). */
  static uint32_t sizes[SIZE_TABLE];
  for (int i = 0; i < SIZE_TABLE; i++) sizes[i] = (uint32_t)bench_rng_log_uniform(&rng, 8, 256);

  slot_t *slots = wl_table(sizeof(slot_t) * LIVE);
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
    wl_check(s->p, s->n, s->tag, "small_churn");
    free(s->p);
    s->n = sizes[r & (SIZE_TABLE - 1)];
    s->tag = ++next_tag;
    s->p = wl_malloc(s->n);
    wl_fill(s->p, s->n, s->tag);
  }
  for (size_t i = 0; i < LIVE; i++) {
    wl_check(slots[i].p, slots[i].n, slots[i].tag, "small_churn");
    free(slots[i].p);
  }
  wl_free_table(slots, sizeof(slot_t) * LIVE);
  return 0;
}
