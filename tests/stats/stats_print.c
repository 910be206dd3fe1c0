/* The human report and the heap map as text: ta_stats_print writes a non-empty report naming live
 * memory and segments; both reports also work into a stream that allocates as it grows
 * (open_memstream: in an override build its buffer comes from tamalloc itself, while the report is
 * being written), which a report holding an allocator lock across its writes would deadlock on.
 * The alarm turns such a hang into a failure. */
#include "stats.h"

#define BIG (1 << 20)

static char out[BIG];

static void test_print(void) {
  FILE *f = ss_capture_begin();
  ta_stats_print(f);
  size_t len = ss_capture_end(f, out, BIG);
  CHECK_MSG(len > 0, "ta_stats_print wrote nothing");
  CHECK_MSG(ss_contains(out, "live"), "ta_stats_print's report does not mention \"live\":\n%s", out);
  CHECK_MSG(ss_contains(out, "segments"), "ta_stats_print's report does not mention \"segments\":\n%s", out);
  CHECK_MSG(strlen(out) == len, "ta_stats_print wrote a NUL byte");
  CHECK_MSG(out[len - 1] == '\n', "ta_stats_print's report does not end with a newline");
}

static void test_memstream(void) {
  alarm(20);
  char *text = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&text, &size);
  CHECK(f != NULL);
  for (int i = 0; i < 20; i++) { /* enough output that the stream reallocates its buffer */
    ta_stats_print(f);
    ta_heap_map(f);
  }
  CHECK(fclose(f) == 0);
  CHECK_MSG(size > 0 && ss_contains(text, "live") && ss_contains(text, "segment"),
            "reports into open_memstream: %zu bytes", size);
  free(text);
  alarm(0);
}

int main(void) {
  static void *blocks[2000];
  for (int i = 0; i < 2000; i++) {
    blocks[i] = ta_malloc((size_t)(i % 100) * 30 + 1);
    CHECK(blocks[i] != NULL);
  }
  void *large = ta_malloc(2 * TB_MIB);
  CHECK(large != NULL);
  test_print();
  test_memstream();
  for (int i = 0; i < 2000; i++) ta_free(blocks[i]);
  ta_free(large);
  test_print();
  return 0;
}
