/* fork and the allocator: a child of a multithreaded program whose threads are allocating must be
 * able to allocate and free, including blocks allocated before the fork by any thread; and fork from
 * a signal handler that interrupted malloc in a single-threaded program must not deadlock.
 * Usage: fork_test threads|inherit|signal. Every child has an alarm, and the signal case runs under
 * a watchdog, so a deadlock ends the test with a message instead of a meson timeout. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tamalloc.h"
#include "test.h"

#if TA_TEST_STD_NAMES
#define TN(f) f
#else
#define TN(f) ta_##f
#endif

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Sizes across the router line: mostly small, some medium, a few on the mmap path. */
static size_t mixed_size(test_rng_t *r) {
  uint64_t k = test_rng_below(r, 32);
  if (k == 0) return 128 * KIB + test_rng_below(r, 2 * MIB);
  if (k < 6) return 1024 + test_rng_below(r, 60 * KIB);
  return 1 + test_rng_below(r, 1024);
}

/* What a child does: allocate, fill, check, resize and free a few hundred blocks. Returns 0 when
 * all went well (called in children, so it reports through its return value and stderr). */
static int child_work(uint64_t seed, int rounds) {
  test_rng_t r = {seed};
  enum { N = 64 };
  unsigned char *b[N] = {0};
  size_t n[N] = {0};
  for (int i = 0; i < rounds; i++) {
    int k = (int)test_rng_below(&r, N);
    if (b[k]) {
      if (b[k][0] != (unsigned char)k || b[k][n[k] - 1] != (unsigned char)k) {
        fprintf(stderr, "child: block %p lost its contents\n", (void *)b[k]);
        return 1;
      }
      TN(free)(b[k]);
      b[k] = NULL;
      continue;
    }
    n[k] = mixed_size(&r);
    b[k] = TN(malloc)(n[k]);
    if (b[k] == NULL) {
      fprintf(stderr, "child: malloc(%zu) failed\n", n[k]);
      return 1;
    }
    b[k][0] = b[k][n[k] - 1] = (unsigned char)k;
  }
  for (int k = 0; k < N; k++) TN(free)(b[k]);
  return 0;
}

static void expect_child_ok(pid_t pid, const char *what) {
  int status;
  pid_t w;
  while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  CHECK_MSG(w == pid, "waitpid: %s", strerror(errno));
  if (WIFSIGNALED(status))
    CHECK_MSG(0, "%s: child died of signal %d (%s)%s", what, WTERMSIG(status), strsignal(WTERMSIG(status)),
              WTERMSIG(status) == SIGALRM ? ": it hung (deadlock after fork?)" : "");
  CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: child exited with %d", what,
            WEXITSTATUS(status));
}

/* ---- threads: fork from 4 threads while 8 others allocate ---- */

#define ALLOCATORS 8
#define FORKERS 4
static atomic_int stop;
static atomic_long forks_done;
static uint64_t base_seed;

static void *allocator_main(void *arg) {
  test_rng_t r = {base_seed + (uintptr_t)arg};
  enum { SLOTS = 128 };
  unsigned char *b[SLOTS] = {0};
  size_t n[SLOTS] = {0};
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    int k = (int)test_rng_below(&r, SLOTS);
    if (b[k]) {
      CHECK(b[k][0] == (unsigned char)k && b[k][n[k] - 1] == (unsigned char)k);
      if (test_rng_below(&r, 4) == 0) {
        size_t m = mixed_size(&r);
        unsigned char *q = TN(realloc)(b[k], m);
        CHECK(q != NULL);
        b[k] = q;
        n[k] = m;
        b[k][0] = b[k][m - 1] = (unsigned char)k;
      } else {
        TN(free)(b[k]);
        b[k] = NULL;
      }
      continue;
    }
    n[k] = mixed_size(&r);
    b[k] = TN(malloc)(n[k]);
    CHECK(b[k] != NULL);
    b[k][0] = b[k][n[k] - 1] = (unsigned char)k;
  }
  for (int k = 0; k < SLOTS; k++) TN(free)(b[k]);
  return NULL;
}

static void *forker_main(void *arg) {
  uint64_t seed = base_seed * 31 + (uintptr_t)arg;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      alarm(10);
      _exit(child_work(seed++, 300));
    }
    expect_child_ok(pid, "fork from a thread while 8 threads allocate");
    atomic_fetch_add(&forks_done, 1);
    seed += 1000;
  }
  return NULL;
}

