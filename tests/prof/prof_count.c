/* The profiler's bookkeeping, read back from its own dumps (ta_prof_dump):
 *   exact     every block sampled (rate 1 byte): the profile counts exactly the live blocks, through
 *             malloc, calloc, aligned_alloc, posix_memalign, realloc, free_sized and free
 *   estimate  rate 4 KiB: the estimate pprof computes from the profile is the live heap within 10%
 *   threads   8 threads allocate and free each other's blocks, some fork and dump from the child;
 *             afterwards no sampled block of theirs is left
 *   off       profiling off: no sampled block, no new mapping, no large block in the statistics
 *   tlsdtor   a TLS destructor allocates, sampled; main frees its blocks
 *   reuse     every block sampled: those below the mmap threshold are arena blocks (no large block
 *             in the statistics), a malloc/free loop reuses their memory (the heap stops growing),
 *             a realloc within the block's class keeps the block and the profile follows it
 *   env       malformed TAMALLOC_PROF_* values (run_prof.py sets them): the defaults stay
 * The first request after profiling is turned on starts the countdown and is never sampled (the
 * exact mode makes one before it counts). The dump is read with read(2) into a static buffer, so reading it allocates nothing. */
#include <dlfcn.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tamalloc.h"
#include "test.h"

static char text[1 << 22];
static char path[256];

/* The file at `file` into text, with read(2): no allocation. */
static size_t read_text(const char *file) {
  int fd = open(file, O_RDONLY);
  CHECK(fd >= 0);
  size_t n = 0;
  ssize_t r;
  while ((r = read(fd, text + n, sizeof text - 1 - n)) > 0) n += (size_t)r;
  close(fd);
  text[n] = '\0';
  return n;
}

static size_t dump_read(void) {
  CHECK(ta_prof_dump(path) == 0);
  size_t n = read_text(path);
  CHECK(strstr(text, "\nMAPPED_LIBRARIES:\n") != NULL);
  return n;
}

/* The header's live sampled blocks and bytes. */
static void live(size_t *blocks, size_t *bytes) {
  dump_read();
  CHECK(sscanf(text, "heap profile: %zu: %zu [", blocks, bytes) == 2);
}

/* Estimated live bytes as pprof computes them: each stack's bytes / (1 - exp(-avg size / rate)). */
static double estimate(double rate) {
  dump_read();
  double est = 0;
  char *line = strchr(text, '\n') + 1;
  size_t n, b;
  while (sscanf(line, "%zu: %zu [", &n, &b) == 2) {
    if (n) est += (double)b / (1 - exp(-((double)b / (double)n) / rate));
    line = strchr(line, '\n') + 1;
  }
  return est;
}

#define EXACT 3000
static void *blocks[EXACT];
static size_t sizes[EXACT];

static void exact(void) {
  CHECK(ta_mallopt(TA_OPT_PROF_SAMPLE, 1) == 1);
  CHECK(ta_mallopt(TA_OPT_PROF, 1) == 1);
  void *volatile first = malloc(16); /* volatile: a malloc only freed may be elided */
  test_rng_t r = {7};
  size_t total = 0;
  for (int i = 0; i < EXACT; i++) {
    size_t n = 16 + test_rng_next(&r) % 3000;
    switch (i % 4) {
      case 0: blocks[i] = malloc(n); break;
      case 1: blocks[i] = calloc(1, n); break;
      case 2: blocks[i] = aligned_alloc(64, n); break;
      default: CHECK(posix_memalign(&blocks[i], 256, n) == 0); break;
    }
    CHECK(blocks[i] != NULL);
    if (i % 4 == 1) CHECK(((char *)blocks[i])[n - 1] == 0);
    if (i % 4 >= 2) CHECK_ALIGNED(blocks[i], i % 4 == 2 ? 64 : 256);
    CHECK(ta_usable_size(blocks[i]) >= n);
    CHECK(ta_owns(blocks[i]));
    memset(blocks[i], 0xab, n);
    sizes[i] = n;
    total += n;
  }
  size_t nb, bytes;
  live(&nb, &bytes);
  CHECK_EQ_SZ(nb, EXACT);
  CHECK_EQ_SZ(bytes, total);
  /* realloc moves a sampled block: the old one leaves the profile, the new one enters it */
  for (int i = 0; i < EXACT; i += 3) {
    size_t n = sizes[i] * 2 + (i % 2 ? 200000 : 0);
    char *q = realloc(blocks[i], n);
    CHECK(q != NULL);
    CHECK((unsigned char)q[sizes[i] - 1] == 0xab);
    total += n - sizes[i];
    blocks[i] = q;
    sizes[i] = n;
  }
  live(&nb, &bytes);
  CHECK_EQ_SZ(nb, EXACT);
  CHECK_EQ_SZ(bytes, total);
  for (int i = 0; i < EXACT; i += 2) {
    if (i % 4 == 0)
      ta_free_sized(blocks[i], sizes[i]);
    else
      free(blocks[i]);
    total -= sizes[i];
    blocks[i] = NULL;
  }
  live(&nb, &bytes);
  CHECK_EQ_SZ(nb, EXACT / 2);
  CHECK_EQ_SZ(bytes, total);
  for (int i = 1; i < EXACT; i += 2) free(blocks[i]);
  free(first);
  live(&nb, &bytes);
  CHECK_EQ_SZ(nb, 0);
  CHECK_EQ_SZ(bytes, 0);
}

