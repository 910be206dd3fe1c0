/* Workload 9, key-value server: a hash table of string keys and 16 B - 64 KiB values, served by
 * --threads workers (4 by default) that take request batches from one shared queue; the main thread
 * produces the requests (70% GET, 25% SET, 5% DEL). Requests are allocated by the producer and freed
 * by a worker, keys change hands on insert, GET replies are allocated and freed per request: the
 * allocation mix of a small cache server. Values carry the pattern; every GET and DEL checks it. */
#include "wl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
  KEYS = 20000,         /* key space */
  BUCKETS = 1 << 15,    /* hash buckets */
  STRIPES = 64,         /* bucket locks; bucket b is guarded by stripe b % STRIPES */
  BATCH = 64,           /* requests per queue operation */
  QUEUE = 64,           /* batches the queue holds before the producer waits */
  SIZE_TABLE = 4096
};

typedef enum op_e { OP_GET, OP_SET, OP_DEL } op_t;

typedef struct entry_s {
  struct entry_s *next; /* bucket chain */
  char *key;            /* NUL-terminated, owned by the entry */
  unsigned char *value; /* vlen bytes with the pattern of vtag */
  size_t vlen;          /* value length */
  uint64_t vtag;        /* pattern tag of the value */
} entry_t;

typedef struct request_s {
  op_t op;              /* what to do */
  char *key;            /* allocated by the producer; the worker frees it or moves it into an entry */
  size_t vlen;          /* SET: value length */
} request_t;

typedef struct batch_s {
  size_t count;              /* requests used; 0 tells the worker to stop */
  request_t *req[BATCH];     /* the requests */
} batch_t;

static entry_t *bucket[BUCKETS];             /* the table */
static pthread_mutex_t stripe[STRIPES];      /* bucket locks */

static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t q_not_full = PTHREAD_COND_INITIALIZER;
static batch_t *q_ring[QUEUE];               /* guarded by q_lock */
static size_t q_head, q_count;               /* guarded by q_lock */

static void q_push(batch_t *b) {
  pthread_mutex_lock(&q_lock);
  while (q_count == QUEUE) pthread_cond_wait(&q_not_full, &q_lock);
  q_ring[(q_head + q_count++) % QUEUE] = b;
  pthread_cond_signal(&q_not_empty);
  pthread_mutex_unlock(&q_lock);
}

static batch_t *q_pop(void) {
  pthread_mutex_lock(&q_lock);
  while (q_count == 0) pthread_cond_wait(&q_not_empty, &q_lock);
  batch_t *b = q_ring[q_head];
  q_head = (q_head + 1) % QUEUE;
  q_count--;
  pthread_cond_signal(&q_not_full);
  pthread_mutex_unlock(&q_lock);
  return b;
}

static uint32_t key_hash(const char *k) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (; *k; k++) h = (h ^ (unsigned char)*k) * 16777619u;
  return h;
}

typedef struct worker_s {
  pthread_t thread;  /* the worker */
  uint64_t next_tag; /* value tags this worker hands out: unique across workers */
} worker_t;

