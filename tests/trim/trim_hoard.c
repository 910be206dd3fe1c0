/* Issue test 4: 50 million 120-byte blocks allocated (and written) then freed: RSS after
 * malloc_trim(0) within 16 MiB of the start (`trim`), and within a few decay periods without it
 * (`decay`). TA_TEST_SCALE divides the count. */
#include "tamalloc.h"
#include "trim_util.h"

int main(int argc, char **argv) {
  CHECK(argc == 2);
  size_t n = (size_t)test_scale(50 * 1000 * 1000);
  void **v = ta_malloc(n * sizeof *v);
  CHECK(v != NULL);
  memset(v, 0, n * sizeof *v);
  size_t before = rss_bytes();
  for (size_t i = 0; i < n; i++) {
    v[i] = ta_malloc(120);
    CHECK(v[i] != NULL);
    memset(v[i], (int)i, 120);
  }
  size_t full = rss_bytes();
  for (size_t i = 0; i < n; i++) ta_free(v[i]);
  size_t end;
  if (strcmp(argv[1], "trim") == 0) {
    CHECK(ta_trim(0) == 1);
    end = rss_bytes();
  } else {
    end = rss_wait_below(before + 16 * MIB, 10000);
  }
  printf("%zu x 120 B: rss before %zu MiB, full %zu MiB, end %zu MiB\n", n, before / MIB, full / MIB, end / MIB);
  CHECK(end <= before + 16 * MIB);
  return 0;
}
