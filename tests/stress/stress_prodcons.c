/* Producer/consumer: producers allocate and pattern blocks, consumers check and free them, so every
 * free is a free from another thread. Two pairs run at once; blocks travel in batches through a
 * bounded queue (mutex and condition variables). */
#include "stress.h"

#define PAIRS 2
#define BATCH 64
#define QUEUE_BATCHES 8

typedef struct pair_s {
  pthread_mutex_t mu;                     /* guards the queue */
  pthread_cond_t not_full, not_empty;     /* signalled on take / put */
  st_block_t queue[QUEUE_BATCHES][BATCH]; /* ring of batches */
  size_t queue_len[QUEUE_BATCHES];        /* blocks in each batch; 0 marks the end of the stream */
  size_t head, count;                     /* ring position and batches waiting */
  unsigned index;                         /* which pair, for seeds and ids */
  unsigned long consumed;                 /* blocks checked and freed by the consumer */
} pair_t;

static pair_t pairs[PAIRS];
static uint64_t seed;
static long batches_per_pair;

static void put_batch(pair_t *q, const st_block_t *b, size_t n) {
  CHECK(pthread_mutex_lock(&q->mu) == 0);
  while (q->count == QUEUE_BATCHES) CHECK(pthread_cond_wait(&q->not_full, &q->mu) == 0);
  size_t slot = (q->head + q->count) % QUEUE_BATCHES;
  memcpy(q->queue[slot], b, n * sizeof *b);
  q->queue_len[slot] = n;
  q->count++;
  CHECK(pthread_cond_signal(&q->not_empty) == 0);
  CHECK(pthread_mutex_unlock(&q->mu) == 0);
}

static size_t take_batch(pair_t *q, st_block_t *b) {
  CHECK(pthread_mutex_lock(&q->mu) == 0);
  while (q->count == 0) CHECK(pthread_cond_wait(&q->not_empty, &q->mu) == 0);
  size_t n = q->queue_len[q->head];
  memcpy(b, q->queue[q->head], n * sizeof *b);
  q->head = (q->head + 1) % QUEUE_BATCHES;
  q->count--;
  CHECK(pthread_cond_signal(&q->not_full) == 0);
  CHECK(pthread_mutex_unlock(&q->mu) == 0);
  return n;
}

static void *producer(void *arg) {
  pair_t *q = arg;
  test_rng_t r = {seed + 0x100 * q->index};
  uint64_t id = ((uint64_t)(q->index + 1) << 48) + 1;
  st_block_t batch[BATCH];
  for (long k = 0; k < batches_per_pair; k++) {
    for (size_t i = 0; i < BATCH; i++) {
      st_block_t *b = &batch[i];
      b->n = st_size(&r);
      b->align = 0;
      uint64_t how = test_rng_below(&r, 8);
      if (how == 0) {
        b->p = ta_calloc(1, b->n);
        CHECK(b->p != NULL);
        CHECK(tb_first_nonzero(b->p, b->n) == SIZE_MAX);
      } else if (how == 1) {
        b->align = (size_t)32 << test_rng_below(&r, 8);
        b->p = ta_aligned_alloc(b->align, b->n);
        CHECK(b->p != NULL);
        CHECK_ALIGNED(b->p, b->align);
      } else {
        b->p = ta_malloc(b->n);
        CHECK(b->p != NULL);
      }
      CHECK_ALIGNED(b->p, 16);
      b->id = id++;
      st_fill(b->p, b->n, b->id);
    }
    put_batch(q, batch, BATCH);
    if (k % 512 == 0) st_checkpoint();
  }
  put_batch(q, batch, 0);
  return NULL;
}

static void *consumer(void *arg) {
  pair_t *q = arg;
  test_rng_t r = {seed + 0x100 * q->index + 1};
  st_block_t batch[BATCH];
  size_t n;
  while ((n = take_batch(q, batch)) > 0) {
    for (size_t i = 0; i < n; i++) {
      st_check_block(&batch[i]);
      st_free_block(&batch[i], &r);
    }
    q->consumed += n;
    if (q->consumed % (512 * BATCH) == 0) st_checkpoint();
  }
  return NULL;
}

int main(void) {
  seed = test_seed(0x9c0d5ull);
  batches_per_pair = test_scale(12000);
  pthread_t th[2 * PAIRS];
  for (unsigned i = 0; i < PAIRS; i++) {
    pair_t *q = &pairs[i];
    CHECK(pthread_mutex_init(&q->mu, NULL) == 0);
    CHECK(pthread_cond_init(&q->not_full, NULL) == 0);
    CHECK(pthread_cond_init(&q->not_empty, NULL) == 0);
    q->index = i;
    CHECK(pthread_create(&th[2 * i], NULL, producer, q) == 0);
    CHECK(pthread_create(&th[2 * i + 1], NULL, consumer, q) == 0);
  }
  for (unsigned i = 0; i < 2 * PAIRS; i++) CHECK(pthread_join(th[i], NULL) == 0);
  for (unsigned i = 0; i < PAIRS; i++)
    CHECK_MSG(pairs[i].consumed == (unsigned long)batches_per_pair * BATCH, "pair %u consumed %lu blocks", i,
              pairs[i].consumed);
  ta_stats_t s = st_stats();
  CHECK_MSG(s.large_blocks == 0, "%zu large blocks still live after everything was freed", s.large_blocks);
  return 0;
}
