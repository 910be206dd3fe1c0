/* Misuse of large blocks, as death tests (tests/misuse/death.h): each case runs in a forked child
 * and must end in SIGABRT with tamalloc's exact one-line message. The second free comes from
 * another thread, and of a block freed long before (after a thousand other large frees: more than
 * any ring of recent frees remembers), so the registry's tombstones are what names it. The
 * standard names are tested when the build overrides them, the ta_* names otherwise. */
#include <pthread.h>

#include "large_util.h"
#include "misuse/death.h"

#define BIG (256 * KIB)
#define MANY 1000

static void *victim;      /* the block the other thread misuses */
static size_t other_size; /* realloc's size, for the realloc cases */
static enum { DO_FREE, DO_REALLOC, DO_FREE_SIZED } other_op;

static void *other(void *arg) {
  (void)arg;
  death_expect_ptr(victim);
  switch (other_op) {
    case DO_FREE: TN(free)(hide(victim)); break;
    case DO_REALLOC: {
      void *q = TN(realloc)(hide(victim), other_size);
      (void)q;
      break;
    }
    case DO_FREE_SIZED: TN(free_sized)(hide(victim), BIG); break;
  }
  return NULL;
}

/* The other thread does other_op on victim; returning at all means no abort came. */
static void in_other_thread(void) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, other, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
}

/* A fixed threshold, so that every BIG block is a mapping of its own (the adaptive one would rise
 * at the first free and send the next ones to the bins). */
static void set_threshold(int bytes) {
#if TA_TEST_STD_NAMES
  CHECK(mallopt(M_MMAP_THRESHOLD, bytes) == 1);
#else
  CHECK(ta_mallopt(TA_OPT_MMAP_THRESHOLD, bytes) == 1);
#endif
}
static void fixed_threshold(void) { set_threshold(128 * 1024); }

static void df_other_thread(void) {
  fixed_threshold();
  victim = TN(malloc)(BIG);
  memset(victim, 1, BIG);
  TN(free)(hide(victim));
  other_op = DO_FREE;
  in_other_thread();
}

/* MANY blocks live at once (distinct addresses), all freed; then the first one freed is freed again
 * by another thread. */
static void df_after_many(void) {
  fixed_threshold();
  static void *blocks[MANY];
  for (int i = 0; i < MANY; i++) {
    blocks[i] = TN(malloc)(BIG);
    CHECK(blocks[i] != NULL);
    ((char *)blocks[i])[0] = (char)i;
  }
  for (int i = 0; i < MANY; i++) TN(free)(hide(blocks[i]));
  victim = blocks[0];
  other_op = DO_FREE;
  in_other_thread();
}

