/* realloc ping-pong: two threads pass blocks back and forth, and each reallocs every block it receives
 * (a block another thread allocated) to a size on the other side of the 128 KiB line, or now and then
 * the same side, checking that the bytes both sizes share survive. */
#include "stress.h"

#define TOKENS 16

typedef struct side_s {
  st_block_t inbox[TOKENS]; /* blocks waiting for this thread */
  size_t count;             /* how many */
} side_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* guards both sides and `live` */
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static side_t sides[2];
static size_t live = TOKENS; /* blocks not yet retired */
static long hops_per_token;
static uint64_t seed;

static size_t other_side_of_line(test_rng_t *r, size_t n) {
  int stay = test_rng_below(r, 8) == 0;
  int small = (n >= TB_ROUTER_LINE) == !stay;
  return small ? tb_log_uniform(r, 0, 17) : TB_ROUTER_LINE + (size_t)test_rng_below(r, TB_MIB);
}

static void *player(void *arg) {
  unsigned me = (unsigned)(uintptr_t)arg;
  test_rng_t r = {seed + 77 * (me + 1)};
  uint64_t next_id = ((uint64_t)(me + 1) << 48) + 1;
  for (;;) {
    CHECK(pthread_mutex_lock(&mu) == 0);
    while (sides[me].count == 0 && live > 0) CHECK(pthread_cond_wait(&cv, &mu) == 0);
    if (sides[me].count == 0) {
      CHECK(pthread_mutex_unlock(&mu) == 0);
      return NULL;
    }
    st_block_t b = sides[me].inbox[--sides[me].count];
    CHECK(pthread_mutex_unlock(&mu) == 0);

    st_check_block(&b);
    long hops = (long)(b.id >> 32 & 0xffff); /* the hop count rides in the id */
    if (hops >= hops_per_token) {
      st_free_block(&b, &r);
      CHECK(pthread_mutex_lock(&mu) == 0);
      live--;
      CHECK(pthread_cond_broadcast(&cv) == 0);
      CHECK(pthread_mutex_unlock(&mu) == 0);
      continue;
    }
    size_t n = other_side_of_line(&r, b.n);
    unsigned char *q = ta_realloc(b.p, n);
    CHECK_MSG(q != NULL, "ta_realloc(%zu -> %zu) failed", b.n, n);
    CHECK_ALIGNED(q, 16);
    CHECK(ta_usable_size(q) >= n);
    ST_CHECK_PREFIX(q, b.n, b.id, n);
    b.p = q;
    b.n = n;
    b.align = 0;
    b.id = ((uint64_t)(me + 1) << 48) | ((uint64_t)(hops + 1) << 32) | (next_id++ & 0xffffffffu);
    st_fill(q, n, b.id);
    if (next_id % 1024 == 0) st_checkpoint();

    CHECK(pthread_mutex_lock(&mu) == 0);
    side_t *to = &sides[!me];
    CHECK(to->count < TOKENS);
    to->inbox[to->count++] = b;
    CHECK(pthread_cond_broadcast(&cv) == 0);
    CHECK(pthread_mutex_unlock(&mu) == 0);
  }
}

int main(void) {
  seed = test_seed(0x9149ull);
  hops_per_token = test_scale(6000);
  test_rng_t r = {seed};
  for (unsigned i = 0; i < TOKENS; i++) { /* main allocates them: a third thread's blocks */
    st_block_t *b = &sides[i % 2].inbox[sides[i % 2].count++];
    b->n = i % 2 ? tb_log_uniform(&r, 0, 17) : TB_ROUTER_LINE + i * 4096;
    b->p = ta_malloc(b->n);
    CHECK(b->p != NULL);
    b->align = 0;
    b->id = (uint64_t)i;
    st_fill(b->p, b->n, b->id);
  }
  pthread_t th[2];
  for (unsigned i = 0; i < 2; i++) CHECK(pthread_create(&th[i], NULL, player, (void *)(uintptr_t)i) == 0);
  for (unsigned i = 0; i < 2; i++) CHECK(pthread_join(th[i], NULL) == 0);
  CHECK(live == 0);
  ta_stats_t s = st_stats();
  CHECK_MSG(s.large_blocks == 0, "%zu large blocks still live after everything was freed", s.large_blocks);
  return 0;
}
