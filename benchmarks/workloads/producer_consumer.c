/* Workload 3, producer/consumer: producers allocate messages, consumers check and free them, so every
 * free is a cross-thread free — the pattern of a pipeline or a work queue. --threads is the total;
 * half produce and half consume (at least one of each), in pairs joined by a bounded queue. */
#include "wl.h"

#include <stdlib.h>

enum {
  BATCH = 256,   /* messages handed over per queue operation (a lock per message would measure locks) */
  IN_FLIGHT = 16 /* batches a queue holds before the producer waits: bounds the live set */
};

/* One hand-over; allocated by the producer and freed by the consumer, like the messages in it. */
typedef struct batch_s {
  uint64_t tag0;         /* message i carries tag tag0 + i */
  size_t count;          /* messages used, <= BATCH; 0 marks the end of the stream */
  void *msg[BATCH];      /* the messages */
  uint32_t size[BATCH];  /* their sizes in bytes */
} batch_t;

/* A bounded FIFO of batches between one producer and one consumer. */
typedef struct queue_s {
  pthread_mutex_t lock;      /* protects everything below */
  pthread_cond_t not_empty;  /* signalled after a push */
  pthread_cond_t not_full;   /* signalled after a pop */
  batch_t *ring[IN_FLIGHT];  /* ring[(head + i) % IN_FLIGHT] for i < count */
  size_t head;               /* index of the oldest batch */
  size_t count;              /* batches queued, <= IN_FLIGHT */
} queue_t;

typedef struct pair_s {
  queue_t q;         /* producer -> consumer */
  size_t messages;   /* messages the producer sends */
  uint64_t seed;     /* producer's PRNG seed */
  pthread_t prod;    /* producer thread */
  pthread_t cons;    /* consumer thread */
} pair_t;

static void queue_push(queue_t *q, batch_t *b) {
  pthread_mutex_lock(&q->lock);
  while (q->count == IN_FLIGHT) pthread_cond_wait(&q->not_full, &q->lock);
  q->ring[(q->head + q->count) % IN_FLIGHT] = b;
  q->count++;
  pthread_cond_signal(&q->not_empty);
  pthread_mutex_unlock(&q->lock);
}

static batch_t *queue_pop(queue_t *q) {
  pthread_mutex_lock(&q->lock);
  while (q->count == 0) pthread_cond_wait(&q->not_empty, &q->lock);
  batch_t *b = q->ring[q->head];
  q->head = (q->head + 1) % IN_FLIGHT;
  q->count--;
  pthread_cond_signal(&q->not_full);
  pthread_mutex_unlock(&q->lock);
  return b;
}

static void *producer(void *arg) {
  pair_t *p = arg;
  bench_rng_t rng = {p->seed};
  uint64_t tag = p->seed << 32;
  for (size_t sent = 0; sent < p->messages;) {
    batch_t *b = wl_malloc(sizeof *b);
    b->tag0 = tag;
    b->count = p->messages - sent < BATCH ? p->messages - sent : BATCH;
    for (size_t i = 0; i < b->count; i++) {
      uint64_t r = bench_rng_next(&rng);
      b->size[i] = 16u << (r % 7);       /* 16 B .. 1 KiB, power-of-two classes ... */
      b->size[i] += (uint32_t)(r >> 40) % b->size[i]; /* ... spread within each class */
      b->msg[i] = wl_malloc(b->size[i]);
      wl_fill(b->msg[i], b->size[i], tag + i);
    }
    tag += b->count;
    sent += b->count;
    queue_push(&p->q, b);
  }
  batch_t *end = wl_malloc(sizeof *end);
  end->count = 0;
  queue_push(&p->q, end);
  return NULL;
}

static void *consumer(void *arg) {
  pair_t *p = arg;
  for (;;) {
    batch_t *b = queue_pop(&p->q);
    size_t n = b->count;
    for (size_t i = 0; i < n; i++) {
      wl_check(b->msg[i], b->size[i], b->tag0 + i, "producer_consumer");
      free(b->msg[i]);
    }
    free(b);
    if (n == 0) return NULL;
  }
}

int main(int argc, char **argv) {
  wl_args_t a;
  wl_init(&a, "producer_consumer", 4, argc, argv);
  int npairs = a.threads / 2 > 0 ? a.threads / 2 : 1;
  size_t total = wl_scaled(&a, 12e6, 10000);
  pair_t *pairs = wl_malloc(sizeof(pair_t) * (size_t)npairs);
  for (int i = 0; i < npairs; i++) {
    pair_t *p = &pairs[i];
    pthread_mutex_init(&p->q.lock, NULL);
    pthread_cond_init(&p->q.not_empty, NULL);
    pthread_cond_init(&p->q.not_full, NULL);
    p->q.head = p->q.count = 0;
    p->messages = total / (size_t)npairs;
    p->seed = a.seed * 1000 + (uint64_t)i;
  }
  for (int i = 0; i < npairs; i++) {
    wl_thread_start(&pairs[i].cons, consumer, &pairs[i]);
    wl_thread_start(&pairs[i].prod, producer, &pairs[i]);
  }
  for (int i = 0; i < npairs; i++) {
    wl_thread_join(pairs[i].prod);
    wl_thread_join(pairs[i].cons);
  }
  free(pairs);
  return 0;
}
