/* Reports from awkward places. From a pthread key destructor of an exiting thread (three rounds, the
 * key re-armed each time, so that at least one round runs after tamalloc's own thread-exit teardown,
 * whatever order the destructors run in): ta_stats_print, ta_stats_json and ta_heap_map work and the
 * JSON parses. And in the child of a fork taken while other threads allocate: the same reports, no
 * lock left held (a hung child is killed by its alarm and reported). */
#include "stats.h"

#include <signal.h>
#include <stdatomic.h>

#define EXITERS 4
#define ROUNDS 3
#define FORKS 12
#define CHILD_TIMEOUT_S 10
#define BIG (1 << 20)

static pthread_key_t key;
static pthread_mutex_t parse_mu = PTHREAD_MUTEX_INITIALIZER; /* the JSON node pool is shared */
static atomic_int reports;
static FILE *devnull;
static char json_buf[EXITERS][BIG / 4];

static void report_from_exiting_thread(void *v) {
  uintptr_t round = (uintptr_t)v; /* 1 .. ROUNDS; the thread's index in the high bits */
  unsigned me = (unsigned)(round >> 8);
  round &= 0xff;
  /* The brief's case verbatim: the human report to stderr, once; the others go to /dev/null. */
  ta_stats_print(me == 0 && round == ROUNDS ? stderr : devnull);
  size_t len = ta_stats_json(json_buf[me], sizeof json_buf[me]);
  CHECK_MSG(len < sizeof json_buf[me], "ta_stats_json needs %zu bytes", len);
  CHECK(pthread_mutex_lock(&parse_mu) == 0);
  int root = js_parse_or_die(json_buf[me], len, "ta_stats_json in an exiting thread");
  ss_check_stats_json(root, false);
  CHECK(pthread_mutex_unlock(&parse_mu) == 0);
  ta_heap_map(devnull);
  ta_stats_t s = ss_stats();
  CHECK(s.arenas >= 1 && s.segments >= 1);
  /* Allocating here is ordinary too (destructors free thread data, sometimes allocate). */
  void *p = ta_malloc(100);
  CHECK(p != NULL);
  memset(p, 1, 100);
  ta_free(p);
  atomic_fetch_add(&reports, 1);
  if (round < ROUNDS) CHECK(pthread_setspecific(key, (void *)(((uintptr_t)me << 8) | (round + 1))) == 0);
}

static void *exiter_main(void *arg) {
  unsigned me = (unsigned)(uintptr_t)arg;
  static void *held[EXITERS][100];
  for (int i = 0; i < 100; i++) {
    held[me][i] = ta_malloc(64 + (size_t)i * 16);
    CHECK(held[me][i] != NULL);
  }
  for (int i = 0; i < 100; i += 2) ta_free(held[me][i]); /* half stay live after the thread exits */
  CHECK(pthread_setspecific(key, (void *)(((uintptr_t)me << 8) | 1)) == 0);
  return NULL;
}

static void test_exiting_threads(void) {
  CHECK(pthread_key_create(&key, report_from_exiting_thread) == 0);
  pthread_t t[EXITERS];
  for (int i = 0; i < EXITERS; i++) CHECK(pthread_create(&t[i], NULL, exiter_main, (void *)(uintptr_t)i) == 0);
  for (int i = 0; i < EXITERS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  CHECK_MSG(atomic_load(&reports) == EXITERS * ROUNDS, "%d reports from exiting threads, want %d",
            atomic_load(&reports), EXITERS * ROUNDS);
  ta_stats_t s = ss_stats();
  CHECK_MSG(s.arenas_pooled >= 1, "4 threads exited, %zu arenas pooled", s.arenas_pooled);
}

/* ---- fork ---- */

static atomic_int stop;
static uint64_t seed;

static void *churn_main(void *arg) {
  test_rng_t r = {seed + (uintptr_t)arg};
  st_block_t slots[128];
  memset(slots, 0, sizeof slots);
  uint64_t id = 1;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    st_block_t *b = &slots[test_rng_below(&r, 128)];
    if (b->p) {
      st_check_block(b);
      st_free_block(b, &r);
      continue;
    }
    b->n = st_size(&r);
    b->align = 0;
    b->p = ta_malloc(b->n);
    CHECK(b->p != NULL);
    b->id = id++;
    st_fill(b->p, b->n, b->id);
    if (id % 64 == 0) {
      ta_stats_t s;
      ta_stats_get(&s); /* stats locks held at the moment of a fork too */
    }
  }
  for (size_t i = 0; i < 128; i++)
    if (slots[i].p) st_free_block(&slots[i], &r);
  return NULL;
}

static char child_buf[BIG];

static void child(int k) {
  alarm(CHILD_TIMEOUT_S);
  ta_stats_t a = ss_stats();
  size_t len = ta_stats_json(child_buf, BIG);
  CHECK(len < BIG);
  ss_check_stats_json(js_parse_or_die(child_buf, len, "ta_stats_json in a forked child"), false);
  FILE *out = fopen("/dev/null", "w");
  CHECK(out != NULL);
  ta_stats_print(k == 0 ? stderr : out);
  ta_heap_map(out);
  fclose(out);
  static void *p[1000];
  for (int i = 0; i < 1000; i++) {
    p[i] = ta_malloc(48);
    CHECK(p[i] != NULL);
  }
  ta_stats_t b = ss_stats();
  CHECK_MSG(b.live_blocks >= a.live_blocks + 1000, "child: 1000 blocks moved live_blocks from %zu to %zu",
            a.live_blocks, b.live_blocks);
  for (int i = 0; i < 1000; i++) ta_free(p[i]);
  len = ta_stats_json(child_buf, BIG);
  ss_check_stats_json(js_parse_or_die(child_buf, len, "ta_stats_json in a forked child"), false);
  _exit(0);
}

static void test_fork(void) {
  seed = test_seed(777);
  pthread_t t[2];
  for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, churn_main, (void *)(uintptr_t)i) == 0);
  for (int k = 0; k < FORKS; k++) {
    usleep(2000 + 1000 * (useconds_t)(k % 5));
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) child(k);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK_MSG(!(WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM),
              "fork %d: the child hung for %d s (a lock held across fork?)", k, CHILD_TIMEOUT_S);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork %d: the child failed (status 0x%x)", k, status);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 2; i++) CHECK(pthread_join(t[i], NULL) == 0);
}

int main(void) {
  devnull = fopen("/dev/null", "w");
  CHECK(devnull != NULL);
  test_exiting_threads();
  test_fork();
  fclose(devnull);
  return 0;
}