/* The same with the main thread second, after another thread made and freed them all. */
static void *make_and_free_many(void *arg) {
  void **blocks = arg;
  for (int i = 0; i < MANY; i++) blocks[i] = TN(malloc)(BIG);
  for (int i = 0; i < MANY; i++) TN(free)(hide(blocks[i]));
  return NULL;
}
static void df_main_after_thread(void) {
  fixed_threshold();
  static void *blocks[MANY];
  pthread_t t;
  CHECK(pthread_create(&t, NULL, make_and_free_many, blocks) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  death_expect_ptr(blocks[MANY / 2]);
  TN(free)(hide(blocks[MANY / 2]));
}

/* Blocks above the largest class with the threshold above them: their mappings are retained at
 * free (not unmapped), and a second free is still a double free. */
static void df_retained(void) {
  set_threshold(8 * 1024 * 1024);
  victim = TN(malloc)(2 * MIB);
  CHECK(victim != NULL);
  TN(free)(hide(victim));
  other_op = DO_FREE;
  in_other_thread();
}

static void realloc_freed_other_thread(void) {
  fixed_threshold();
  victim = TN(malloc)(BIG);
  TN(free)(hide(victim));
  for (int i = 0; i < MANY / 10; i++) TN(free)(TN(malloc)(BIG + (size_t)i * 4096));
  other_op = DO_REALLOC;
  other_size = 4 * MIB;
  in_other_thread();
}

static void free_sized_freed_other_thread(void) {
  fixed_threshold();
  victim = TN(malloc)(BIG);
  TN(free)(hide(victim));
  other_op = DO_FREE_SIZED;
  in_other_thread();
}

/* Not a block: a live large block's interior, from another thread. */
static void invalid_interior_other_thread(void) {
  fixed_threshold();
  char *p = TN(malloc)(BIG);
  victim = p + 4096;
  other_op = DO_FREE;
  in_other_thread();
}

/* The page of a freed block's header, now unmapped, freed at its first byte: never ours. */
static void invalid_freed_page_start(void) {
  fixed_threshold();
  char *p = TN(malloc)(BIG);
  TN(free)(hide(p));
  victim = p - 16;
  other_op = DO_FREE;
  in_other_thread();
}

/* A large header's size overwritten, then the block met by realloc (to a mapped and to a small
 * size), free_sized and free, from another thread. */
static void corrupt(size_t op_size) {
  fixed_threshold();
  char *p = TN(malloc)(BIG);
  size_t bogus = 64 * MIB;
  memcpy(hide(p - 16), &bogus, sizeof bogus);
  victim = p;
  other_size = op_size;
}
static void hdr_realloc_up(void) {
  corrupt(4 * MIB);
  other_op = DO_REALLOC;
  in_other_thread();
}
static void hdr_realloc_down(void) {
  corrupt(1000);
  other_op = DO_REALLOC;
  in_other_thread();
}
static void hdr_free_sized(void) {
  corrupt(0);
  other_op = DO_FREE_SIZED;
  in_other_thread();
}
static void hdr_free(void) {
  corrupt(0);
  other_op = DO_FREE;
  in_other_thread();
}

/* Not misuse: a thousand large frees, each once, across threads, end cleanly. */
static void clean_many(void) {
  fixed_threshold();
  static void *blocks[MANY];
  pthread_t t;
  CHECK(pthread_create(&t, NULL, make_and_free_many, blocks) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  for (int i = 0; i < MANY; i++) TN(free)(TN(malloc)(BIG)); /* the tombstones are overwritten */
}

#define DF "tamalloc: free(): double free "
typedef struct {
  const char *name;
  void (*body)(void);
  death_mode_t mode;
  const char *want;
} case_t;

static const case_t cases[] = {
    {"df_other_thread", df_other_thread, DEATH_LINE, DF},
    {"df_after_many", df_after_many, DEATH_LINE, DF},
    {"df_main_after_thread", df_main_after_thread, DEATH_LINE, DF},
    {"df_retained", df_retained, DEATH_LINE, DF},
    {"realloc_freed_other_thread", realloc_freed_other_thread, DEATH_LINE, "tamalloc: realloc(): double free "},
    {"free_sized_freed_other_thread", free_sized_freed_other_thread, DEATH_LINE,
     "tamalloc: free_sized(): double free "},
    {"invalid_interior_other_thread", invalid_interior_other_thread, DEATH_LINE, "tamalloc: free(): invalid pointer "},
    {"invalid_freed_page_start", invalid_freed_page_start, DEATH_LINE, "tamalloc: free(): invalid pointer "},
    {"hdr_realloc_up", hdr_realloc_up, DEATH_LINE, "tamalloc: realloc(): corrupted large block header at "},
    {"hdr_realloc_down", hdr_realloc_down, DEATH_LINE, "tamalloc: realloc(): corrupted large block header at "},
    {"hdr_free_sized", hdr_free_sized, DEATH_LINE, "tamalloc: free_sized(): corrupted large block header at "},
    {"hdr_free", hdr_free, DEATH_LINE, "tamalloc: free(): corrupted large block header at "},
    {"clean_many", clean_many, DEATH_NONE, ""},
};

int main(int argc, char **argv) {
  int failed = 0, ran = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) continue;
    failed += death_run(cases[i].name, cases[i].body, cases[i].mode, cases[i].want);
    ran++;
  }
  CHECK_MSG(ran > 0, "no case named %s", argc > 1 ? argv[1] : "");
  return failed != 0;
}
