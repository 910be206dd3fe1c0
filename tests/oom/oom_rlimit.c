/* Address-space exhaustion for real: in a child whose RLIMIT_AS is its current size plus 256 MiB,
 * allocate with every function (large sizes first, then medium, then small) until each fails. Every
 * failure must be NULL with errno ENOMEM (posix_memalign: the error returned, *memptr untouched),
 * nothing may crash, every block must keep its contents; after freeing everything the same amount
 * (within 10%) must be allocatable again, three times. Then the same with 9 threads at once.
 * Usage: oom_rlimit single|threads. Not for sanitizer builds: their shadow memory needs the space. */
#include <pthread.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oom.h"

#define MIB ((size_t)1 << 20)
#define HEADROOM (256 * MIB)
#define ROUNDS 4   /* the first fill, then three more after freeing everything */
#define GIVE_UP 16 /* consecutive failures that end a size level */

typedef struct {
  node_t *head;
  size_t bytes;             /* sum of the sizes of the blocks on the list */
  size_t blocks;
  uint64_t serial;
  size_t ok[F_COUNT], failed[F_COUNT];
  test_rng_t rng;
  int id;
} filler_t;

/* Level 0 mixes every kind of size, level 1 drops the large ones, level 2 is small sizes only. */
static size_t pick_size(filler_t *f, int level) {
  uint64_t r = test_rng_below(&f->rng, 4);
  if (level == 0 && r == 0) level = 0;
  else if (level <= 1 && r == 1) level = 1;
  else level = 2;
  switch (level) {
    case 0: return 256 * 1024 + test_rng_below(&f->rng, 2 * MIB);       /* the mmap path */
    case 1: return 2048 + test_rng_below(&f->rng, 126 * 1024);          /* spans in the bins */
    default: return NODE_MIN + test_rng_below(&f->rng, 1024 - NODE_MIN); /* small classes */
  }
}

static void keep(filler_t *f, void *p, size_t n) {
  node_t *b = p;
  b->next = f->head;
  b->size = n;
  b->serial = ++f->serial;
  b->check = node_check(n, b->serial);
  pat_fill(p, n, b->serial);
  f->head = b;
  f->bytes += n;
  f->blocks++;
}

static void check_node(const filler_t *f, const node_t *b) {
  CHECK_MSG(b->check == node_check(b->size, b->serial) && pat_ok((const void *)b, b->size, b->serial),
            "thread %d: block %p (size %zu) was overwritten", f->id, (const void *)b, b->size);
}

/* One allocation with function fn; false when it failed (after checking how it failed). */
static bool alloc_one(filler_t *f, int fn, size_t n) {
  static const size_t aligns[] = {32, 64, 256, 4096, 65536};
  size_t a = aligns[test_rng_below(&f->rng, sizeof aligns / sizeof aligns[0])];
  void *p = NULL;
  errno = 0;
  switch (fn) {
    case F_MALLOC: p = TN(malloc)(n); break;
    case F_CALLOC: {
      p = TN(calloc)(n / 16, 16);
      n = n / 16 * 16;
      if (p != NULL) {
        const unsigned char *c = p;
        for (size_t i = 0; i < n; i += (i < 65536 ? 1 : 4096))
          CHECK_MSG(c[i] == 0, "calloc(%zu) block %p not zero at %zu", n, p, i);
      }
      break;
    }
    case F_REALLOC: {
      /* Grow the newest block; a failure must leave it as it was. */
      node_t *b = f->head;
      if (b == NULL || b->size >= n) {
        p = TN(realloc)(NULL, n);
        break;
      }
      size_t old = b->size;
      node_t *q = TN(realloc)(b, n);
      int err = errno;
      if (q == NULL) {
        CHECK_MSG(err == ENOMEM, "realloc(%zu -> %zu) failed with errno %d", old, n, err);
        check_node(f, b);
        f->failed[fn]++;
        return false;
      }
      CHECK_MSG(q->size == old && q->check == node_check(old, q->serial) &&
                    pat_ok((const void *)q, old, q->serial),
                "realloc(%zu -> %zu) lost the contents", old, n);
      ((unsigned char *)q)[old - 1] = pat_byte(q->serial, old - 1); /* no longer the last byte */
      q->size = n;
      q->check = node_check(n, q->serial);
      pat_fill((void *)q, n, q->serial);
      f->head = q;
      f->bytes += n - old;
      f->ok[fn]++;
      return true;
    }
    case F_ALIGNED_ALLOC:
      n = (n + a - 1) / a * a;
      p = TN(aligned_alloc)(a, n);
      break;
    case F_POSIX_MEMALIGN: {
      void *sentinel = (void *)(uintptr_t)0xdeadbeef0;
      void *m = sentinel;
      int rc = TN(posix_memalign)(&m, a, n);
      if (rc != 0) {
        CHECK_MSG(rc == ENOMEM, "posix_memalign(%zu, %zu) returned %d", a, n, rc);
        CHECK_MSG(m == sentinel, "posix_memalign failed but wrote %p to *memptr", m);
        f->failed[fn]++;
        return false;
      }
      p = m;
      break;
    }
    case F_MEMALIGN: p = TN(memalign)(a, n); break;
    case F_VALLOC: a = 4096; p = TN(valloc)(n); break;
    case F_PVALLOC:
      a = 4096;
      p = TN(pvalloc)(n);
      break;
  }
  int err = errno;
  if (p == NULL) {
    CHECK_MSG(err == ENOMEM, "%s(%zu) returned NULL with errno %d (%s), want ENOMEM", fn_names[fn], n,
              err, strerror(err));
    f->failed[fn]++;
    return false;
  }
  if (fn != F_MALLOC && fn != F_CALLOC && fn != F_REALLOC) CHECK_ALIGNED(p, a);
  CHECK_ALIGNED(p, 16);
  keep(f, p, n);
  f->ok[fn]++;
  return true;
}

