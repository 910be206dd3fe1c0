/* The glibc-compatible names, tamalloc's only in an override build (meson registers this test only
 * then, and only without a sanitizer, whose interceptors would answer instead):
 *  - mallopt with <malloc.h>'s numbers: the four that tamalloc honours show in ta_getopt, five more
 *    are accepted and change nothing, unknown numbers are refused;
 *  - mallinfo2: uordblks grows by at least the bytes allocated from arenas, hblks/hblkhd are the large
 *    blocks and their bytes (as ta_stats_get counts them), fordblks = arena - uordblks;
 *    mallinfo: the same numbers in ints, clamped;
 *  - malloc_stats: the text report on stderr;
 *  - malloc_info(0, f): XML in glibc's shape, well formed (python's xml.etree). */
#include "stats.h"

#include <malloc.h>

#define N_BLOCKS 1000
#define BLOCK 1000

static char text[1 << 20];

static void all_opts(long out[7]) {
  for (int o = 1; o <= 6; o++) out[o] = ta_getopt(o);
}

static void test_mallopt(void) {
  long before[7], after[7];
  all_opts(before);
  static const struct {
    int param, value, opt;
    long expect;
  } honoured[] = {
      {M_MMAP_THRESHOLD, 64 * 1024, TA_OPT_MMAP_THRESHOLD, 65536},
      {M_MMAP_THRESHOLD, 512 * 1024, TA_OPT_MMAP_THRESHOLD, 524288},
      {M_TRIM_THRESHOLD, 256 * 1024, TA_OPT_TRIM_THRESHOLD, 262144},
      {M_TRIM_THRESHOLD, 0, TA_OPT_TRIM_THRESHOLD, 0},
      {M_TOP_PAD, 64 * 1024, TA_OPT_TOP_PAD, 65536},
      {M_TOP_PAD, 0, TA_OPT_TOP_PAD, 0},
      {M_ARENA_MAX, 4, TA_OPT_ARENA_MAX, 4},
      {M_ARENA_MAX, 0, TA_OPT_ARENA_MAX, 0},
  };
  for (size_t i = 0; i < sizeof honoured / sizeof honoured[0]; i++) {
    int rc = mallopt(honoured[i].param, honoured[i].value);
    CHECK_MSG(rc == 1, "mallopt(%d, %d) returned %d", honoured[i].param, honoured[i].value, rc);
    CHECK_MSG(ta_getopt(honoured[i].opt) == honoured[i].expect, "after mallopt(%d, %d): ta_getopt(%d) = %ld, want %ld",
              honoured[i].param, honoured[i].value, honoured[i].opt, ta_getopt(honoured[i].opt), honoured[i].expect);
    void *p = malloc(100), *q = malloc(300 * 1024);
    CHECK(p != NULL && q != NULL);
    free(p);
    free(q);
  }
  for (int o = 1; o <= 6; o++) CHECK(ta_mallopt(o, before[o]) == 1 || o == TA_OPT_BACKGROUND_THREAD);

  static const int accepted[][2] = {{M_MXFAST, 64},    {M_MXFAST, 0},    {M_MMAP_MAX, 65536}, {M_MMAP_MAX, 0},
                                    {M_CHECK_ACTION, 3}, {M_PERTURB, 0x5a}, {M_PERTURB, 0},    {M_ARENA_TEST, 8}};
  for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
    all_opts(before);
    int rc = mallopt(accepted[i][0], accepted[i][1]);
    CHECK_MSG(rc == 1, "mallopt(%d, %d) returned %d; accepted and ignored, it should return 1", accepted[i][0],
              accepted[i][1], rc);
    all_opts(after);
    for (int o = 1; o <= 6; o++)
      CHECK_MSG(after[o] == before[o], "mallopt(%d, %d) changed option %d from %ld to %ld", accepted[i][0],
                accepted[i][1], o, before[o], after[o]);
  }
  static const int unknown[] = {12345, -100, 999, -9999};
  all_opts(before);
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
    CHECK_MSG(mallopt(unknown[i], 1) == 0, "mallopt(%d, 1) accepted an unknown parameter", unknown[i]);
  all_opts(after);
  for (int o = 1; o <= 6; o++) CHECK_EQ_SZ(after[o], before[o]);
}

static void *blocks[N_BLOCKS];

static int clamp_int(size_t v) { return v > (size_t)INT_MAX ? INT_MAX : (int)v; }

/* mallinfo taken right after mallinfo2, nothing in between: the same numbers, clamped to int. */
static void check_mallinfo_matches(void) {
  struct mallinfo2 m2 = mallinfo2();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  struct mallinfo m = mallinfo();
#pragma GCC diagnostic pop
#define SAME(field)                                                                                  \
  CHECK_MSG(m.field == clamp_int(m2.field), "mallinfo()." #field " = %d, mallinfo2()." #field " = %zu", m.field, \
            m2.field)
  SAME(arena);
  SAME(ordblks);
  SAME(smblks);
  SAME(hblks);
  SAME(hblkhd);
  SAME(usmblks);
  SAME(fsmblks);
  SAME(uordblks);
  SAME(fordblks);
  SAME(keepcost);
#undef SAME
}

