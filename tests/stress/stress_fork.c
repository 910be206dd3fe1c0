/* fork while other threads allocate: the child of a multithreaded process must be able to allocate,
 * resize and free (no lock left held by a thread that does not exist in the child), including blocks
 * the parent's threads allocated before the fork. A child that hangs is killed by its alarm. */
#include "stress.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#define WORKERS 3
#define SLOTS 256
#define CHILD_TIMEOUT_S 30

static atomic_int stop;
static uint64_t seed;
static st_mailbox_t mailbox[WORKERS];

static void *worker_main(void *arg) {
  unsigned me = (unsigned)(uintptr_t)arg;
  test_rng_t r = {seed + 31 * (me + 1)};
  st_block_t slots[SLOTS];
  memset(slots, 0, sizeof slots);
  uint64_t id = ((uint64_t)(me + 1) << 48) + 1;
  while (!atomic_load_explicit(&stop, memory_order_relaxed))
    st_churn_step(slots, SLOTS, &mailbox[me], &mailbox[(me + 1) % WORKERS], &r, &id, st_size);
  for (size_t i = 0; i < SLOTS; i++)
    if (slots[i].p) st_free_block(&slots[i], &r);
  return NULL;
}

#if !TA_TEST_TSAN
static void *child_thread(void *arg) {
  test_rng_t *r = arg;
  for (int i = 0; i < 200; i++) {
    size_t n = st_size(r);
    unsigned char *p = ta_malloc(n);
    CHECK(p != NULL);
    st_fill(p, n, (uint64_t)i);
    ST_CHECK(p, n, (uint64_t)i);
    ta_free(p);
  }
  return NULL;
}
#endif

/* The child: allocate every way, free what the parent left it, exit 0; any failed CHECK exits 1. */
static void child(uint64_t k, st_block_t *inherited, size_t n_inherited) {
  alarm(CHILD_TIMEOUT_S);
#if TA_TEST_TSAN
  /* tamalloc restarts its background purge thread in a fork child, and TSan kills a child of a
   * multithreaded process that starts a thread: keep the purging on the slow paths here. */
  CHECK(ta_mallopt(TA_OPT_BACKGROUND_THREAD, 0) == 1);
#endif
  test_rng_t r = {seed ^ (k * 0x9e3779b97f4a7c15ull)};
  st_block_t blocks[64];
  for (size_t i = 0; i < 64; i++) {
    st_block_t *b = &blocks[i];
    b->n = i % 8 == 0 ? tb_log_uniform(&r, 17, 21) : st_size(&r);
    b->align = i % 5 == 0 ? (size_t)64 << (i % 7) : 0;
    b->p = b->align ? ta_aligned_alloc(b->align, b->n) : ta_calloc(1, b->n);
    CHECK(b->p != NULL);
    b->id = k * 1000 + i;
    st_fill(b->p, b->n, b->id);
  }
  for (size_t i = 0; i < 64; i += 3) {
    st_block_t *b = &blocks[i];
    st_check_block(b);
    size_t n = st_size(&r);
    unsigned char *q = ta_realloc(b->p, n);
    CHECK(q != NULL);
    ST_CHECK_PREFIX(q, b->n, b->id, n);
    b->p = q;
    b->n = n;
    b->align = 0;
    st_fill(q, n, b->id);
  }
  for (size_t i = 0; i < n_inherited; i++) {
    st_check_block(&inherited[i]);
    st_free_block(&inherited[i], &r);
  }
#if !TA_TEST_TSAN
  /* A new thread in the child gets an arena of its own (TSan does not allow threads after fork). */
  pthread_t th;
  CHECK(pthread_create(&th, NULL, child_thread, &r) == 0);
  CHECK(pthread_join(th, NULL) == 0);
#endif
  st_checkpoint(); /* the child's arena, and the pooled one its thread left */
  for (size_t i = 0; i < 64; i++) {
    st_check_block(&blocks[i]);
    st_free_block(&blocks[i], &r);
  }
  _exit(0);
}

int main(void) {
  seed = test_seed(0xf0a4ull);
  long forks = test_scale(120);
  pthread_t th[WORKERS];
  for (unsigned i = 0; i < WORKERS; i++) st_mailbox_init(&mailbox[i]); /* before any thread posts */
  for (unsigned i = 0; i < WORKERS; i++) {
    CHECK(pthread_create(&th[i], NULL, worker_main, (void *)(uintptr_t)i) == 0);
  }
  test_rng_t r = {seed};
  enum { INHERIT = 16 };
  st_block_t inherited[INHERIT];
  for (long k = 0; k < forks; k++) {
    for (size_t i = 0; i < INHERIT; i++) { /* blocks of main's arena the child will free */
      st_block_t *b = &inherited[i];
      b->n = st_size(&r);
      b->align = 0;
      b->p = ta_malloc(b->n);
      CHECK(b->p != NULL);
      b->id = (uint64_t)k * 100 + i;
      st_fill(b->p, b->n, b->id);
    }
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) child((uint64_t)k, inherited, INHERIT);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK_MSG(!(WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM),
              "fork #%ld: the child hung for %d s (a lock held across fork?)", k, CHILD_TIMEOUT_S);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork #%ld: child status %#x", k, status);
    for (size_t i = 0; i < INHERIT; i++) {
      st_check_block(&inherited[i]); /* the child's frees did not touch the parent's copy */
      ta_free(inherited[i].p);
    }
  }
  atomic_store(&stop, 1);
  for (unsigned i = 0; i < WORKERS; i++) CHECK(pthread_join(th[i], NULL) == 0);
  for (unsigned i = 0; i < WORKERS; i++) { /* blocks sent after their receiver stopped */
    st_block_t got[64];
    size_t k;
    test_rng_t rr = {i};
    while ((k = st_mailbox_take(&mailbox[i], got, 64)) > 0)
      for (size_t j = 0; j < k; j++) {
        st_check_block(&got[j]);
        st_free_block(&got[j], &rr);
      }
  }
  return 0;
}