/* Allocates until large, then medium, then small requests fail GIVE_UP times in a row. */
static void fill(filler_t *f) {
  int fn = 0;
  for (int level = 0; level < 3; level++) {
    for (unsigned misses = 0; misses < GIVE_UP;) {
      fn = (fn + 1) % F_COUNT;
      if (alloc_one(f, fn, pick_size(f, level)))
        misses = 0;
      else
        misses++;
    }
  }
}

static void release(filler_t *f) {
  for (node_t *b = f->head; b != NULL;) {
    check_node(f, b);
    node_t *next = b->next;
    TN(free)(b);
    b = next;
  }
  f->head = NULL;
  f->bytes = 0;
  f->blocks = 0;
}

static size_t vm_size(void) {
  FILE *s = fopen("/proc/self/status", "r");
  CHECK(s != NULL);
  char line[256];
  size_t kib = 0;
  while (fgets(line, sizeof line, s))
    if (sscanf(line, "VmSize: %zu kB", &kib) == 1) break;
  fclose(s);
  CHECK(kib > 0);
  return kib * 1024;
}

static void limit_address_space(void) {
  struct rlimit r;
  CHECK(getrlimit(RLIMIT_AS, &r) == 0);
  size_t want = vm_size() + HEADROOM;
  if (r.rlim_max != RLIM_INFINITY && r.rlim_max < want) want = r.rlim_max;
  r.rlim_cur = want;
  CHECK(setrlimit(RLIMIT_AS, &r) == 0);
  printf("RLIMIT_AS set to %zu MiB\n", want / MIB);
}

static void check_recovered(size_t got[ROUNDS]) {
  for (int r = 1; r < ROUNDS; r++) {
    double ratio = (double)got[r] / (double)got[0];
    CHECK_MSG(ratio > 0.9 && ratio < 1.1,
              "round %d allocated %zu MiB, round 0 %zu MiB: the allocator did not recover", r,
              got[r] / MIB, got[0] / MIB);
  }
}

static void single(void) {
  limit_address_space();
  filler_t f = {.rng = {test_seed(0x6f6f6d0001ull)}};
  size_t got[ROUNDS];
  for (int r = 0; r < ROUNDS; r++) {
    memset(f.ok, 0, sizeof f.ok);
    memset(f.failed, 0, sizeof f.failed);
    fill(&f);
    got[r] = f.bytes;
    printf("round %d: %zu blocks, %zu MiB\n", r, f.blocks, f.bytes / MIB);
    for (int fn = 0; fn < F_COUNT; fn++) {
      CHECK_MSG(f.ok[fn] > 0, "round %d: %s never succeeded", r, fn_names[fn]);
      CHECK_MSG(f.failed[fn] > 0, "round %d: %s never failed", r, fn_names[fn]);
    }
    release(&f);
  }
  check_recovered(got);
  /* And ordinary service afterwards. */
  void *p = TN(malloc)(100), *q = TN(malloc)(10 * MIB);
  CHECK(p != NULL && q != NULL);
  TN(free)(p);
  TN(free)(q);
}

#define THREADS 9
static pthread_barrier_t barrier;
static filler_t fillers[THREADS];
static size_t round_bytes[THREADS][ROUNDS];

static void *thread_main(void *arg) {
  filler_t *f = arg;
  for (int r = 0; r < ROUNDS; r++) {
    pthread_barrier_wait(&barrier);
    fill(f);
    round_bytes[f->id][r] = f->bytes;
    pthread_barrier_wait(&barrier); /* everyone full at once */
    release(f);
  }
  return NULL;
}

static void threads(void) {
  uint64_t seed = test_seed(0x6f6f6d0002ull);
  limit_address_space();
  CHECK(pthread_barrier_init(&barrier, NULL, THREADS) == 0);
  pthread_attr_t attr;
  CHECK(pthread_attr_init(&attr) == 0);
  CHECK(pthread_attr_setstacksize(&attr, 256 * 1024) == 0);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) {
    fillers[i] = (filler_t){.rng = {seed + 977 * (uint64_t)i}, .id = i};
    CHECK(pthread_create(&t[i], &attr, thread_main, &fillers[i]) == 0);
  }
  for (int i = 0; i < THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  size_t got[ROUNDS] = {0};
  for (int r = 0; r < ROUNDS; r++) {
    for (int i = 0; i < THREADS; i++) got[r] += round_bytes[i][r];
    printf("round %d: %zu MiB over %d threads\n", r, got[r] / MIB, THREADS);
  }
  check_recovered(got);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  if (argc != 2 || (strcmp(argv[1], "single") != 0 && strcmp(argv[1], "threads") != 0)) {
    fprintf(stderr, "usage: %s single|threads\n", argv[0]);
    return 2;
  }
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    alarm(120);
    if (strcmp(argv[1], "single") == 0)
      single();
    else
      threads();
    fflush(stdout);
    _exit(0);
  }
  int status;
  CHECK(waitpid(pid, &status, 0) == pid);
  if (WIFSIGNALED(status)) {
    fprintf(stderr, "the child died of signal %d (%s)\n", WTERMSIG(status), strsignal(WTERMSIG(status)));
    return 1;
  }
  CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child exited with %d", WEXITSTATUS(status));
  return 0;
}