#define EST_A 40000
#define EST_B 10000
static void *est_a[EST_A];
static void *est_b[EST_B];

__attribute__((noinline)) static void est_alloc_a(void) {
  for (int i = 0; i < EST_A; i++) CHECK((est_a[i] = malloc(256)) != NULL);
}
__attribute__((noinline)) static void est_alloc_b(void) {
  for (int i = 0; i < EST_B; i++) CHECK((est_b[i] = malloc(1500)) != NULL);
}

static void estimates(void) {
  CHECK(ta_mallopt(TA_OPT_PROF_SAMPLE, 4096) == 1);
  CHECK(ta_mallopt(TA_OPT_PROF, 1) == 1);
  est_alloc_a();
  est_alloc_b();
  double truth = EST_A * 256.0 + EST_B * 1500.0;
  double e = estimate(4096);
  CHECK_MSG(fabs(e - truth) < 0.1 * truth, "estimate %.0f, live %.0f", e, truth);
  for (int i = 0; i < EST_A; i += 2) free(est_a[i]);
  for (int i = 0; i < EST_B; i += 2) free(est_b[i]);
  e = estimate(4096);
  CHECK_MSG(fabs(e - truth / 2) < 0.1 * truth / 2, "estimate %.0f, live %.0f", e, truth / 2);
  for (int i = 1; i < EST_A; i += 2) free(est_a[i]);
  for (int i = 1; i < EST_B; i += 2) free(est_b[i]);
  size_t nb, bytes;
  live(&nb, &bytes);
  CHECK_EQ_SZ(nb, 0);
}

/* threads: each thread allocates into its own slots and frees what its neighbour allocated. */
#define THREADS 8
#define ROUNDS 40
#define SLOTS 512
static void *slots[THREADS][SLOTS];
static pthread_barrier_t barrier;

static void *worker(void *arg) {
  int t = (int)(intptr_t)arg;
  test_rng_t r = {(uint64_t)t + 1};
  for (int round = 0; round < ROUNDS; round++) {
    for (int i = 0; i < SLOTS; i++) CHECK((slots[t][i] = malloc(16 + test_rng_next(&r) % 4000)) != NULL);
    pthread_barrier_wait(&barrier);
    int victim = (t + 1) % THREADS;
    for (int i = 0; i < SLOTS; i++) free(slots[victim][i]);
    if (t < 2 && round % 10 == 0) {
      pid_t pid = fork();
      CHECK(pid >= 0);
      if (pid == 0) {
        void *volatile p[64];
        for (int i = 0; i < 64; i++) p[i] = malloc(8192);
        char child_path[300];
        snprintf(child_path, sizeof child_path, "%s.child", path);
        int ok = ta_prof_dump(child_path) == 0;
        for (int i = 0; i < 64; i++) free(p[i]);
        _exit(ok ? 0 : 1);
      }
      int status;
      CHECK(waitpid(pid, &status, 0) == pid);
      CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    pthread_barrier_wait(&barrier);
  }
  return NULL;
}

static void threads(void) {
  CHECK(ta_getopt(TA_OPT_PROF) == 1); /* from the environment: TAMALLOC_PROF=1, SAMPLE=4k */
  CHECK(ta_getopt(TA_OPT_PROF_SAMPLE) == 4096);
  pthread_t th[THREADS];
  CHECK(pthread_barrier_init(&barrier, NULL, THREADS) == 0);
  size_t before, bytes;
  live(&before, &bytes);
  for (int t = 0; t < THREADS; t++) CHECK(pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t) == 0);
  for (int t = 0; t < THREADS; t++) CHECK(pthread_join(th[t], NULL) == 0);
  size_t after;
  live(&after, &bytes);
  /* 40 rounds x 8 threads x 512 blocks of 2 KiB on average: about 80000 samples were taken and
   * freed; a few blocks glibc keeps per thread or for stdio may remain sampled */
  CHECK_MSG(after <= before + 8, "%zu sampled blocks live before the threads, %zu after", before, after);
}

