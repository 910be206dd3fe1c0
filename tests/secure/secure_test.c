/* Heap attacks against the secure variant (and what the default build makes of them): overflows
 * and underflows of 1 and 32 bytes at small, medium and large sizes, a 1 MiB overflow, writes after
 * free, reading a freed block, the next malloc or realloc reusing the block just freed, reads and
 * writes through malloc(0), double and invalid frees. Each case runs in a forked child (death.h)
 * and is checked against the exact message (or signal) the build must end it with.
 * Usage: secure_test CASE SIZE (as meson runs them). Built twice: TA_TEST_SECURE 1 against
 * libtamalloc-secure, 0 against libtamalloc, where only the cases the default build catches run. */
#include <sys/mman.h>

#include "misuse/death.h"

#ifndef TA_TEST_SECURE
#define TA_TEST_SECURE 1
#endif
#ifndef TA_TEST_HARDENING
#define TA_TEST_HARDENING 1
#endif
#ifndef TA_TEST_SANITIZED
#define TA_TEST_SANITIZED 0
#endif

static size_t g_size; /* the size the case works on, set before the fork */

static char *get(size_t size) {
  char *p = TN(malloc)(size);
  CHECK(p != NULL);
  return hide(p);
}

/* ---- overflows and underflows ---- */

static void overflow_1(void) {
  char *p = get(g_size);
  death_expect_ptr(p);
  p[g_size] = 'A';
  TN(free)(hide(p));
}

static void overflow_32(void) {
  char *p = get(g_size);
  death_expect_ptr(p);
  memset(p + g_size, 'A', 32);
  TN(free)(hide(p));
}

/* Writing the terminating NUL one past the end, the commonest off-by-one. */
static void overflow_nul(void) {
  char *p = get(g_size);
  death_expect_ptr(p);
  memset(p, 'x', g_size);
  p[g_size] = '\0';
  TN(free)(hide(p));
}

static void overflow_realloc(void) {
  char *p = get(g_size);
  death_expect_ptr(p);
  p[g_size] = 'A';
  void *q = TN(realloc)(p, g_size * 2);
  fprintf(stderr, "realloc returned %p\n", q);
}

/* Far past a mapped block: the guard page after it stops the first write. */
static void overflow_1m(void) {
  char *p = get(g_size);
  memset(p + g_size, 'A', (size_t)1 << 20);
  TN(free)(hide(p));
}

/* Two neighbours of the same size: the lower one's trailer is what an underflow of the upper one
 * reaches, and its check on free names the lower block. The secure build carves a page in a random
 * order: among 256 blocks some two are adjacent in all but a negligible share of runs. */
static void neighbours(char **lo, char **hi) {
  enum { N = 256 };
  char *b[N];
  for (int i = 0; i < N; i++) b[i] = get(g_size);
  size_t stride = SIZE_MAX;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++)
      if (b[j] > b[i] && (size_t)(b[j] - b[i]) < stride) {
        stride = (size_t)(b[j] - b[i]);
        *lo = b[i];
        *hi = b[j];
      }
  CHECK(stride != SIZE_MAX);
}

static void underflow_1(void) {
  char *lo, *hi;
  neighbours(&lo, &hi);
  death_expect_ptr(lo);
  /* A byte that differs from the one there: the check word's last byte is random, and was 'A' in 1
   * run of 256 (the write changed nothing and the free rightly passed). */
  hi[-1] = hi[-1] == 'A' ? 'B' : 'A';
  TN(free)(hide(lo));
}

static void underflow_32(void) {
  char *lo, *hi;
  neighbours(&lo, &hi);
  death_expect_ptr(lo);
  memset(hi - 32, 'A', 32);
  TN(free)(hide(lo));
}

/* Below a mapped block is its header, whose size and offset every build checks (a write into the
 * tag alone, p[-1], is not caught by either). */
static void underflow_large(void) {
  char *p = get(g_size);
  death_expect_ptr(p);
  memset(p - 16, 'A', 16);
  TN(free)(hide(p));
}

/* ---- after free ---- */

/* What the secure variant zeroes and checks of a freed block of the arenas (src/secure.c,
 * scrub_range): a block of up to 8 KiB whole; of a bigger one its first 8 KiB and its last 64
 * bytes asked for. */