static void case_threads(void) {
  base_seed = test_seed(0x666f726b01ull);
  long ms = test_scale(3000);
  pthread_t a[ALLOCATORS], f[FORKERS];
  for (uintptr_t i = 0; i < ALLOCATORS; i++) CHECK(pthread_create(&a[i], NULL, allocator_main, (void *)i) == 0);
  for (uintptr_t i = 0; i < FORKERS; i++) CHECK(pthread_create(&f[i], NULL, forker_main, (void *)i) == 0);
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < FORKERS; i++) CHECK(pthread_join(f[i], NULL) == 0);
  for (int i = 0; i < ALLOCATORS; i++) CHECK(pthread_join(a[i], NULL) == 0);
  printf("%ld forks in %ld ms, every child exited 0\n", atomic_load(&forks_done), ms);
  CHECK(atomic_load(&forks_done) >= 10);
}

/* ---- inherit: the child frees what the parent's threads allocated before the fork ---- */

typedef struct {
  unsigned char *small[64];
  unsigned char *large[4];
  pthread_barrier_t *ready, *done;
} holder_t;

static const size_t small_sizes[] = {16, 48, 100, 1000, 5000, 20000, 100000, 131071};
static const size_t large_sizes[] = {128 * KIB, MIB, 3 * MIB + 5, 200 * KIB};

static void hold_fill(holder_t *h, unsigned char tag) {
  for (int i = 0; i < 64; i++) {
    size_t n = small_sizes[i % 8];
    h->small[i] = TN(malloc)(n);
    CHECK(h->small[i] != NULL);
    memset(h->small[i], tag + i, n);
  }
  for (int i = 0; i < 4; i++) {
    h->large[i] = TN(malloc)(large_sizes[i]);
    CHECK(h->large[i] != NULL);
    memset(h->large[i], tag - i, large_sizes[i]);
  }
}

/* In the child: check, resize some, free all. */
static int hold_release(holder_t *h, unsigned char tag) {
  for (int i = 0; i < 64; i++) {
    size_t n = small_sizes[i % 8];
    if (h->small[i][0] != (unsigned char)(tag + i) || h->small[i][n - 1] != (unsigned char)(tag + i)) return 1;
    if (i % 5 == 0) {
      unsigned char *q = TN(realloc)(h->small[i], n * 3);
      if (q == NULL || q[n - 1] != (unsigned char)(tag + i)) return 2;
      h->small[i] = q;
    }
    TN(free)(h->small[i]);
  }
  for (int i = 0; i < 4; i++) {
    if (h->large[i][0] != (unsigned char)(tag - i) || h->large[i][large_sizes[i] - 1] != (unsigned char)(tag - i))
      return 3;
    if (i == 1) {
      unsigned char *q = TN(realloc)(h->large[i], 8 * MIB);
      if (q == NULL || q[large_sizes[i] - 1] != (unsigned char)(tag - i)) return 4;
      h->large[i] = q;
    }
    TN(free)(h->large[i]);
  }
  return 0;
}

static void *holder_main(void *arg) {
  holder_t *h = arg;
  hold_fill(h, 0x40);
  pthread_barrier_wait(h->ready);
  pthread_barrier_wait(h->done); /* alive, holding its blocks, while the parent forks */
  return NULL;
}

static void *exiting_main(void *arg) {
  hold_fill(arg, 0x70); /* then exits: its arena goes to the pool, its blocks stay live */
  return NULL;
}

static void *child_thread_main(void *arg) {
  return (void *)(intptr_t)child_work((uintptr_t)arg, 2000);
}

static void case_inherit(void) {
  static holder_t mine, held, orphan;
  pthread_barrier_t ready, done;
  CHECK(pthread_barrier_init(&ready, NULL, 2) == 0 && pthread_barrier_init(&done, NULL, 2) == 0);
  hold_fill(&mine, 0x10);
  pthread_t t, e;
  CHECK(pthread_create(&e, NULL, exiting_main, &orphan) == 0);
  CHECK(pthread_join(e, NULL) == 0);
  held.ready = &ready;
  held.done = &done;
  CHECK(pthread_create(&t, NULL, holder_main, &held) == 0);
  pthread_barrier_wait(&ready);
  for (int round = 0; round < 3; round++) {
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      alarm(20);
      int rc = hold_release(&mine, 0x10);     /* this thread's own blocks */
      if (rc == 0) rc = 10 + hold_release(&held, 0x40) % 10; /* a live thread's (absent here) */
      if (rc == 10) rc = 20 + hold_release(&orphan, 0x70) % 10; /* an exited thread's */
      if (rc == 20) rc = child_work(99, 5000) ? 30 : 0;
      if (rc == 0) {
        /* New threads in the child adopt or create arenas. */
        pthread_t ct[3];
        for (uintptr_t i = 0; i < 3 && rc == 0; i++)
          if (pthread_create(&ct[i], NULL, child_thread_main, (void *)(i + 5)) != 0) rc = 40;
        for (int i = 0; i < 3 && rc == 0; i++) {
          void *res;
          if (pthread_join(ct[i], &res) != 0 || res != NULL) rc = 41;
        }
      }
      if (rc == 0) {
        /* And a grandchild. */
        pid_t g = fork();
        if (g == 0) _exit(child_work(7, 3000));
        int st;
        if (g < 0 || waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0) rc = 50;
      }
      if (rc != 0) fprintf(stderr, "child failed with code %d\n", rc);
      _exit(rc);
    }
    expect_child_ok(pid, "freeing blocks allocated before the fork");
  }
  pthread_barrier_wait(&done);
  CHECK(pthread_join(t, NULL) == 0);
  /* The parent's own copies are untouched by what the children did. */
  CHECK(hold_release(&mine, 0x10) == 0);
  CHECK(hold_release(&held, 0x40) == 0);
  CHECK(hold_release(&orphan, 0x70) == 0);
  printf("3 children freed blocks of this thread, a live thread and an exited thread, then allocated\n");
}

