/* The whole-heap validator, ta_validate: no false alarm on a heap in every state the allocator leaves
 * it in (current, parked and trimmed pages, remote frees pending, arenas in the pool), and a death
 * with the address named for each kind of corruption forged here through the internal headers.
 * Usage: validate_test CASE (as meson runs them) or validate_test (every case). */
#include <pthread.h>

#include "arenas/arena.h"
#include "misuse/death.h"
#include "arenas/page.h"

#define NBLOCKS 20000

static void *blocks[NBLOCKS]; /* 16-byte blocks: several pages of class 0, the first ones parked */

static void *thread_alloc(void *arg) {
  (void)arg;
  for (size_t i = NBLOCKS / 2; i < NBLOCKS; i++) CHECK((blocks[i] = ta_malloc(16)) != NULL);
  CHECK(ta_validate() == 0); /* its own arena, the main thread's left alone */
  return NULL;
}

static void *thread_free_some(void *arg) {
  (void)arg;
  for (size_t i = 0; i < NBLOCKS / 2; i += 7) ta_free(blocks[i]); /* remote frees into main's pages */
  CHECK(ta_validate() == 0);
  return NULL;
}

static void healthy(void) {
  CHECK(ta_validate() == 0); /* before any allocation */
  for (size_t i = 0; i < NBLOCKS / 2; i++) CHECK((blocks[i] = ta_malloc(16)) != NULL);
  void *big = ta_malloc(300000), *mid = ta_malloc(70000);
  CHECK(big && mid);
  CHECK(ta_validate() == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, thread_alloc, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0); /* its arena is in the pool now, its blocks live */
  CHECK(ta_validate() == 0);
  CHECK(pthread_create(&t, NULL, thread_free_some, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(ta_validate() == 0); /* remote frees waiting on main's pages and on its arena's list */
  for (size_t i = NBLOCKS / 2; i < NBLOCKS; i += 3) ta_free(blocks[i]); /* into a pooled arena */
  for (size_t i = 1; i < NBLOCKS / 2; i += 7) ta_free(blocks[i]);
  CHECK(ta_validate() == 0);
  CHECK(ta_malloc(16) != NULL); /* collects the remote frees */
  CHECK(ta_trim(0) == 1);       /* pages with free OS pages inside them purged */
  CHECK(ta_validate() == 0);
  ta_free(big);
  ta_free(mid);
  CHECK(ta_validate() == 0);
  printf("validate: no false alarm\n");
}

/* Two neighbouring free blocks of one page, a at the head of its free list and linking to b. */
static void free_pair(char **a, char **b) {
  *a = ta_malloc(64);
  *b = ta_malloc(64);
  CHECK(*a && *b && *b == *a + 64);
  ta_free(*b);
  ta_free(*a);
  CHECK(ta_arena_page_checked(*a)->free == (ta_block_t *)*a);
}

static void forged_used(void) {
  char *p = ta_malloc(64);
  CHECK(p != NULL);
  ta_page_t *page = ta_arena_page_checked(p);
  page->used++; /* one block more in use than the page has */
  death_expect_ptr(page);
  ta_validate();
}

static void forged_link_interior(void) {
  char *a, *b;
  free_pair(&a, &b);
  ((ta_block_t *)a)->next_enc = ta_link_encode((ta_block_t *)(b + 16));
  death_expect_ptr(a);
  ta_validate();
}

static void forged_link_cycle(void) {
  char *a, *b;
  free_pair(&a, &b);
  ((ta_block_t *)b)->next_enc = ta_link_encode((ta_block_t *)a);
  death_expect_ptr(a);
  ta_validate();
}

static void forged_unit(void) {
  char *p = ta_malloc(64);
  CHECK(p != NULL);
  ta_segment_t *seg = ta_seg_of(p);
  CHECK(__builtin_popcountll(seg->free_units) >= 2); /* so the segment stays on its list */
  unsigned u = 63 - (unsigned)__builtin_clzll(seg->free_units);
  seg->free_units &= ~((uint64_t)1 << u); /* a unit lost: neither free nor in a span */
  seg->dirty_units &= ~((uint64_t)1 << u);
  death_expect_ptr((char *)seg + (size_t)u * TA_UNIT_SIZE);
  ta_validate();
}

#define FAILED "tamalloc: heap check failed: "
static const struct {
  const char *name;
  void (*body)(void);
  death_mode_t mode;
  const char *want;
} cases[] = {
    {"healthy", healthy, DEATH_NONE, NULL},
    {"used", forged_used, DEATH_LINE, FAILED "page used count and free list exceed its carved blocks at "},
    {"link_interior", forged_link_interior, DEATH_LINE, FAILED "free-list link not at a block start at "},
    {"link_cycle", forged_link_cycle, DEATH_LINE, FAILED "block twice on its page's free lists at "},
    {"unit", forged_unit, DEATH_LINE, FAILED "unit in use but in no live span at "},
};
#define N_CASES (sizeof cases / sizeof cases[0])

/* The healthy case runs in this process (it starts threads, which some sanitizers do not allow in
 * a fork child); each forged corruption in a child of its own. */
static int run_case(size_t i) {
  if (cases[i].mode == DEATH_NONE) {
    cases[i].body();
    return 0;
  }
  return death_run(cases[i].name, cases[i].body, cases[i].mode, cases[i].want);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  if (argc > 1) {
    for (size_t i = 0; i < N_CASES; i++)
      if (strcmp(argv[1], cases[i].name) == 0) return run_case(i);
    fprintf(stderr, "unknown case %s\n", argv[1]);
    return 2;
  }
  int failed = 0;
  for (size_t i = 0; i < N_CASES; i++) failed += run_case(i);
  return failed ? 1 : 0;
}
