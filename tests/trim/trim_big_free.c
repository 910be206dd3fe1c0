/* Issue 11, test 3: a big heap freed all at once goes back at once. 1 GiB in blocks of 64-4096 B
 * (uniform sizes, each block written), peak RSS read, every block freed (`ordered`: in allocation
 * order; `random`: in a random order), and RSS read right away, with no sleep and no ta_trim: it
 * must be at most a quarter of the peak. Default settings (decay 1 s): a timer that fires later does
 * not pass this test, the frees themselves must give the memory back. TA_TEST_SCALE divides the
 * gigabyte. */
#include "tamalloc.h"
#include "trim_util.h"

int main(int argc, char **argv) {
  CHECK(argc == 2);
  int random_order = strcmp(argv[1], "random") == 0;
  CHECK(random_order || strcmp(argv[1], "ordered") == 0);
  test_rng_t rng = {test_seed(13)};
  size_t target = (size_t)test_scale(1L << 30);
  size_t cap = target / 64 + 1, n = 0;
  void **v = trim_map(cap * sizeof *v, 0);
  /* A scaled-down run (sanitizer builds) scales the retained cap's floor with it: the cap is what
   * lets this test pass, and its 64 MiB floor is a quarter of a quarter-size run. */
  if (target < (1L << 30)) CHECK(ta_mallopt(TA_OPT_RETAIN_MIN, (long)(target / 16)) == 1);
  ta_free(ta_malloc(1));
  size_t start = rss_bytes();
  for (size_t total = 0; total < target; n++) {
    size_t sz = 64 + test_rng_below(&rng, 4096 - 64 + 1);
    v[n] = ta_malloc(sz);
    CHECK(v[n] != NULL);
    memset(v[n], (int)(n & 0xff), sz);
    total += sz;
  }
  size_t peak = rss_bytes();
  if (random_order) {
    for (size_t i = n - 1; i > 0; i--) {
      size_t j = (size_t)test_rng_below(&rng, i + 1);
      void *t = v[i];
      v[i] = v[j];
      v[j] = t;
    }
  }
  for (size_t i = 0; i < n; i++) ta_free(v[i]);
  size_t after = rss_bytes();
  printf("%s: %zu blocks, %zu MiB; rss start %zu MiB, peak %zu MiB, right after the frees %zu MiB "
         "(%.1f%% of the peak; limit 25%%)\n",
         argv[1], n, target / MIB, start / MIB, peak / MIB, after / MIB, 100.0 * (double)after / (double)peak);
  fflush(stdout);
  CHECK_MSG(after <= peak / 4, "%zu MiB resident right after freeing, peak %zu MiB", after / MIB, peak / MIB);
  trim_unmap(v, cap * sizeof *v);
  return 0;
}
