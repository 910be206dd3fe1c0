/* Issue 11, test 6: malloc_trim(0) ends within 1 MiB of glibc's figure on the same program. Two
 * scenarios, each run in two fresh processes (this program re-executed with an argument), once on
 * glibc's allocator and once on tamalloc, through the same three function pointers:
 *  - idle_owner: a thread allocates 256 MiB of 1000-byte blocks and waits; main frees them all
 *    (remote frees) and trims;
 *  - big_free: 1 GiB of 64-4096-byte blocks (uniform sizes), all freed in order, then a trim.
 * Each child reports RSS after the trim minus RSS at its start; tamalloc's must be at most glibc's
 * + 1 MiB. The standard names in this program may be tamalloc's (the override build), so glibc's
 * malloc, free and malloc_trim are looked up past it (dlsym RTLD_NEXT); if what is found there is not
 * glibc's (a sanitizer's interceptors), the comparison means nothing and the test is skipped. */
#include <dlfcn.h>
#include <pthread.h>
#include <sys/wait.h>

#include "tamalloc.h"
#include "trim_util.h"

typedef struct {
  void *(*malloc)(size_t);
  void (*free)(void *);
  int (*trim)(size_t);
} alloc_t;

static alloc_t al;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int allocated, release; /* under lock */
static void **blocks;
static size_t nblocks;

static void *owner(void *arg) {
  (void)arg;
  for (size_t i = 0; i < nblocks; i++) {
    blocks[i] = al.malloc(1000);
    CHECK(blocks[i] != NULL);
    memset(blocks[i], (int)(i & 0xff), 1000);
  }
  pthread_mutex_lock(&lock);
  allocated = 1;
  pthread_cond_broadcast(&cond);
  while (!release) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  return NULL;
}

/* RSS after the trim minus RSS at the start, in bytes (negative if it ends lower). */
static long idle_owner(void) {
  nblocks = 256 * MIB / 1000;
  blocks = trim_map(nblocks * sizeof *blocks, 1);
  long start = (long)rss_bytes();
  pthread_t a;
  CHECK(pthread_create(&a, NULL, owner, NULL) == 0);
  pthread_mutex_lock(&lock);
  while (!allocated) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  for (size_t i = 0; i < nblocks; i++) al.free(blocks[i]);
  al.trim(0);
  long end = (long)rss_bytes();
  pthread_mutex_lock(&lock);
  release = 1;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
  CHECK(pthread_join(a, NULL) == 0);
  return end - start;
}

static long big_free(void) {
  test_rng_t rng = {0x5eed};
  size_t cap = ((size_t)1 << 30) / 64 + 1, n = 0;
  blocks = trim_map(cap * sizeof *blocks, 0);
  long start = (long)rss_bytes();
  for (size_t total = 0; total < ((size_t)1 << 30); n++) {
    size_t sz = 64 + test_rng_below(&rng, 4096 - 64 + 1);
    blocks[n] = al.malloc(sz);
    CHECK(blocks[n] != NULL);
    memset(blocks[n], (int)(n & 0xff), sz);
    total += sz;
  }
  for (size_t i = 0; i < n; i++) al.free(blocks[i]);
  al.trim(0);
  /* The table's pages are the program's, not the allocator's. */
  trim_unmap(blocks, cap * sizeof *blocks);
  return (long)rss_bytes() - start;
}

static void *next_symbol(const char *name) {
  void *p = dlsym(RTLD_NEXT, name);
  CHECK_MSG(p != NULL, "no %s after this program", name);
  return p;
}

/* The child: one scenario on one allocator; writes "<delta bytes>\n" to stdout, or exits 77 when
 * glibc's allocator cannot be reached. Output is formatted on the stack and written with write(2),
 * so that no allocator is called outside the scenario. */
static int child(const char *which, const char *scenario) {
  /* Both allocators start up before the baseline (tamalloc also for the program's own small
   * allocations: thread start-up calls the standard names), and tamalloc's first brk segment is
   * placed before glibc's heap, so that glibc's heap top stays its own to trim. */
  ta_free(ta_malloc(1));
  if (strcmp(which, "glibc") == 0) {
    al.malloc = (void *(*)(size_t))next_symbol("malloc");
    al.free = (void (*)(void *))next_symbol("free");
    al.trim = (int (*)(size_t))next_symbol("malloc_trim");
    Dl_info info;
    if (dladdr((void *)al.malloc, &info) == 0 || info.dli_fname == NULL || strstr(info.dli_fname, "libc.so") == NULL) {
      fprintf(stderr, "malloc after this program is %s's, not glibc's: skipped\n",
              info.dli_fname ? info.dli_fname : "an unknown object");
      return 77;
    }
  } else {
    CHECK(strcmp(which, "tamalloc") == 0);
    al.malloc = ta_malloc;
    al.free = ta_free;
    al.trim = ta_trim;
  }
  void *first = al.malloc(1000);
  CHECK(first != NULL);
  CHECK(ta_owns(first) == (strcmp(which, "tamalloc") == 0)); /* each child measures the allocator it names */
  al.free(first);
  long delta;
  if (strcmp(scenario, "idle_owner") == 0) {
    delta = idle_owner();
  } else {
    CHECK(strcmp(scenario, "big_free") == 0);
    delta = big_free();
  }
  char line[64];
  int len = snprintf(line, sizeof line, "%ld\n", delta);
  CHECK(write(1, line, (size_t)len) == len);
  return 0;
}

/* Runs this program as `which scenario`; the delta it reports, or exits 77 if the child skipped. */
static long run(char *self, const char *which, const char *scenario) {
  int fd[2];
  CHECK(pipe(fd) == 0);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(fd[1], 1);
    close(fd[0]);
    close(fd[1]);
    unsetenv("MALLOC_PERTURB_"); /* meson sets it; glibc is compared with its defaults */
    char *args[] = {self, (char *)which, (char *)scenario, NULL};
    execv("/proc/self/exe", args);
    _exit(127);
  }
  close(fd[1]);
  char out[64];
  size_t got = 0;
  ssize_t r;
  while (got < sizeof out - 1 && (r = read(fd[0], out + got, sizeof out - 1 - got)) > 0) got += (size_t)r;
  close(fd[0]);
  out[got] = '\0';
  int status;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK_MSG(WIFEXITED(status), "%s %s: child killed by signal %d", which, scenario, WTERMSIG(status));
  if (WEXITSTATUS(status) == 77) exit(77);
  CHECK_MSG(WEXITSTATUS(status) == 0 && got > 0, "%s %s: child exit %d", which, scenario, WEXITSTATUS(status));
  return strtol(out, NULL, 10);
}

int main(int argc, char **argv) {
  if (argc == 3) return child(argv[1], argv[2]);
  CHECK(argc == 1);
  static const char *const scenarios[] = {"idle_owner", "big_free"};
  int failed = 0;
  for (int i = 0; i < 2; i++) {
    long g = run(argv[0], "glibc", scenarios[i]), t = run(argv[0], "tamalloc", scenarios[i]);
    int ok = t <= g + (long)MIB;
    printf("%s: after malloc_trim(0), glibc %+ld KiB, tamalloc %+ld KiB over their start (limit glibc + 1024 KiB)%s\n",
           scenarios[i], g / 1024, t / 1024, ok ? "" : ": FAIL");
    failed |= !ok;
  }
  fflush(stdout);
  CHECK(!failed);
  return 0;
}