static void serve(worker_t *w, request_t *r) {
  uint32_t b = key_hash(r->key) % BUCKETS;
  pthread_mutex_t *lock = &stripe[b % STRIPES];
  entry_t **link, *e;
  if (r->op == OP_SET) {
    /* Build the value before taking the lock, as a server would after reading the request body. */
    unsigned char *value = wl_malloc(r->vlen);
    uint64_t tag = ++w->next_tag;
    wl_fill(value, r->vlen, tag);
    unsigned char *old = NULL;
    size_t old_len = 0;
    uint64_t old_tag = 0;
    pthread_mutex_lock(lock);
    for (e = bucket[b]; e && strcmp(e->key, r->key) != 0; e = e->next) {}
    if (e) {
      old = e->value, old_len = e->vlen, old_tag = e->vtag;
    } else {
      e = wl_malloc(sizeof *e);
      e->key = r->key;
      r->key = NULL;
      e->next = bucket[b];
      bucket[b] = e;
    }
    e->value = value, e->vlen = r->vlen, e->vtag = tag;
    pthread_mutex_unlock(lock);
    if (old) {
      wl_check(old, old_len, old_tag, "kv_server SET (old value)");
      free(old);
    }
  } else if (r->op == OP_GET) {
    unsigned char *reply = NULL;
    size_t len = 0;
    uint64_t tag = 0;
    pthread_mutex_lock(lock);
    for (e = bucket[b]; e && strcmp(e->key, r->key) != 0; e = e->next) {}
    if (e) {
      len = e->vlen, tag = e->vtag;
      reply = wl_malloc(len);
      memcpy(reply, e->value, len);
    }
    pthread_mutex_unlock(lock);
    if (reply) {
      wl_check(reply, len, tag, "kv_server GET");
      free(reply);
    }
  } else {
    pthread_mutex_lock(lock);
    for (link = &bucket[b]; (e = *link) && strcmp(e->key, r->key) != 0; link = &e->next) {}
    if (e) *link = e->next;
    pthread_mutex_unlock(lock);
    if (e) {
      wl_check(e->value, e->vlen, e->vtag, "kv_server DEL");
      free(e->value);
      free(e->key);
      free(e);
    }
  }
  free(r->key);
  free(r);
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  for (;;) {
    batch_t *bt = q_pop();
    if (bt->count == 0) {
      free(bt);
      return NULL;
    }
    for (size_t i = 0; i < bt->count; i++) serve(w, bt->req[i]);
    free(bt);
  }
}

int main(int argc, char **argv) {
  wl_args_t a;
  wl_init(&a, "kv_server", 4, argc, argv);
  size_t requests = wl_scaled(&a, 1e6, KEYS);
  bench_rng_t rng = {a.seed};
  static uint32_t sizes[SIZE_TABLE];
  for (int i = 0; i < SIZE_TABLE; i++) sizes[i] = (uint32_t)bench_rng_log_uniform(&rng, 16, 64 << 10);
  for (int i = 0; i < STRIPES; i++) pthread_mutex_init(&stripe[i], NULL);

  size_t nworkers = (size_t)a.threads;
  worker_t *workers = wl_malloc(sizeof(worker_t) * nworkers);
  for (size_t i = 0; i < nworkers; i++) {
    workers[i].next_tag = (uint64_t)(i + 1) << 48;
    wl_thread_start(&workers[i].thread, worker_main, &workers[i]);
  }

  batch_t *bt = NULL;
  for (size_t k = 0; k < requests; k++) {
    uint64_t r = bench_rng_next(&rng);
    request_t *req = wl_malloc(sizeof *req);
    unsigned key;
    if (k < KEYS) { /* load every key once, then serve the mix */
      key = (unsigned)k;
      req->op = OP_SET;
    } else {
      key = (unsigned)((r >> 32) % KEYS);
      unsigned pick = (unsigned)(r % 100);
      req->op = pick < 70 ? OP_GET : pick < 95 ? OP_SET : OP_DEL;
    }
    req->vlen = sizes[(r >> 12) % SIZE_TABLE];
    req->key = wl_malloc(16);
    snprintf(req->key, 16, "key:%08u", key);
    if (!bt) {
      bt = wl_malloc(sizeof *bt);
      bt->count = 0;
    }
    bt->req[bt->count++] = req;
    if (bt->count == BATCH) {
      q_push(bt);
      bt = NULL;
    }
  }
  if (bt) q_push(bt);
  for (size_t i = 0; i < nworkers; i++) {
    batch_t *stop = wl_malloc(sizeof *stop);
    stop->count = 0;
    q_push(stop);
  }
  for (size_t i = 0; i < nworkers; i++) wl_thread_join(workers[i].thread);

  for (size_t b = 0; b < BUCKETS; b++) {
    for (entry_t *e = bucket[b], *next; e; e = next) {
      next = e->next;
      wl_check(e->value, e->vlen, e->vtag, "kv_server (final)");
      free(e->value);
      free(e->key);
      free(e);
    }
  }
  free(workers);
  return 0;
}
