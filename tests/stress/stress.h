/* What the stress tests share: the block patterns of the api suite, a record of one live block, a
 * mutex-protected mailbox per thread for handing blocks over, the resident size, and whether a
 * sanitizer runs (then RSS bounds are skipped: the sanitizer's own memory grows as it likes). */
#ifndef TA_TEST_STRESS_H
#define TA_TEST_STRESS_H

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "../api/blocks.h"

#ifndef TA_TEST_SANITIZED /* meson passes it; detect by hand when built some other way */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TA_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TA_TEST_SANITIZED 1
#endif
#endif
#endif
#ifndef TA_TEST_SANITIZED
#define TA_TEST_SANITIZED 0
#endif

/* ThreadSanitizer in particular (it forbids new threads in the child of a multithreaded fork). */
#if defined(__SANITIZE_THREAD__)
#define TA_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TA_TEST_TSAN 1
#endif
#endif
#ifndef TA_TEST_TSAN
#define TA_TEST_TSAN 0
#endif

#define ST_FULL_LIMIT ((size_t)4096) /* blocks above this get their edges patterned, and 16 words */

/* The stride of the sparse pattern for a block of n bytes: about 16 words between the edges, so a
 * 1 MiB block costs a few page faults rather than 256 (the api suite writes every page already). */
static inline size_t st_stride(size_t n) {
  size_t s = (n / 16) & ~(size_t)7;
  return s < TB_PAGE ? TB_PAGE : s;
}

/* Patterns a block (as n bytes), or checks the pattern below `limit`. */
static inline void st_fill(void *p, size_t n, uint64_t id) {
  (void)tb_apply_stride(p, n, id, 0, ST_FULL_LIMIT, n, st_stride(n));
}

#define ST_CHECK_PREFIX(p, n, id, limit)                                                              \
  do {                                                                                               \
    size_t st_bad_ = tb_apply_stride((p), (n), (id), 1, ST_FULL_LIMIT, (limit), st_stride(n));        \
    CHECK_MSG(st_bad_ == SIZE_MAX, "block %p (id %llu, %zu bytes) damaged at offset %zu: 0x%02x, want 0x%02x", \
              (void *)(p), (unsigned long long)(id), (size_t)(n), st_bad_,                           \
              ((unsigned char *)(p))[st_bad_], tb_byte((id), st_bad_));                                 \
  } while (0)
#define ST_CHECK(p, n, id) ST_CHECK_PREFIX(p, n, id, (size_t)(n))

/* One live block: where, how big, and whose pattern it carries. */
typedef struct st_block_s {
  unsigned char *p; /* the pointer tamalloc returned, or NULL for an empty slot */
  size_t n;         /* bytes requested (and patterned) */
  uint64_t id;      /* pattern identity: unique over the whole run */
  size_t align;     /* alignment asked of aligned_alloc, 0 for the others */
} st_block_t;

static inline void st_check_block(const st_block_t *b) { ST_CHECK(b->p, b->n, b->id); }

/* Frees a block the way it was allocated, sometimes with its size. */
static inline void st_free_block(st_block_t *b, test_rng_t *r) {
  if (test_rng_below(r, 4) == 0) {
    if (b->align) ta_free_aligned_sized(b->p, b->align, b->n);
    else ta_free_sized(b->p, b->n);
  } else {
    ta_free(b->p);
  }
  b->p = NULL;
}

/* Sizes from 1 B to 1 MiB, log-uniform within bands, most of them small: 85% below 4 KiB, 12% up to
 * the 128 KiB line, 3% on the mmap path up to 1 MiB. */
static inline size_t st_size(test_rng_t *r) {
  uint64_t band = test_rng_below(r, 100);
  if (band < 85) return tb_log_uniform(r, 0, 12);
  if (band < 97) return tb_log_uniform(r, 12, 17);
  return tb_log_uniform(r, 17, 20);
}

/* A thread's mailbox: other threads drop blocks in, the owner takes them all out. A full mailbox
 * refuses (the sender frees the block itself). */
#define ST_MAILBOX_CAP 1024
typedef struct st_mailbox_s {
  pthread_mutex_t mu;                 /* guards everything below */
  st_block_t blocks[ST_MAILBOX_CAP];  /* [0, count) hold blocks */
  size_t count;                       /* blocks waiting */
} st_mailbox_t;

static inline void st_mailbox_init(st_mailbox_t *m) {
  CHECK(pthread_mutex_init(&m->mu, NULL) == 0);
  m->count = 0;
}

static inline int st_mailbox_put(st_mailbox_t *m, const st_block_t *b) {
  CHECK(pthread_mutex_lock(&m->mu) == 0);
  int ok = m->count < ST_MAILBOX_CAP;
  if (ok) m->blocks[m->count++] = *b;
  CHECK(pthread_mutex_unlock(&m->mu) == 0);
  return ok;
}

/* Moves up to cap waiting blocks into out; returns how many. */
static inline size_t st_mailbox_take(st_mailbox_t *m, st_block_t *out, size_t cap) {
  CHECK(pthread_mutex_lock(&m->mu) == 0);
  size_t n = m->count < cap ? m->count : cap;
  m->count -= n;
  memcpy(out, m->blocks + m->count, n * sizeof *out);
  CHECK(pthread_mutex_unlock(&m->mu) == 0);
  return n;
}

/* One step of the churn the threaded tests share: check and free the blocks another thread handed
 * to `mine`; then pick a slot: a live block is checked and freed (a quarter of the time handed to
 * `to` instead, so another thread frees it: a remote free), an empty slot gets a new block of
 * size(r) bytes filled with the pattern of a fresh id. */
static inline void st_churn_step(st_block_t *slots, size_t nslots, st_mailbox_t *mine, st_mailbox_t *to,
                                 test_rng_t *r, uint64_t *id, size_t (*size)(test_rng_t *)) {
  st_block_t got[64];
  size_t k = st_mailbox_take(mine, got, 64);
  for (size_t i = 0; i < k; i++) {
    st_check_block(&got[i]);
    st_free_block(&got[i], r);
  }
  st_block_t *b = &slots[test_rng_below(r, nslots)];
  if (b->p) {
    st_check_block(b);
    if (test_rng_below(r, 4) != 0 || !st_mailbox_put(to, b)) st_free_block(b, r);
    b->p = NULL;
    return;
  }
  b->n = size(r);
  b->align = 0;
  b->p = ta_malloc(b->n);
  CHECK(b->p != NULL);
  b->id = (*id)++;
  st_fill(b->p, b->n, b->id);
}

/* A checkpoint: with -Ddebug_checks=3 (meson passes TA_TEST_VALIDATE) the whole-heap validator runs
 * over the calling thread's arena and the pooled and shared ones; it aborts, naming the address, on
 * an inconsistency. Other builds skip it: it costs time in proportion to the heap. */
#ifndef TA_TEST_VALIDATE
#define TA_TEST_VALIDATE 0
#endif
static inline void st_checkpoint(void) {
  if (TA_TEST_VALIDATE) CHECK(ta_validate() == 0);
}

/* Resident set size in bytes, from /proc/self/statm (read without stdio). */
static inline size_t st_rss_bytes(void) {
  char buf[256];
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0);
  ssize_t len = read(fd, buf, sizeof buf - 1);
  close(fd);
  CHECK(len > 0);
  buf[len] = '\0';
  unsigned long size = 0, resident = 0;
  CHECK(sscanf(buf, "%lu %lu", &size, &resident) == 2);
  return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static inline ta_stats_t st_stats(void) {
  ta_stats_t s;
  ta_stats_get(&s);
  return s;
}

#endif
