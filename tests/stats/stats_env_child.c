/* The program stats_env runs with TAMALLOC_* set. Modes:
 *   opts    allocate once (configuration is read at the first allocation), then print each option as
 *           "opt <number> <ta_getopt value>" on stdout;
 *   setenv  the same, after changing every TAMALLOC_* variable: the configuration was read once,
 *           so the values must not move;
 *   exit    leave 1000 blocks of 100 bytes and a 1 MiB block live, print "ok", return from main
 *           (TAMALLOC_STATS reports at exit).
 * Writes nothing to stderr itself: whatever is there is tamalloc's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tamalloc.h"

static void print_opts(void) {
  for (int opt = TA_OPT_MMAP_THRESHOLD; opt <= TA_OPT_RETAIN_PERCENT; opt++)
    printf("opt %d %ld\n", opt, ta_getopt(opt));
}

int main(int argc, char **argv) {
  alarm(20);
  const char *mode = argc > 1 ? argv[1] : "opts";
  void *first = ta_malloc(32);
  if (first == NULL) return 2;
  ta_free(first);
  if (strcmp(mode, "opts") == 0) {
    print_opts();
  } else if (strcmp(mode, "setenv") == 0) {
    static const char *const vars[] = {"TAMALLOC_MMAP_THRESHOLD", "TAMALLOC_TRIM_THRESHOLD", "TAMALLOC_TOP_PAD",
                                       "TAMALLOC_DECAY_MS",       "TAMALLOC_ARENA_MAX",      "TAMALLOC_BACKGROUND_THREAD"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) setenv(vars[i], "0", 1);
    for (int i = 0; i < 100; i++) ta_free(ta_malloc((size_t)i * 1000));
    print_opts();
  } else if (strcmp(mode, "exit") == 0) {
    static void *kept[1000];
    for (int i = 0; i < 1000; i++) {
      kept[i] = ta_malloc(100);
      if (kept[i] == NULL) return 2;
      memset(kept[i], i, 100);
    }
    void *large = ta_malloc(1 << 20);
    if (large == NULL) return 2;
    memset(large, 1, 4096);
    printf("ok\n");
  } else {
    return 3;
  }
  return 0;
}