#define SCRUB ((size_t)8 << 10)
#define SCRUB_TAIL ((size_t)64)
static bool scrubbed(size_t i) { return g_size <= SCRUB || i < SCRUB || i + SCRUB_TAIL >= g_size; }

/* Enough frees of other blocks to push the written one out of any quarantine. */
static void churn(void) {
  for (int i = 0; i < 2000; i++) TN(free)(get(64));
}

static void write_after_free(void) {
  char *p = get(g_size);
  death_expect_ptr(p);
  TN(free)(hide(p));
  p[g_size <= SCRUB ? g_size / 2 : SCRUB / 2] = 'A';
  churn();
}

static void write_after_free_trim(void) {
  char *p = get(g_size);
  death_expect_ptr(p);
  TN(free)(hide(p));
  p[g_size - 1] = 'A';
  ta_trim(0);
}

static void zero_after_free(void) {
  char *p = get(g_size);
  memset(p, 0xa5, g_size);
  TN(free)(hide(p));
  for (size_t i = 0; i < g_size; i++)
    if (scrubbed(i)) CHECK_MSG(((volatile char *)p)[i] == 0, "byte %zu not zero", i);
}

/* A big freed block is zeroed whole (src/secure.c, large_zero), whether its pages are kept or given
 * back: once it has left the quarantine, whatever block the next mallocs get, its mapping among
 * them, reads zero. */
static void zero_after_reuse(void) {
  char *p = get(g_size);
  memset(p, 0xa5, g_size);
  TN(free)(hide(p));
  bool reused = false;
  for (int i = 0; i < 16; i++) {
    char *q = get(g_size);
    reused |= q == p;
    for (size_t j = 0; j < g_size; j += 8) CHECK_MSG(*(volatile uint64_t *)(q + j) == 0, "byte %zu not zero", j);
    TN(free)(hide(q));
  }
  /* Else the case tested nothing: the zeroing is seen only where the freed pages serve again. */
  CHECK_MSG(reused, "the freed block's address did not come back in 16 mallocs of its size");
}

static void reuse_malloc(void) {
  char *p = get(g_size);
  TN(free)(hide(p));
  char *q = get(g_size);
  CHECK_MSG(q != p, "malloc returned the block just freed, %p", (void *)p);
}

static void reuse_realloc(void) {
  char *p = get(g_size);
  TN(free)(hide(p));
  char *q = TN(realloc)(get(1), g_size);
  CHECK_MSG(q != p, "realloc returned the block just freed, %p", (void *)p);
}

/* ---- malloc(0) ---- */

static void zero_read(void) {
  volatile char *p = get(0);
  char c = p[0];
  fprintf(stderr, "read %d through malloc(0)\n", c);
}

static void zero_write(void) {
  volatile char *p = get(0);
  p[0] = 'A';
}

static void zero_legal(void) {
  char *a = get(0), *b = get(0);
  CHECK(a != b);
  CHECK(ta_owns(a));
  if (TA_TEST_SECURE) CHECK_EQ_SZ(ta_usable_size(a), 0);
  TN(free)(hide(a));
  if (TA_TEST_SECURE) CHECK(!ta_owns(a));
  char *c = TN(realloc)(b, 10);
  CHECK(c != NULL);
  memset(c, 1, 10);
  TN(free)(c);
  void *d = TN(calloc)(0, 5);
  CHECK(d != NULL);
  TN(free)(d);
}

/* ---- double and invalid frees ---- */

static void double_free(void) {
  char *p = get(g_size);
  death_expect_ptr(p);
  TN(free)(hide(p));
  TN(free)(hide(p));
}

static void zero_double_free(void) {
  char *p = get(0);
  death_expect_ptr(p);
  TN(free)(hide(p));
  TN(free)(hide(p));
}

static void double_free_later(void) {
  char *p = get(g_size);
  death_expect_ptr(p);
  TN(free)(hide(p));
  churn();
  TN(free)(hide(p));
}

static void free_interior(void) {
  char *p = get(g_size);
  death_expect_ptr(p + 8);
  TN(free)(hide(p + 8));
}

static void free_stack(void) {
  char buf[64];
  death_expect_ptr(buf);
  TN(free)(hide(buf));
}