/* Bytes of anonymous mappings other than [heap]: where the profiler's tables and sampled blocks
 * would be (the brk heap holds the main thread's small blocks). */
static size_t anon_bytes(void) {
  read_text("/proc/self/maps");
  size_t sum = 0;
  for (char *line = text; *line; line = strchr(line, '\n') + 1) {
    unsigned long lo, hi, inode;
    int end = 0;
    if (sscanf(line, "%lx-%lx %*s %*s %*s %lu%n", &lo, &hi, &inode, &end) != 3) break;
    char *rest = line + end;
    while (*rest == ' ') rest++;
    if (inode == 0 && *rest == '\n') sum += hi - lo;
  }
  return sum;
}

static void off(void) {
  CHECK(ta_getopt(TA_OPT_PROF) == 0);
  void *volatile warm = malloc(64); /* the arena and its first segment (volatile: not elided) */
  size_t before = anon_bytes();
  static void *keep[20000];
  for (int i = 0; i < 20000; i++) CHECK((keep[i] = malloc(16 + (size_t)i % 1000)) != NULL);
  ta_stats_t st;
  ta_stats_get(&st);
  CHECK_EQ_SZ(st.large_blocks, 0);
  size_t nb, bytes;
  live(&nb, &bytes);
  CHECK_EQ_SZ(nb, 0);
  /* 10 MiB of small blocks, all on the brk heap: no anonymous mapping appeared */
  size_t after = anon_bytes();
  CHECK_MSG(after == before, "%zu bytes of anonymous mappings before, %zu after", before, after);
  for (int i = 0; i < 20000; i++) free(keep[i]);
  free(warm);
}

/* tlsdtor: a thread's TLS destructor allocates while every block is sampled (rate 1 byte). */
#define DTOR_BLOCKS 32
static void *dtor_blocks[DTOR_BLOCKS];
static pthread_key_t dtor_key;

static void dtor(void *value) {
  (void)value;
  for (int i = 0; i < DTOR_BLOCKS; i++) CHECK((dtor_blocks[i] = malloc(100 + (size_t)i)) != NULL);
}

static void *dtor_thread(void *arg) {
  CHECK(pthread_setspecific(dtor_key, arg) == 0);
  return NULL;
}

static void tlsdtor(void) {
  CHECK(ta_mallopt(TA_OPT_PROF_SAMPLE, 1) == 1);
  CHECK(ta_mallopt(TA_OPT_PROF, 1) == 1);
  CHECK(pthread_key_create(&dtor_key, dtor) == 0);
  pthread_t th;
  CHECK(pthread_create(&th, NULL, dtor_thread, (void *)1) == 0);
  CHECK(pthread_join(th, NULL) == 0);
  size_t before, bytes;
  live(&before, &bytes);
  /* the thread's first requests start its countdown; all the others are sampled */
  CHECK_MSG(before >= DTOR_BLOCKS - 3, "%zu of %d blocks sampled", before, DTOR_BLOCKS);
  for (int i = 0; i < DTOR_BLOCKS; i++) free(dtor_blocks[i]);
  size_t after;
  live(&after, &bytes);
  CHECK_MSG(after + DTOR_BLOCKS - 3 <= before, "%zu sampled before the frees, %zu after", before, after);
}

