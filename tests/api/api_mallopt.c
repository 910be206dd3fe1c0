/* ta_mallopt and ta_getopt: the mmap threshold moves the router line (observed through the count of
 * large blocks in ta_stats_get), ta_getopt reflects what was set, bad values and unknown options are
 * refused, and a block outlives a change of threshold. Through ta_*, and glibc's mallopt form
 * (ta_router_mallopt_glibc, what the standard name forwards to; the internal headers reach it in
 * every build): it answers as glibc 2.36 does for each of glibc's parameters, and means the same. */
#include <limits.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blocks.h"
#include "src/router.h"
#include "arenas/trim.h"

static size_t large_blocks(void) {
  ta_stats_t st;
  ta_stats_get(&st);
  return st.large_blocks;
}

/* Allocates n bytes and says whether the router sent them down the mmap path. */
static int goes_large(size_t n) {
  size_t before = large_blocks();
  void *p = ta_malloc(n);
  CHECK_MSG(p != NULL, "ta_malloc(%zu) returned NULL", n);
  memset(p, 0x42, n);
  size_t after = large_blocks();
  CHECK_MSG(after == before || after == before + 1, "large blocks went from %zu to %zu", before, after);
  ta_free(p);
  CHECK_MSG(large_blocks() == before, "freeing a %zu-byte block left large blocks at %zu (was %zu)", n,
            large_blocks(), before);
  return after == before + 1;
}

static void set_threshold(long v) {
  CHECK_MSG(ta_mallopt(TA_OPT_MMAP_THRESHOLD, v) == 1, "ta_mallopt(MMAP_THRESHOLD, %ld) refused", v);
  CHECK_MSG(ta_getopt(TA_OPT_MMAP_THRESHOLD) == v, "ta_getopt(MMAP_THRESHOLD) = %ld after setting %ld",
            ta_getopt(TA_OPT_MMAP_THRESHOLD), v);
}

static void test_default_router(void) {
  CHECK_MSG(ta_getopt(TA_OPT_MMAP_THRESHOLD) == (long)TB_ROUTER_LINE,
            "default mmap threshold %ld, want %zu", ta_getopt(TA_OPT_MMAP_THRESHOLD), TB_ROUTER_LINE);
  CHECK(!goes_large(1));
  CHECK(!goes_large(64 * TB_KIB));
  CHECK(!goes_large(TB_ROUTER_LINE - 1));
  CHECK(goes_large(TB_ROUTER_LINE));
  CHECK(goes_large(TB_MIB));
  CHECK(goes_large(32 * TB_MIB));
}

static void test_moved_router(void) {
  set_threshold(TB_MIB);
  CHECK(!goes_large(TB_ROUTER_LINE));
  CHECK(!goes_large(512 * TB_KIB));
  CHECK(!goes_large(TB_MIB - 1));
  CHECK(goes_large(TB_MIB));
  CHECK(goes_large(TB_MIB + 1));

  set_threshold(64 * TB_KIB);
  CHECK(!goes_large(64 * TB_KIB - 1));
  CHECK(goes_large(64 * TB_KIB));
  CHECK(goes_large(100 * TB_KIB));

  set_threshold(TB_ROUTER_LINE);
  CHECK(!goes_large(TB_ROUTER_LINE - 1));
  CHECK(goes_large(TB_ROUTER_LINE));
}

/* A block keeps working after the threshold that routed it has changed: resize, free. */
static void test_blocks_outlive_threshold(void) {
  size_t baseline = large_blocks();
  unsigned char *big = ta_malloc(200 * TB_KIB); /* large under the default */
  CHECK(big != NULL);
  tb_fill(big, 200 * TB_KIB, 1, SIZE_MAX);
  set_threshold(TB_MIB);
  unsigned char *mid = ta_malloc(200 * TB_KIB); /* from an arena now */
  CHECK(mid != NULL);
  tb_fill(mid, 200 * TB_KIB, 2, SIZE_MAX);
  big = ta_realloc(big, 300 * TB_KIB);
  CHECK(big != NULL);
  TB_CHECK(big, 200 * TB_KIB, 1, SIZE_MAX);
  set_threshold(64 * TB_KIB);
  mid = ta_realloc(mid, 250 * TB_KIB);
  CHECK(mid != NULL);
  TB_CHECK(mid, 200 * TB_KIB, 2, SIZE_MAX);
  set_threshold(TB_ROUTER_LINE);
  ta_free(big);
  ta_free(mid);
  CHECK_MSG(large_blocks() == baseline, "after freeing both blocks %zu large blocks are live, not %zu",
            large_blocks(), baseline);
}

static void test_refused(void) {
  long thr = ta_getopt(TA_OPT_MMAP_THRESHOLD);
  CHECK(ta_mallopt(TA_OPT_MMAP_THRESHOLD, -1) == 0);
  CHECK(ta_mallopt(TA_OPT_MMAP_THRESHOLD, -4096) == 0);
  CHECK(ta_getopt(TA_OPT_MMAP_THRESHOLD) == thr);
  CHECK(ta_mallopt(0, 1) == 0);
  CHECK(ta_mallopt(999, 1) == 0);
  CHECK(ta_getopt(TA_OPT_MMAP_THRESHOLD) == thr);
}