static void owns_after_free(void) {
  char *p = get(g_size);
  CHECK(ta_owns(p));
  TN(free)(hide(p));
  CHECK(!ta_owns(p));
}

typedef struct secure_case_s {
  const char *name;
  void (*body)(void);
  death_mode_t mode; /* what the secure build does */
  const char *want;
  bool in_default;   /* the default build ends it the same way (else it is not run there) */
} secure_case_t;

#define MSG(func, what) "tamalloc: " func "(): " what " "

static const secure_case_t cases[] = {
    {"overflow_1", overflow_1, DEATH_LINE, MSG("free", "buffer overflow at"), false},
    {"overflow_32", overflow_32, DEATH_LINE, MSG("free", "buffer overflow at"), false},
    {"overflow_nul", overflow_nul, DEATH_LINE, MSG("free", "buffer overflow at"), false},
    {"overflow_realloc", overflow_realloc, DEATH_LINE, MSG("realloc", "buffer overflow at"), false},
    {"overflow_1m", overflow_1m, DEATH_SEGV, NULL, false},
    {"underflow_1", underflow_1, DEATH_LINE, MSG("free", "block trailer overwritten at"), false},
    {"underflow_32", underflow_32, DEATH_LINE, MSG("free", "buffer overflow at"), false},
    {"underflow_large", underflow_large, DEATH_LINE, MSG("free", "corrupted large block header at"), true},
    {"write_after_free", write_after_free, DEATH_LINE, MSG("free", "write after free at"), false},
    {"write_after_free_trim", write_after_free_trim, DEATH_LINE, MSG("malloc_trim", "write after free at"), false},
    {"zero_after_free", zero_after_free, DEATH_NONE, NULL, false},
    {"zero_after_reuse", zero_after_reuse, DEATH_NONE, NULL, false},
    {"reuse_malloc", reuse_malloc, DEATH_NONE, NULL, false},
    {"reuse_realloc", reuse_realloc, DEATH_NONE, NULL, false},
    {"zero_read", zero_read, DEATH_SEGV, NULL, false},
    {"zero_write", zero_write, DEATH_SEGV, NULL, false},
    {"zero_legal", zero_legal, DEATH_NONE, NULL, true},
    {"double_free", double_free, DEATH_LINE, MSG("free", "double free"), true},
    {"zero_double_free", zero_double_free, DEATH_LINE, MSG("free", "double free"), true},
    {"double_free_later", double_free_later, DEATH_LINE, MSG("free", "double free"), true},
    {"free_interior", free_interior, DEATH_LINE, MSG("free", "invalid pointer"), true},
    {"free_stack", free_stack, DEATH_LINE, MSG("free", "invalid pointer"), true},
    {"owns_after_free", owns_after_free, DEATH_NONE, NULL, true},
};
#define N_CASES (sizeof cases / sizeof cases[0])

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  if (argc != 3) {
    fprintf(stderr, "usage: secure_test CASE SIZE\n");
    return 2;
  }
  g_size = strtoull(argv[2], NULL, 0);
  for (size_t i = 0; i < N_CASES; i++) {
    const secure_case_t *c = &cases[i];
    if (strcmp(argv[1], c->name) != 0) continue;
    if (!TA_TEST_SECURE && !c->in_default) {
      fprintf(stderr, "%s: not caught by the default build (not run there)\n", c->name);
      return 77; /* meson: skipped */
    }
    if (c->mode == DEATH_SEGV && TA_TEST_SANITIZED) {
      fprintf(stderr, "%s: the sanitizer reports the fault itself (not run here)\n", c->name);
      return 77;
    }
    /* A double free of a block the router holds as free again is the hardened free path's to
     * catch (large blocks: the registry's, always); the secure variant's own mark catches it while
     * the block is in a quarantine. */
    bool router_df = strcmp(c->name, "double_free_later") == 0 || (!TA_TEST_SECURE && (strcmp(c->name, "double_free") == 0 || strcmp(c->name, "zero_double_free") == 0));
    if (router_df && !TA_TEST_HARDENING && g_size < 131072) {
      fprintf(stderr, "%s: not caught with -Dhardening=off (not run here)\n", c->name);
      return 77;
    }
    return death_run(c->name, c->body, c->mode, c->want);
  }
  fprintf(stderr, "unknown case %s\n", argv[1]);
  return 2;
}