static void check_mallinfo2_shape(const struct mallinfo2 *m, const char *when) {
  ta_stats_t st = ss_stats();
  CHECK_MSG(m->arena >= m->uordblks, "%s: mallinfo2 arena %zu < uordblks %zu", when, m->arena, m->uordblks);
  CHECK_MSG(m->fordblks == m->arena - m->uordblks, "%s: fordblks %zu, arena - uordblks = %zu", when, m->fordblks,
            m->arena - m->uordblks);
  CHECK_MSG(m->hblks == st.large_blocks, "%s: hblks %zu, ta_stats_get large_blocks %zu", when, m->hblks,
            st.large_blocks);
  CHECK_MSG(m->hblkhd == st.large_bytes, "%s: hblkhd %zu, ta_stats_get large_bytes %zu", when, m->hblkhd,
            st.large_bytes);
  CHECK_MSG(m->keepcost <= m->arena + m->hblkhd, "%s: keepcost %zu", when, m->keepcost);
}

static void test_mallinfo(void) {
  struct mallinfo2 a = mallinfo2();
  check_mallinfo2_shape(&a, "at the start");
  for (int i = 0; i < N_BLOCKS; i++) {
    blocks[i] = malloc(BLOCK);
    CHECK(blocks[i] != NULL);
    memset(blocks[i], i, BLOCK);
  }
  struct mallinfo2 b = mallinfo2();
  check_mallinfo2_shape(&b, "after 1000 blocks");
  CHECK_MSG(b.uordblks >= a.uordblks + (size_t)N_BLOCKS * BLOCK,
            "1000 blocks of 1000 bytes moved uordblks only from %zu to %zu", a.uordblks, b.uordblks);
  CHECK_MSG(b.hblks == a.hblks, "small blocks moved hblks %zu -> %zu", a.hblks, b.hblks);
  check_mallinfo_matches();

  void *large = malloc(TB_MIB);
  CHECK(large != NULL);
  struct mallinfo2 c = mallinfo2();
  check_mallinfo2_shape(&c, "with a 1 MiB block");
  CHECK_MSG(c.hblks == b.hblks + 1 && c.hblkhd >= b.hblkhd + TB_MIB, "malloc(1 MiB): hblks %zu -> %zu, hblkhd %zu -> %zu",
            b.hblks, c.hblks, b.hblkhd, c.hblkhd);
  check_mallinfo_matches();

  /* A large block bigger than INT_MAX, untouched: mallinfo's hblkhd clamps. */
  void *huge = malloc((size_t)3 << 30);
  if (huge != NULL) {
    struct mallinfo2 h = mallinfo2();
    CHECK_MSG(h.hblkhd >= ((size_t)3 << 30), "malloc(3 GiB): hblkhd %zu", h.hblkhd);
    check_mallinfo_matches();
    free(huge);
  } else {
    fprintf(stderr, "note: malloc(3 GiB) failed here; the clamp check is skipped\n");
  }

  free(large);
  for (int i = 0; i < N_BLOCKS; i++) free(blocks[i]);
  struct mallinfo2 d = mallinfo2();
  check_mallinfo2_shape(&d, "after freeing");
  CHECK_MSG(d.hblks == a.hblks && d.hblkhd == a.hblkhd, "after freeing: hblks %zu, hblkhd %zu (was %zu, %zu)", d.hblks,
            d.hblkhd, a.hblks, a.hblkhd);
  CHECK_MSG(d.uordblks + (size_t)N_BLOCKS * BLOCK <= b.uordblks, "after freeing: uordblks %zu (%zu with the blocks)",
            d.uordblks, b.uordblks);
  check_mallinfo_matches();
}

static void test_malloc_stats(void) {
  int mem;
  int saved = ss_stderr_begin(&mem);
  malloc_stats();
  size_t len = ss_stderr_end(saved, mem, text, sizeof text);
  CHECK_MSG(len > 0, "malloc_stats() wrote nothing to stderr");
  CHECK_MSG(ss_contains(text, "live") && ss_contains(text, "segments"),
            "malloc_stats()'s report lacks \"live\" or \"segments\":\n%s", text);
}

static void test_malloc_info(void) {
  void *keep = malloc(5000);
  CHECK(keep != NULL);
  FILE *f = ss_capture_begin();
  int rc = malloc_info(0, f);
  size_t len = ss_capture_end(f, text, sizeof text);
  CHECK_MSG(rc == 0, "malloc_info(0, f) returned %d", rc);
  CHECK_MSG(ss_contains(text, "<malloc version=\"1\">"), "malloc_info: no <malloc version=\"1\">:\n%.3000s", text);
  CHECK_MSG(ss_contains(text, "<heap nr=\"0\">"), "malloc_info: no <heap nr=\"0\">:\n%.3000s", text);
  const char *end = text + len;
  while (end > text && (end[-1] == '\n' || end[-1] == ' ')) end--;
  CHECK_MSG(end - text >= 9 && memcmp(end - 9, "</malloc>", 9) == 0, "malloc_info does not end with </malloc>");
  ss_python_check("import sys, xml.etree.ElementTree as E\n"
                  "r = E.parse(sys.argv[1]).getroot()\n"
                  "assert r.tag == 'malloc' and r.get('version') == '1', (r.tag, r.attrib)\n"
                  "assert any(h.get('nr') == '0' for h in r.iter('heap')), 'no heap nr=0'\n",
                  text, len, "malloc_info's XML");
  free(keep);
}

int main(void) {
  free(malloc(1));
  test_mallopt();
  test_mallinfo();
  test_malloc_stats();
  test_malloc_info();
  return 0;
}
