/* A program that does not profile never maps the heap profiler's unwinder: libgcc_s, linked, was
 * mapped and relocated at start-up in every program (~100 KiB resident) and never used unless
 * profiling was on. Turned on with ta_mallopt, the profiler loads it, and a sample's stack holds
 * its callers' frames. Read from /proc/self/maps and the profile with read(2), without allocating. */
#include <stdbool.h>

#include "tamalloc.h"
#include "trim_util.h"

static bool mapped(const char *name) {
  read_file("/proc/self/maps");
  return strstr(trim_buf, name) != NULL;
}

enum { BLOCKS = 16 };
static void *blocks[BLOCKS];

/* A few frames of the test's own above the allocation, for the unwinder to find. */
__attribute__((noinline)) static void alloc_at(int depth, int i) {
  if (depth > 0) {
    alloc_at(depth - 1, i);
    __asm__ volatile("" ::: "memory"); /* not a tail call */
    return;
  }
  blocks[i] = ta_malloc(100 + (size_t)i);
  CHECK(blocks[i] != NULL);
}

/* The most frames on one stack line of the profile at `path` ("n: b [ n: b] @ pc pc ..."). */
static unsigned deepest_stack(const char *path) {
  read_file(path);
  unsigned best = 0;
  for (char *line = strchr(trim_buf, '\n'); line != NULL && line[1] != '\0' && line[1] != '\n'; line = strchr(line + 1, '\n')) {
    char *at = strstr(line + 1, "] @");
    char *eol = strchr(line + 1, '\n');
    if (at == NULL || (eol != NULL && at > eol)) continue;
    unsigned frames = 0;
    for (char *c = at + 3; *c && *c != '\n'; c++)
      if (c[0] == ' ' && c[1] == '0') frames++;
    if (frames > best) best = frames;
  }
  return best;
}

int main(void) {
  /* The sanitizers' runtimes link libgcc_s themselves. */
  if (mapped("libasan") || mapped("libubsan") || mapped("libtsan")) return 77;
  ta_free(ta_malloc(1));
  size_t rss = rss_bytes();
  bool at_start = mapped("libgcc_s");
  printf("rss at start %zu KiB; libgcc_s mapped: %s\n", rss / 1024, at_start ? "yes" : "no");
  CHECK(!at_start);

  CHECK(ta_mallopt(TA_OPT_PROF_SAMPLE, 1) == 1);
  CHECK(ta_mallopt(TA_OPT_PROF, 1) == 1);
  for (int i = 0; i < BLOCKS; i++) alloc_at(3, i); /* the first starts the countdown; the rest are sampled */
  static char path[256];
  const char *dir = getenv("TMPDIR");
  snprintf(path, sizeof path, "%s/trim_no_unwinder.%d.heap", dir != NULL && *dir ? dir : "/tmp", (int)getpid());
  CHECK(ta_prof_dump(path) == 0);
  unsigned frames = deepest_stack(path);
  unlink(path);
  CHECK(ta_mallopt(TA_OPT_PROF, 0) == 1);
  bool after = mapped("libgcc_s");
  printf("profiling on: libgcc_s mapped: %s; deepest sampled stack: %u frames\n", after ? "yes" : "no", frames);
  CHECK(after);
  CHECK(frames >= 5); /* alloc_at four times, main */
  for (int i = 0; i < BLOCKS; i++) ta_free(blocks[i]);
  return 0;
}
