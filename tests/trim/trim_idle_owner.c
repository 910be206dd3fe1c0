/* Issue 11, test 1: memory freed into the heap of a live but idle thread comes home. Thread A
 * allocates 256 MiB of 1000-byte blocks, writes them, hands them to main and then only waits on a
 * condition variable until the very end; main frees every block (remote frees: A owns them). With the
 * default settings (decay 1 s, the background thread on) RSS must be within 24 MiB of where it was
 * before A allocated 3 s later, and the statistics must no longer count the freed blocks as live;
 * ta_trim(0) from main then brings RSS within 4 MiB of the start. The 3 s point is the requirement;
 * on a busy machine the test keeps looking for up to 3 s more before it calls the check failed (it
 * prints both figures). */
#include <pthread.h>

#include "tamalloc.h"
#include "trim_util.h"

enum { BLOCK = 1000 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int allocated, release; /* under lock */

static void **blocks;
static size_t nblocks;

static void *owner(void *arg) {
  (void)arg;
  for (size_t i = 0; i < nblocks; i++) {
    blocks[i] = ta_malloc(BLOCK);
    CHECK(blocks[i] != NULL);
    memset(blocks[i], (int)(i & 0xff), BLOCK);
  }
  pthread_mutex_lock(&lock);
  allocated = 1;
  pthread_cond_broadcast(&cond);
  while (!release) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  return NULL;
}

int main(void) {
  nblocks = 256 * MIB / BLOCK;
  blocks = trim_map(nblocks * sizeof *blocks, 1);
  ta_free(ta_malloc(1)); /* tamalloc's start-up is part of the baseline */
  size_t start = rss_bytes();

  pthread_t a;
  CHECK(pthread_create(&a, NULL, owner, NULL) == 0);
  pthread_mutex_lock(&lock);
  while (!allocated) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  size_t peak = rss_bytes();

  for (size_t i = 0; i < nblocks; i++) {
    CHECK(((unsigned char *)blocks[i])[BLOCK - 1] == (unsigned char)(i & 0xff));
    ta_free(blocks[i]);
  }
  size_t after_free = rss_bytes();
  size_t limit_idle = start + 24 * MIB, limit_trim = start + 4 * MIB;

  sleep_ms(3000);
  size_t at_3s = rss_bytes();
  size_t later = rss_wait_below(limit_idle, 3000); /* 6 s after the frees at most */
  ta_stats_t s;
  ta_stats_get(&s);

  ta_trim(0);
  size_t after_trim = rss_bytes();

  printf("rss start %zu MiB, peak %zu MiB, after free %zu MiB, 3 s later %zu MiB, up to 6 s later %zu MiB "
         "(limit %zu MiB); live %zu KiB in %zu blocks 3 s on; after ta_trim(0) %zu MiB (limit %zu MiB)\n",
         start / MIB, peak / MIB, after_free / MIB, at_3s / MIB, later / MIB, limit_idle / MIB,
         s.live_bytes / 1024, s.live_blocks, after_trim / MIB, limit_trim / MIB);
  fflush(stdout);
  CHECK_MSG(later <= limit_idle, "RSS %zu MiB 3-6 s after the frees, start %zu MiB", later / MIB, start / MIB);
  CHECK_MSG(s.live_bytes < 16 * MIB, "the statistics count %zu MiB live after the frees", s.live_bytes / MIB);
  CHECK_MSG(after_trim <= limit_trim, "RSS %zu MiB after ta_trim(0), start %zu MiB", after_trim / MIB, start / MIB);

  pthread_mutex_lock(&lock);
  release = 1;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
  CHECK(pthread_join(a, NULL) == 0);
  trim_unmap(blocks, nblocks * sizeof *blocks);
  return 0;
}
