/* Workload 10, hoarding: allocate 50 million 120-byte blocks, free them all, and report the resident
 * set after the free and after malloc_trim(0). An allocator that keeps freed small-block memory for
 * reuse forever shows it here as gigabytes still resident. */
#include "wl.h"

#include <stdlib.h>

enum { BLOCK = 120 };

/* Each block links to the next, so no pointer table is needed: [next][payload with the pattern]. */
typedef struct node_s {
  struct node_s *next; /* the block allocated after this one, NULL for the last */
} node_t;

int main(int argc, char **argv) {
  wl_args_t a;
  wl_init(&a, "hoarding", 1, argc, argv);
  size_t n = wl_scaled(&a, 50e6, 1000);
  uint64_t tag0 = a.seed << 40;

  wl_report("rss_start_kib", bench_rss_kib());
  node_t *head = NULL, *tail = NULL;
  for (size_t i = 0; i < n; i++) {
    node_t *b = wl_malloc(BLOCK);
    b->next = NULL;
    wl_fill(b + 1, BLOCK - sizeof *b, tag0 + i);
    if (tail) tail->next = b;
    else head = b;
    tail = b;
  }
  wl_report("rss_peak_kib", bench_rss_kib());

  size_t i = 0;
  for (node_t *b = head, *next; b; b = next, i++) {
    next = b->next;
    wl_check(b + 1, BLOCK - sizeof *b, tag0 + i, "hoarding");
    free(b);
  }
  if (i != n) wl_fail("hoarding: list holds %zu blocks, expected %zu", i, n);
  wl_report("rss_after_free_kib", bench_rss_kib());

  bench_trim();
  wl_report("rss_after_trim_kib", bench_rss_kib());
  return 0;
}
