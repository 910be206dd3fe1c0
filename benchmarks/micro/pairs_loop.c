/* The program callgrind-pairs.sh measures: `pairs_loop SIZE N` runs a warm-up, then N malloc(SIZE) +
 * free pairs in a tight loop. Linked with nothing special: the allocator under test is LD_PRELOADed.
 * The script runs it for two values of N; the difference in instructions over the difference in N is
 * the cost of one pair, with start-up and warm-up cancelled out. */
#include <stdio.h>
#include <stdlib.h>

/* The pointer passes through an asm the compiler cannot see into, so it cannot pair the malloc with
 * the free and delete both. */
static inline void *escape(void *p) {
  __asm__ volatile("" : "+r"(p) : : "memory");
  return p;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s SIZE N\n", argv[0]);
    return 64;
  }
  size_t size = strtoul(argv[1], NULL, 0);
  long n = strtol(argv[2], NULL, 0);
  for (int i = 0; i < 10000; i++) free(escape(malloc(size))); /* warm-up: caches, thread state */
  for (long i = 0; i < n; i++) free(escape(malloc(size)));
  return 0;
}