/* ---- signal: fork inside a SIGALRM handler that interrupted malloc ---- */

static volatile sig_atomic_t handler_forks, fork_failures;

/* The child of a handler that may have interrupted malloc anywhere inherits whatever that call was
 * halfway through, so, as POSIX says of a child forked from a signal handler, it may only call
 * async-signal-safe functions: it exits at once. What is tested is that fork itself (tamalloc's
 * fork handlers, which meet the very locks the interrupted call may hold, even half taken) never
 * deadlocks, and that the parent carries on unharmed. */
static void on_alarm(int sig) {
  (void)sig;
  int saved = errno;
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  if (pid > 0)
    handler_forks++;
  else
    fork_failures++;
  errno = saved;
}

/* The program under test: allocate in a loop while the timer forks from the handler. */
static int signal_program(double seconds) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
  struct itimerval it = {{0, 500}, {0, 500}};
  CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
  test_rng_t r = {12345};
  enum { SLOTS = 64 };
  unsigned char *b[SLOTS] = {0};
  long loops = 0, reaped = 0, bad = 0;
  double end = now_s() + seconds;
  while (now_s() < end) {
    for (int i = 0; i < 200; i++, loops++) {
      int k = (int)test_rng_below(&r, SLOTS);
      if (b[k]) {
        TN(free)(b[k]);
        b[k] = NULL;
      } else {
        size_t n = mixed_size(&r);
        b[k] = TN(malloc)(n);
        CHECK(b[k] != NULL);
        b[k][0] = b[k][n - 1] = 1;
      }
    }
    int st;
    pid_t w;
    while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
      reaped++;
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        bad++;
        fprintf(stderr, "a child %s %d\n", WIFSIGNALED(st) ? "died of signal" : "exited with",
                WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
      }
    }
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  /* Reap the rest; a child that hangs is killed by its own alarm and counted as bad. */
  for (;;) {
    int st;
    pid_t w = waitpid(-1, &st, 0);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) break;
    reaped++;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      bad++;
      if (WIFSIGNALED(st))
        fprintf(stderr, "a child died of signal %d (%s)\n", WTERMSIG(st), strsignal(WTERMSIG(st)));
    }
  }
  for (int k = 0; k < SLOTS; k++) TN(free)(b[k]);
  printf("%ld allocator calls, %d forks from the handler (%d refused), %ld children reaped, %ld failed\n",
         loops, (int)handler_forks, (int)fork_failures, reaped, bad);
  if (bad != 0 || handler_forks < 50) return 1;
  return 0;
}

static void case_signal(void) {
  double seconds = (double)test_scale(1000) / 1000.0;
  fflush(stdout);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) _exit(signal_program(seconds));
  /* Watchdog: the program must finish well within 20 s. */
  double deadline = now_s() + 20 + seconds;
  for (;;) {
    int st;
    pid_t w = waitpid(pid, &st, WNOHANG);
    if (w == pid) {
      CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the program %s %d",
                WIFSIGNALED(st) ? "died of signal" : "exited with", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
      return;
    }
    if (now_s() > deadline) {
      char path[64], wchan[128] = "?";
      snprintf(path, sizeof path, "/proc/%d/wchan", (int)pid);
      FILE *f = fopen(path, "r");
      if (f) {
        if (!fgets(wchan, sizeof wchan, f)) strcpy(wchan, "?");
        fclose(f);
      }
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      CHECK_MSG(0, "deadlock: the program that forks in its SIGALRM handler stopped (waiting in %s)", wchan);
    }
    usleep(20000);
  }
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 2 && strcmp(argv[1], "threads") == 0)
    case_threads();
  else if (argc == 2 && strcmp(argv[1], "inherit") == 0)
    case_inherit();
  else if (argc == 2 && strcmp(argv[1], "signal") == 0)
    case_signal();
  else {
    fprintf(stderr, "usage: %s threads|inherit|signal\n", argv[0]);
    return 2;
  }
  return 0;
}