/* The other options read back what was set; the old values are restored. */
static void test_round_trips(void) {
  static const struct {
    int opt;
    long value;
  } cases[] = {
      {TA_OPT_TRIM_THRESHOLD, 1 << 20}, {TA_OPT_TRIM_THRESHOLD, 256 << 10},
      {TA_OPT_TOP_PAD, 64 << 10},       {TA_OPT_TOP_PAD, 0},
      {TA_OPT_DECAY_MS, 0},             {TA_OPT_DECAY_MS, 250},
      {TA_OPT_DECAY_MS, -1},            {TA_OPT_ARENA_MAX, 4},
      {TA_OPT_ARENA_MAX, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    long old = ta_getopt(cases[i].opt);
    CHECK_MSG(ta_mallopt(cases[i].opt, cases[i].value) == 1, "ta_mallopt(%d, %ld) refused", cases[i].opt,
              cases[i].value);
    CHECK_MSG(ta_getopt(cases[i].opt) == cases[i].value, "ta_getopt(%d) = %ld after setting %ld",
              cases[i].opt, ta_getopt(cases[i].opt), cases[i].value);
    /* The allocator keeps working under the new setting. */
    void *p = ta_malloc(1000), *q = ta_malloc(300 * TB_KIB);
    CHECK(p != NULL && q != NULL);
    ta_free(p);
    ta_free(q);
    CHECK(ta_mallopt(cases[i].opt, old) == 1);
    CHECK(ta_getopt(cases[i].opt) == old);
  }
}

/* What glibc 2.36's mallopt returns (measured on Debian 12 with a program that links no tamalloc):
 * M_MXFAST takes 0 .. 80 * sizeof(size_t) / 4 and refuses the rest (a negative value is a huge
 * size_t); every other parameter returns 1 whatever the value: the sizes are the int cast to size_t
 * (-1 is huge), M_MMAP_THRESHOLD has no upper limit any more, and M_ARENA_TEST/M_ARENA_MAX ignore
 * values <= 0 but still return 1. */
#define MXFAST_MAX ((int)(80 * sizeof(size_t) / 4))
static const struct {
  int param, value, glibc;
} glibc_answers[] = {
    {M_MXFAST, INT_MIN, 0},           {M_MXFAST, -1, 0},
    {M_MXFAST, 0, 1},                 {M_MXFAST, 1, 1},
    {M_MXFAST, 64, 1},                {M_MXFAST, MXFAST_MAX, 1},
    {M_MXFAST, MXFAST_MAX + 1, 0},    {M_MXFAST, 4096, 0},
    {M_MXFAST, INT_MAX, 0},           {M_TRIM_THRESHOLD, INT_MIN, 1},
    {M_TRIM_THRESHOLD, -1, 1},        {M_TRIM_THRESHOLD, 0, 1},
    {M_TRIM_THRESHOLD, 128 << 10, 1}, {M_TRIM_THRESHOLD, INT_MAX, 1},
    {M_TOP_PAD, -2, 1},               {M_TOP_PAD, -1, 1},
    {M_TOP_PAD, 0, 1},                {M_TOP_PAD, 64 << 10, 1},
    {M_TOP_PAD, INT_MAX, 1},          {M_MMAP_THRESHOLD, -1, 1},
    {M_MMAP_THRESHOLD, 0, 1},         {M_MMAP_THRESHOLD, 4096, 1},
    {M_MMAP_THRESHOLD, 128 << 10, 1}, {M_MMAP_THRESHOLD, 32 << 20, 1},
    {M_MMAP_THRESHOLD, (32 << 20) + 1, 1}, {M_MMAP_THRESHOLD, 64 << 20, 1},
    {M_MMAP_THRESHOLD, INT_MAX, 1},   {M_MMAP_MAX, -1, 1},
    {M_MMAP_MAX, 0, 1},               {M_MMAP_MAX, 65536, 1},
    {M_CHECK_ACTION, -1, 1},          {M_CHECK_ACTION, 0, 1},
    {M_CHECK_ACTION, 3, 1},           {M_PERTURB, -1, 1},
    {M_PERTURB, 0, 1},                {M_PERTURB, 0x5a, 1},
    {M_ARENA_TEST, -1, 1},            {M_ARENA_TEST, 0, 1},
    {M_ARENA_TEST, 1, 1},             {M_ARENA_TEST, 8, 1},
    {M_ARENA_MAX, -1, 1},             {M_ARENA_MAX, 0, 1},
    {M_ARENA_MAX, 1, 1},              {M_ARENA_MAX, 4, 1},
};
#define N_GLIBC_ANSWERS (sizeof glibc_answers / sizeof glibc_answers[0])

static const int all_options[] = {TA_OPT_MMAP_THRESHOLD, TA_OPT_TRIM_THRESHOLD, TA_OPT_TOP_PAD,
                                  TA_OPT_DECAY_MS, TA_OPT_ARENA_MAX, TA_OPT_BACKGROUND_THREAD};
#define N_OPTIONS (sizeof all_options / sizeof all_options[0])

/* What glibc's value means in tamalloc: the option it sets and the value ta_getopt must read after
 * it, or -2 when the call must leave every option as it was. */
static void glibc_meaning(int param, int value, int *option, long *want) {
  /* glibc's reading of a size: the int converted to size_t; beyond LONG_MAX is "infinite". */
  size_t as_size = (size_t)(long)value;
  long huge = as_size > (size_t)LONG_MAX ? LONG_MAX : (long)as_size;
  *option = 0;
  *want = -2;
  switch (param) {
    case M_TRIM_THRESHOLD: *option = TA_OPT_TRIM_THRESHOLD; *want = huge; break;
    case M_TOP_PAD: *option = TA_OPT_TOP_PAD; *want = huge; break;
    case M_MMAP_THRESHOLD: /* within tamalloc's range, 4 KiB .. 32 MiB */
      *option = TA_OPT_MMAP_THRESHOLD;
      *want = huge < 4096 ? 4096 : huge > (32l << 20) ? (32l << 20) : huge;
      break;
    case M_ARENA_MAX: /* negative: ignored, as glibc does; 0 lifts the cap (glibc ignores it) */
      if (value >= 0) {
        *option = TA_OPT_ARENA_MAX;
        *want = value;
      }
      break;
    default: break;
  }
}

static void test_glibc_form(void) {
  long saved[N_OPTIONS];
  for (size_t o = 0; o < N_OPTIONS; o++) saved[o] = ta_getopt(all_options[o]);
  for (size_t i = 0; i < N_GLIBC_ANSWERS; i++) {
    int param = glibc_answers[i].param, value = glibc_answers[i].value;
    long before[N_OPTIONS];
    for (size_t o = 0; o < N_OPTIONS; o++) before[o] = ta_getopt(all_options[o]);
    int got = ta_router_mallopt_glibc(param, value);
    CHECK_MSG(got == glibc_answers[i].glibc, "mallopt(%d, %d) = %d, glibc returns %d", param, value, got,
              glibc_answers[i].glibc);
    int option;
    long want;
    glibc_meaning(param, value, &option, &want);
    for (size_t o = 0; o < N_OPTIONS; o++) {
      long now = ta_getopt(all_options[o]);
      long expect = all_options[o] == option ? want : before[o];
      CHECK_MSG(now == expect, "after mallopt(%d, %d) option %d reads %ld, want %ld", param, value,
                all_options[o], now, expect);
    }
    /* The allocator keeps working under it. */
    void *p = ta_malloc(1000), *q = ta_malloc(300 * TB_KIB);
    CHECK(p != NULL && q != NULL);
    ta_free(p);
    ta_free(q);
  }

  /* M_TRIM_THRESHOLD -1 means the brk top never shrinks: the policy keeps every unit of a segment
   * whose whole tail is free and due, whatever the top pad. */
  CHECK(ta_router_mallopt_glibc(M_TRIM_THRESHOLD, -1) == 1);
  size_t never = (size_t)ta_getopt(TA_OPT_TRIM_THRESHOLD);
  CHECK_MSG(ta_trim_brk_keep(64, 1, true, never, 0) == 64, "mallopt(M_TRIM_THRESHOLD, -1): the brk top shrinks");
  CHECK(ta_router_mallopt_glibc(M_TRIM_THRESHOLD, 128 << 10) == 1);
  CHECK(ta_trim_brk_keep(64, 1, true, (size_t)ta_getopt(TA_OPT_TRIM_THRESHOLD), 0) < 64);

  for (size_t o = 0; o < N_OPTIONS; o++) CHECK(ta_mallopt(all_options[o], saved[o]) == 1);
}

/* The table above is glibc's own answer: where the standard name is glibc's (and no sanitizer's),
 * ask it, in a child, since the values would leave glibc's allocator oddly tuned. */
static void test_table_is_glibc(void) {
#if !TA_TEST_OVERRIDE && !TA_TEST_SANITIZED
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    int wrong = 0;
    for (size_t i = 0; i < N_GLIBC_ANSWERS; i++) {
      int got = mallopt(glibc_answers[i].param, glibc_answers[i].value);
      if (got != glibc_answers[i].glibc) {
        fprintf(stderr, "glibc's mallopt(%d, %d) = %d, the table says %d\n", glibc_answers[i].param,
                glibc_answers[i].value, got, glibc_answers[i].glibc);
        wrong = 1;
      }
    }
    _exit(wrong);
  }
  int status;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the table is not what glibc's mallopt returns");
#endif
}

int main(void) {
  test_default_router();
  test_moved_router();
  test_blocks_outlive_threshold();
  test_refused();
  test_round_trips();
  test_glibc_form();
  test_table_is_glibc();
  set_threshold(TB_ROUTER_LINE);
  return 0;
}
