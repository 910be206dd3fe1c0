/* TAMALLOC_ARENA_MAX=N (set by meson; argv[1] repeats N): at most N arenas are ever created. Two waves
 * of 8 threads allocate, check patterns and free, some blocks freed by other threads; while a whole
 * wave is alive (held at a barrier) the JSON lists at most N arenas, at least one of them "shared"
 * (8 threads cannot each have their own). Deterministic by seed. */
#include "stats.h"

#define THREADS 8
#define SLOTS 128
#define BIG (1 << 20)

static long cap;
static uint64_t seed;
static long ops;
static pthread_barrier_t all_alive, snapshot_taken;
static st_mailbox_t mailbox[THREADS];
static char buf[BIG];

/* Mostly up to 1 KiB, one in eight across the whole range. */
static size_t small_size(test_rng_t *r) {
  return test_rng_below(r, 8) == 0 ? st_size(r) : tb_log_uniform(r, 0, 10);
}

static void *worker_main(void *arg) {
  unsigned me = (unsigned)(uintptr_t)arg;
  test_rng_t r = {seed + 131 * (me + 1)};
  st_block_t slots[SLOTS];
  memset(slots, 0, sizeof slots);
  uint64_t id = ((uint64_t)(me + 1) << 48) + 1;
  for (long op = 0; op < ops; op++) {
    if (op == ops / 2) { /* half way: everyone alive, holding blocks, while main looks */
      pthread_barrier_wait(&all_alive);
      pthread_barrier_wait(&snapshot_taken);
    }
    st_churn_step(slots, SLOTS, &mailbox[me % THREADS], &mailbox[(me + 3) % THREADS], &r, &id, small_size);
  }
  for (size_t i = 0; i < SLOTS; i++)
    if (slots[i].p) {
      st_check_block(&slots[i]);
      st_free_block(&slots[i], &r);
    }
  return NULL;
}

static void check_cap(const char *when) {
  ta_stats_t s = ss_stats();
  CHECK_MSG(s.arenas <= (size_t)cap, "%s: %zu arenas created with TAMALLOC_ARENA_MAX=%ld", when, s.arenas, cap);
}

static void wave(int w) {
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    CHECK(pthread_create(&t[i], NULL, worker_main, (void *)(uintptr_t)(w * THREADS + i)) == 0);
  pthread_barrier_wait(&all_alive);
  check_cap("8 threads alive");
  int root = ss_json_snapshot(buf, BIG, NULL);
  ss_check_stats_json(root, false);
  int arenas = js_path(root, "arenas");
  CHECK_MSG(js_nodes[arenas].count <= cap, "wave %d: the JSON lists %d arenas with TAMALLOC_ARENA_MAX=%ld", w,
            js_nodes[arenas].count, cap);
  int shared = 0;
  for (int a = js_nodes[arenas].first; a >= 0; a = js_nodes[a].next) shared += js_str_is(js_get(a, "state"), "shared");
  CHECK_MSG(shared >= 1, "wave %d: 8 threads live on at most %ld arenas, yet none is listed as \"shared\":\n%.3000s", w,
            cap, buf);
  pthread_barrier_wait(&snapshot_taken);
  for (int i = 0; i < THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  check_cap("after a wave");
}

int main(int argc, char **argv) {
  CHECK_MSG(argc > 1, "usage: stats_arena_max N (with TAMALLOC_ARENA_MAX=N)");
  cap = atol(argv[1]);
  CHECK(cap >= 1);
  seed = test_seed(4242);
  ops = test_scale(40000);
  ta_free(ta_malloc(1));
  CHECK_MSG(ta_getopt(TA_OPT_ARENA_MAX) == cap, "ta_getopt(ARENA_MAX) = %ld, the test runs with %ld",
            ta_getopt(TA_OPT_ARENA_MAX), cap);
  for (int i = 0; i < THREADS; i++) st_mailbox_init(&mailbox[i]);
  CHECK(pthread_barrier_init(&all_alive, NULL, THREADS + 1) == 0);
  CHECK(pthread_barrier_init(&snapshot_taken, NULL, THREADS + 1) == 0);
  /* The main thread allocates throughout too: one more sharer. */
  static void *mine[1000];
  for (int i = 0; i < 1000; i++) {
    mine[i] = ta_malloc(40);
    CHECK(mine[i] != NULL);
  }
  wave(0);
  wave(1);
  test_rng_t r = {seed};
  st_block_t got[ST_MAILBOX_CAP];
  for (int i = 0; i < THREADS; i++) {
    size_t k = st_mailbox_take(&mailbox[i], got, ST_MAILBOX_CAP);
    for (size_t j = 0; j < k; j++) {
      st_check_block(&got[j]);
      st_free_block(&got[j], &r);
    }
  }
  for (int i = 0; i < 1000; i++) ta_free(mine[i]);
  check_cap("at the end");
  ta_stats_t s = ss_stats();
  fprintf(stderr, "arenas created: %zu (cap %ld), pooled %zu, adoptions %zu\n", s.arenas, cap, s.arenas_pooled,
          s.arena_adoptions);
  return 0;
}