#define REUSE_LIVE 64
#define REUSE_LOOP 5000
static void reuse(void) {
  CHECK(ta_mallopt(TA_OPT_PROF_SAMPLE, 1) == 1);
  CHECK(ta_mallopt(TA_OPT_PROF, 1) == 1);
  void *volatile first = malloc(16); /* starts the countdown, not sampled */
  static char *held[REUSE_LIVE];
  size_t total = 0;
  for (int i = 0; i < REUSE_LIVE; i++) {
    size_t n = 100000 + (size_t)i;
    CHECK((held[i] = malloc(n)) != NULL);
    memset(held[i], 0xcd, n);
    total += n;
  }
  size_t nb, bytes;
  live(&nb, &bytes);
  CHECK_EQ_SZ(nb, REUSE_LIVE);
  CHECK_EQ_SZ(bytes, total);
  ta_stats_t st;
  ta_stats_get(&st);
  CHECK_EQ_SZ(st.large_blocks, 0);
  for (int i = 0; i < REUSE_LOOP / 10; i++) { /* warm: the heap grows to what the loop needs */
    char *volatile p = malloc(65536);
    CHECK(p != NULL);
    memset(p, i, 65536);
    free(p);
  }
  ta_stats_get(&st);
  size_t grows = st.segment_grows;
  for (int i = 0; i < REUSE_LOOP; i++) {
    char *volatile p = malloc(65536);
    CHECK(p != NULL);
    memset(p, i, 65536);
    free(p);
  }
  ta_stats_get(&st);
  CHECK_EQ_SZ(st.segment_grows, grows);
  CHECK_EQ_SZ(st.large_blocks, 0);
  live(&nb, &bytes);
  CHECK_EQ_SZ(nb, REUSE_LIVE);
  /* shrinking within four classes keeps a bin block where it is, sampled or not */
  char *q = realloc(held[0], 99000);
  CHECK(q == held[0]);
  CHECK((unsigned char)q[98999] == 0xcd);
  live(&nb, &bytes);
  CHECK_EQ_SZ(nb, REUSE_LIVE);
  CHECK_EQ_SZ(bytes, total - 1000);
  for (int i = 0; i < REUSE_LIVE; i++) free(held[i]);
  free(first);
  live(&nb, &bytes);
  CHECK_EQ_SZ(nb, 0);
  CHECK_EQ_SZ(bytes, 0);
}

static void env(void) {
  CHECK(ta_getopt(TA_OPT_PROF) == 0);
  CHECK(ta_getopt(TA_OPT_PROF_SAMPLE) == 512 * 1024);
  CHECK(ta_getopt(TA_OPT_PROF_INTERVAL) == 0);
  CHECK(ta_getopt(TA_OPT_PROF_LEAKS) == 0);
}

/* Every allocation sampled (its stack unwound) while the loader runs dlopen and dlclose, which
 * allocate with the loader's own locks held, and while the library's code allocates: nothing may
 * deadlock, and what dlclose gave back leaves the profile (the loader keeps at most a few blocks). */
static const char *loader_lib;
static void loader(void) {
  CHECK(ta_mallopt(TA_OPT_PROF_SAMPLE, 1) == 1);
  CHECK(ta_mallopt(TA_OPT_PROF, 1) == 1);
  size_t nb0, b0, nb, b;
  live(&nb0, &b0);
  for (int i = 0; i < 200; i++) {
    void *h = dlopen(loader_lib, RTLD_NOW | RTLD_LOCAL);
    CHECK(h != NULL);
    void (*hold)(void **, int, size_t) = (void (*)(void **, int, size_t))dlsym(h, "shlib_hold");
    CHECK(hold != NULL);
    void *out[4];
    hold(out, 4, 100);
    for (int k = 0; k < 4; k++) free(out[k]);
    CHECK(dlclose(h) == 0);
    if (i == 0) live(&nb0, &b0); /* after the first round: what the loader keeps for good */
  }
  live(&nb, &b);
  CHECK_MSG(nb <= nb0 + 8, "%zu sampled blocks live after 200 dlopen/dlclose rounds, %zu after one", nb, nb0);
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "loader") == 0) loader_lib = argv[3], argc = 3;
  CHECK(argc == 3);
  snprintf(path, sizeof path, "%s", argv[2]);
  if (strcmp(argv[1], "exact") == 0) exact();
  else if (strcmp(argv[1], "estimate") == 0) estimates();
  else if (strcmp(argv[1], "threads") == 0) threads();
  else if (strcmp(argv[1], "off") == 0) off();
  else if (strcmp(argv[1], "env") == 0) env();
  else if (strcmp(argv[1], "tlsdtor") == 0) tlsdtor();
  else if (strcmp(argv[1], "reuse") == 0) reuse();
  else if (strcmp(argv[1], "loader") == 0) loader();
  else CHECK(!"unknown mode");
  return 0;
}
