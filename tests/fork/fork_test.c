/* fork and the allocator: a child of a multithreaded program whose threads are allocating must be
 * able to allocate and free, including blocks allocated before the fork by any thread; fork from a
 * signal handler that interrupted malloc (or the statistics) must not deadlock, and the child of such
 * a fork can allocate, with or without the background thread; fork while other threads flush and
 * read stdio streams must not deadlock; a thread's first allocation binds exactly one arena; and a
 * fork from a thread that allocates from a shared arena leaves the child able to allocate.
 * Usage: fork_test threads|inherit|signal|signal_alloc|signal_stats|stdio|bind|probation|init_race.
 * Every child has an alarm, and the cases that can deadlock run under a watchdog, so a deadlock ends
 * the test with a message instead of a meson timeout. Work is bounded by counts (forks made); the
 * watchdog's limit is only a backstop, far above what a slow machine needs. */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/single_threaded.h>
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

/* Preloaded (libtamalloc.so under LD_PRELOAD, this program linked without it): the two ta_* calls
 * are looked up at run time. */
#if TA_TEST_PRELOADED
#include <dlfcn.h>
static void stats_get(ta_stats_t *out) {
  void (*fn)(ta_stats_t *) = (void (*)(ta_stats_t *))(uintptr_t)dlsym(RTLD_DEFAULT, "ta_stats_get");
  CHECK(fn != NULL);
  fn(out);
}
static size_t stats_json(char *buf, size_t len) {
  size_t (*fn)(char *, size_t) = (size_t(*)(char *, size_t))(uintptr_t)dlsym(RTLD_DEFAULT, "ta_stats_json");
  CHECK(fn != NULL);
  return fn(buf, len);
}
#else
#define stats_get ta_stats_get
#define stats_json ta_stats_json
#endif

/* A forked child that has not exited after this many seconds is taken as hung (a deadlock after
 * fork) and dies of SIGALRM, which its parent reports. Far above any child's work on a busy machine
 * under a sanitizer (20 s was not: ASan at a load of 19), below the tests' meson timeouts. */
#define CHILD_ALARM_S 150

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

/* One step of the churn every allocating loop here runs over `slots` blocks: a random slot's block
 * is checked (its first and last bytes hold the slot number) and freed, or a block of mixed size is
 * allocated and marked. Returns 0, or 1 after saying on stderr what went wrong (`who`). */
static int churn_step(test_rng_t *r, unsigned char **b, size_t *n, int slots, const char *who) {
  int k = (int)test_rng_below(r, (uint64_t)slots);
  if (b[k]) {
    if (b[k][0] != (unsigned char)k || b[k][n[k] - 1] != (unsigned char)k) {
      fprintf(stderr, "%s: block %p lost its contents\n", who, (void *)b[k]);
      return 1;
    }
    TN(free)(b[k]);
    b[k] = NULL;
    return 0;
  }
  n[k] = mixed_size(r);
  b[k] = TN(malloc)(n[k]);
  if (b[k] == NULL) {
    fprintf(stderr, "%s: malloc(%zu) failed\n", who, n[k]);
    return 1;
  }
  b[k][0] = b[k][n[k] - 1] = (unsigned char)k;
  return 0;
}

/* What a child does: a few hundred churn steps, then everything freed. Returns 0 when all went well
 * (called in children, so it reports through its return value and stderr). */
static int child_work(uint64_t seed, int rounds) {
  test_rng_t r = {seed};
  enum { N = 64 };
  unsigned char *b[N] = {0};
  size_t n[N] = {0};
  for (int i = 0; i < rounds; i++)
    if (churn_step(&r, b, n, N, "child")) return 1;
  for (int k = 0; k < N; k++) TN(free)(b[k]);
  return 0;
}

/* Reaps finished children; returns how many failed. `block`: wait for every child. */
static long reap_children(bool block, long *reaped) {
  long bad = 0;
  for (;;) {
    int st;
    pid_t w = waitpid(-1, &st, block ? 0 : WNOHANG);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    (*reaped)++;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      bad++;
      fprintf(stderr, "a child %s %d%s\n", WIFSIGNALED(st) ? "died of signal" : "exited with",
              WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st),
              WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM ? " (it hung)" : "");
    }
  }
  return bad;
}

/* An interval timer (ITIMER_REAL: SIGALRM, ITIMER_PROF: SIGPROF) whose handler runs with no signal
 * blocked but its own; usec 0 stops it. */
static void set_timer(int which, void (*handler)(int), long usec) {
  if (handler != NULL) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(which == ITIMER_REAL ? SIGALRM : SIGPROF, &sa, NULL) == 0);
  }
  struct itimerval it = {{0, usec}, {0, usec}};
  CHECK(setitimer(which, &it, NULL) == 0);
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
      alarm(CHILD_ALARM_S);
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
      alarm(CHILD_ALARM_S);
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
/* Every handler below forks only when the interrupted loop got on since that handler's last fork
 * (the loops count their allocator calls here): a fork takes about as long as the timers' period on
 * a busy machine, and a handler that forked at every tick would leave the loop no time at all. */
static volatile sig_atomic_t fork_progress;
static bool progressed(volatile sig_atomic_t *last) {
  if (*last == fork_progress) return false;
  *last = fork_progress;
  return true;
}

static void on_alarm(int sig) {
  (void)sig;
  static volatile sig_atomic_t last = -1;
  if (!progressed(&last)) return;
  int saved = errno;
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  if (pid > 0)
    handler_forks++;
  else
    fork_failures++;
  errno = saved;
}

/* The program under test: allocate in a loop while the timer forks from the handler, until the
 * handler has forked `forks` times (a count, not a time: a busy machine only makes it slower). */
static int signal_program(long forks) {
  set_timer(ITIMER_REAL, on_alarm, 500);
  test_rng_t r = {12345};
  enum { SLOTS = 64 };
  unsigned char *b[SLOTS] = {0};
  size_t n[SLOTS] = {0};
  long loops = 0, reaped = 0, bad = 0;
  while (handler_forks < forks) {
    for (int i = 0; i < 200; i++, loops++, fork_progress++)
      if (churn_step(&r, b, n, SLOTS, "parent")) return 1;
    bad += reap_children(false, &reaped);
  }
  set_timer(ITIMER_REAL, NULL, 0);
  /* Reap the rest; a child that hangs is killed by its own alarm and counted as bad. */
  bad += reap_children(true, &reaped);
  for (int k = 0; k < SLOTS; k++) TN(free)(b[k]);
  printf("%ld allocator calls, %d forks from the handler (%d refused), %ld children reaped, %ld failed\n",
         loops, (int)handler_forks, (int)fork_failures, reaped, bad);
  if (bad != 0) return 1;
  return 0;
}

/* Runs program(arg) in a child under a watchdog: the child must exit 0 within `limit` seconds. */
static void run_watched(int (*program)(long), long arg, double limit, const char *what) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) _exit(program(arg));
  double deadline = now_s() + limit;
  for (;;) {
    int st;
    pid_t w = waitpid(pid, &st, WNOHANG);
    if (w == pid) {
      CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: the program %s %d", what,
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
      CHECK_MSG(0, "deadlock: %s: the program stopped (waiting in %s)", what, wchan);
    }
    usleep(20000);
  }
}

static void case_signal(void) {
  run_watched(signal_program, test_scale(80), 150, "fork in a SIGALRM handler");
}

/* ---- signal_alloc: the child of a fork from a handler that interrupted malloc allocates ---- */

/* Since glibc 2.24 fork is async-signal-safe with respect to malloc: the child of a fork from a
 * handler that interrupted malloc anywhere must be able to allocate. The handler's child runs a few
 * hundred allocations of every kind (small, medium, mapped) and exits with their verdict; the parent
 * keeps allocating in its loop, interrupted every 300 us. Bounded by the number of forks. With
 * TAMALLOC_BACKGROUND_THREAD=1 the process is multithreaded (the trim thread) while it forks. */
static volatile sig_atomic_t alloc_forks, alloc_fork_failures;
static unsigned long alloc_seed;

static void on_alarm_alloc(int sig) {
  static volatile sig_atomic_t last_alrm = -1, last_prof = -1;
  if (!progressed(sig == SIGALRM ? &last_alrm : &last_prof)) return;
  int saved = errno;
  pid_t pid = fork();
  if (pid == 0) {
    alarm(CHILD_ALARM_S);
    _exit(child_work(alloc_seed, 200));
  }
  if (pid > 0)
    alloc_forks++;
  else
    alloc_fork_failures++;
  alloc_seed++;
  errno = saved;
}

static int signal_alloc_program(long forks) {
  alloc_seed = 777;
  /* Single-threaded: a second timer whose handler also forks and does not block the first's signal,
   * so a fork can interrupt another fork halfway through the fork handlers too. Not with the trim
   * thread alive: glibc's fork of a multithreaded process holds its own atfork lock across the
   * handlers, so a fork nested in another deadlocks inside glibc whatever the allocator. */
  const char *bg = getenv("TAMALLOC_BACKGROUND_THREAD");
  bool nested = bg != NULL && strcmp(bg, "0") == 0 && __libc_single_threaded;
  if (nested) set_timer(ITIMER_PROF, on_alarm_alloc, 700);
  set_timer(ITIMER_REAL, on_alarm_alloc, 300);
  test_rng_t r = {4242};
  enum { SLOTS = 64 };
  unsigned char *b[SLOTS] = {0};
  size_t n[SLOTS] = {0};
  long loops = 0, reaped = 0, bad = 0;
  while (alloc_forks < forks) {
    for (int i = 0; i < 100; i++, loops++, fork_progress++)
      if (churn_step(&r, b, n, SLOTS, "parent")) return 1;
    bad += reap_children(false, &reaped);
  }
  set_timer(ITIMER_REAL, NULL, 0);
  set_timer(ITIMER_PROF, NULL, 0);
  bad += reap_children(true, &reaped);
  for (int k = 0; k < SLOTS; k++) TN(free)(b[k]);
  printf("%ld allocator calls, %d forks from the handler (%d refused), %ld children reaped, %ld failed\n",
         loops, (int)alloc_forks, (int)alloc_fork_failures, reaped, bad);
  return bad != 0;
}

static void case_signal_alloc(void) {
  long forks = test_scale(400);
  run_watched(signal_alloc_program, forks, 120, "the child of a fork in a handler allocates");
}

/* ---- signal_stats: fork from a handler that interrupted the statistics, trimmer running ---- */

/* The statistics walk holds an arena's segment lock while the trimmer (decay 20 ms, so the
 * background thread passes every 10 ms) wants the same arena; the handler that interrupts the walk
 * forks. Many segments make the walk long, so a signal lands inside it often. */
static int signal_stats_program(long forks) {
  enum { BLOCKS = 16384 };
  static void *blk[BLOCKS];
  for (int i = 0; i < BLOCKS; i++) {
    blk[i] = TN(malloc)(60000); /* 1 GiB in 60,000-byte blocks: about 240 segments */
    if (blk[i] == NULL) return 1;
  }
  set_timer(ITIMER_REAL, on_alarm, 250); /* each program runs in a process of its own */
  long walks = 0, reaped = 0, bad = 0;
  int next_free = 0;
  while (handler_forks < forks) {
    ta_stats_t st;
    stats_get(&st);
    walks++;
    fork_progress++;
    /* Keep the trimmer busy: free a few blocks (whole spans go back) and allocate them again. */
    for (int j = 0; j < 8; j++, next_free = (next_free + 1) % BLOCKS) {
      TN(free)(blk[next_free]);
      blk[next_free] = TN(malloc)(60000);
      if (blk[next_free] == NULL) return 1;
    }
    bad += reap_children(false, &reaped);
  }
  set_timer(ITIMER_REAL, NULL, 0);
  bad += reap_children(true, &reaped);
  for (int i = 0; i < BLOCKS; i++) TN(free)(blk[i]);
  printf("%ld statistics walks, %d forks from the handler, %ld children reaped, %ld failed\n", walks,
         (int)handler_forks, reaped, bad);
  return bad != 0;
}

static void case_signal_stats(void) {
  long forks = test_scale(500);
  run_watched(signal_stats_program, forks, 120, "fork in a handler that interrupted ta_stats_get");
}

/* ---- stdio: fork while other threads flush every stream and read files ---- */

/* glibc's fork takes its stdio list lock before its own allocator's locks; the atfork handlers run
 * before both. Threads here fork (children allocate and exit), call fflush(NULL) (which holds the
 * list lock while it waits for each stream's lock), and read a file through their own streams
 * (which hold a stream's lock while they allocate: fopen, rewind, fgets on a fresh buffer). */
static atomic_long stdio_forks;
static atomic_int stdio_stop;
static char stdio_path[64];

static void *stdio_forker(void *arg) {
  uint64_t seed = 1000 + (uintptr_t)arg;
  while (!atomic_load(&stdio_stop)) {
    pid_t pid = fork();
    if (pid < 0) continue;
    if (pid == 0) {
      alarm(CHILD_ALARM_S);
      _exit(child_work(seed, 100));
    }
    expect_child_ok(pid, "fork while other threads use stdio");
    atomic_fetch_add(&stdio_forks, 1);
    seed += 7;
  }
  return NULL;
}

static void *stdio_flusher(void *arg) {
  test_rng_t r = {(uintptr_t)arg};
  while (!atomic_load(&stdio_stop)) {
    void *p = TN(malloc)(1 + test_rng_below(&r, 4000));
    fflush(NULL);
    TN(free)(p);
  }
  return NULL;
}

static void *stdio_reader(void *arg) {
  test_rng_t r = {(uintptr_t)arg};
  char line[256];
  while (!atomic_load(&stdio_stop)) {
    FILE *f = fopen(stdio_path, "r");
    CHECK(f != NULL);
    for (int i = 0; i < 4; i++) {
      while (fgets(line, sizeof line, f) != NULL) {
      }
      rewind(f);
      void *p = TN(malloc)(1 + test_rng_below(&r, 70000));
      TN(free)(p);
    }
    fclose(f);
  }
  return NULL;
}

static int stdio_program(long forks) {
  snprintf(stdio_path, sizeof stdio_path, "/tmp/ta-fork-stdio-%d", (int)getpid());
  FILE *w = fopen(stdio_path, "w");
  CHECK(w != NULL);
  for (int i = 0; i < 2000; i++) fprintf(w, "line %d of a file the readers read again and again\n", i);
  fclose(w);
  enum { S_FORKERS = 2, S_FLUSHERS = 2, S_READERS = 4 };
  pthread_t t[S_FORKERS + S_FLUSHERS + S_READERS];
  int n = 0;
  for (uintptr_t i = 0; i < S_FORKERS; i++) CHECK(pthread_create(&t[n++], NULL, stdio_forker, (void *)i) == 0);
  for (uintptr_t i = 0; i < S_FLUSHERS; i++) CHECK(pthread_create(&t[n++], NULL, stdio_flusher, (void *)(i + 10)) == 0);
  for (uintptr_t i = 0; i < S_READERS; i++) CHECK(pthread_create(&t[n++], NULL, stdio_reader, (void *)(i + 20)) == 0);
  while (atomic_load(&stdio_forks) < forks) usleep(1000);
  atomic_store(&stdio_stop, 1);
  for (int i = 0; i < n; i++) CHECK(pthread_join(t[i], NULL) == 0);
  unlink(stdio_path);
  printf("%ld forks while threads flushed and read stdio streams\n", atomic_load(&stdio_forks));
  return 0;
}

static void case_stdio(void) {
  long forks = test_scale(2000);
  run_watched(stdio_program, forks, 120, "fork while threads use stdio");
}

/* ---- bind: a thread's first allocation binds one arena, even when it starts the trim thread ---- */

/* The background thread is started from the malloc slow path the first time it is wanted. When that
 * slow path is a new thread's first allocation, pthread_create's own allocations (nested inside it)
 * must find the thread's arena already bound, or the nested call binds one arena and the outer call
 * another over it, and the first stays bound to the thread forever. */
static void *bind_main(void *arg) {
  (void)arg;
  void *p = TN(malloc)(24);
  CHECK(p != NULL);
  TN(free)(p);
  return NULL;
}

static size_t count_bound_arenas(void) {
  static char json[1 << 16];
  CHECK(stats_json(json, sizeof json) < sizeof json);
  size_t n = 0;
  for (const char *s = json; (s = strstr(s, "\"state\": \"bound\"")) != NULL; s++) n++;
  return n;
}

static int bind_program(long unused) {
  (void)unused;
  /* The first mapped block's free asks for the background thread; nothing on this thread reaches a
   * malloc slow path before the new thread's first allocation does. */
  void *big = TN(malloc)(4 * MIB);
  CHECK(big != NULL);
  void *warm = TN(malloc)(24);
  TN(free)(warm);
  pthread_attr_t attr;
  CHECK(pthread_attr_init(&attr) == 0);
  pthread_t t;
  TN(free)(big);
  CHECK(pthread_create(&t, &attr, bind_main, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  pthread_attr_destroy(&attr);
  size_t bound = count_bound_arenas();
  printf("arenas bound after the thread exited: %zu (this thread's)\n", bound);
  CHECK_MSG(bound == 1, "%zu arenas bound with one thread alive", bound);
  return 0;
}

static void case_bind(void) { run_watched(bind_program, 0, 60, "one arena per thread"); }

/* ---- probation: fork from a thread that allocates from a shared arena ---- */

/* On one CPU, four threads bind arenas and stay; the threads started after them allocate from a
 * shared arena (probation, arenas/bind.c) under its lock. Three of them churn; each forks 20 times,
 * and each child churns 2000 steps (past its probation: it binds an arena) and frees the blocks its
 * thread allocated before the fork. The arenas made show the churners shared one. */
enum { P_HOLDERS = 4, P_CHURNERS = 3, P_SLOTS = 64 };
static pthread_barrier_t p_bound, p_hold;

static void *p_holder(void *arg) {
  (void)arg;
  void *p = TN(malloc)(100);
  CHECK(p != NULL);
  int rc = pthread_barrier_wait(&p_bound); /* bound: the churners may start */
  CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD);
  rc = pthread_barrier_wait(&p_hold);
  CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD);
  TN(free)(p);
  return NULL;
}

static void *p_churner(void *arg) {
  test_rng_t r = {base_seed ^ (uint64_t)(uintptr_t)arg};
  unsigned char *b[P_SLOTS] = {0};
  size_t n[P_SLOTS];
  for (int f = 0; f < 20; f++) {
    for (int i = 0; i < 10; i++) CHECK(churn_step(&r, b, n, P_SLOTS, "probation thread") == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      alarm(CHILD_ALARM_S);
      int bad = 0;
      test_rng_t cr = {r.s ^ 77};
      unsigned char *cb[P_SLOTS] = {0};
      size_t cn[P_SLOTS];
      for (int i = 0; i < 2000 && !bad; i++) bad = churn_step(&cr, cb, cn, P_SLOTS, "child");
      for (int k = 0; k < P_SLOTS; k++) {
        TN(free)(cb[k]);
        TN(free)(b[k]);
      }
      _exit(bad);
    }
    expect_child_ok(pid, "child of a probation thread");
  }
  for (int k = 0; k < P_SLOTS; k++) TN(free)(b[k]);
  return NULL;
}

static int probation_program(long unused) {
  (void)unused;
  test_pin_one_cpu();
  TN(free)(TN(malloc)(1));
  ta_stats_t st;
  stats_get(&st);
  size_t before = st.arenas;
  CHECK(pthread_barrier_init(&p_bound, NULL, P_HOLDERS + 1) == 0);
  CHECK(pthread_barrier_init(&p_hold, NULL, P_HOLDERS + 1) == 0);
  pthread_t h[P_HOLDERS], c[P_CHURNERS];
  for (int i = 0; i < P_HOLDERS; i++) CHECK(pthread_create(&h[i], NULL, p_holder, NULL) == 0);
  /* Every holder has bound its arena before the first churner starts (else, on a busy machine, a
   * churner that ran first found fewer than the bound and bound an arena of its own). */
  int rb = pthread_barrier_wait(&p_bound);
  CHECK(rb == 0 || rb == PTHREAD_BARRIER_SERIAL_THREAD);
  for (uintptr_t i = 0; i < P_CHURNERS; i++) CHECK(pthread_create(&c[i], NULL, p_churner, (void *)i) == 0);
  for (int i = 0; i < P_CHURNERS; i++) CHECK(pthread_join(c[i], NULL) == 0);
  stats_get(&st);
  int rc = pthread_barrier_wait(&p_hold);
  CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD);
  for (int i = 0; i < P_HOLDERS; i++) CHECK(pthread_join(h[i], NULL) == 0);
  printf("arenas made by %d holders and %d churners: %zu\n", P_HOLDERS, P_CHURNERS, st.arenas - before);
  CHECK_MSG(st.arenas - before <= P_HOLDERS + 1, "%zu arenas: the churners did not share", st.arenas - before);
  return 0;
}

static void case_probation(void) { run_watched(probation_program, 0, 120, "fork on probation"); }

/* ---- init_race: fork while another thread's first malloc is initialising tamalloc ---- */

/* The child of a fork taken while another thread was inside tamalloc's one-time initialisation
 * inherits an initialisation in progress whose thread does not exist in it: its first malloc must
 * finish the initialisation, not wait for it forever. Each round is a fresh process (nothing
 * initialised yet) whose new thread's first malloc initialises while the main thread forks children
 * that allocate. Only a build without the override can race (there the first malloc of a process
 * runs before any thread exists); it is the ASan stage that makes this test bite. */
static atomic_int race_done;

static void *race_first(void *arg) {
  (void)arg;
  void *p = TN(malloc)(16);
  CHECK(p != NULL);
  TN(free)(p);
  atomic_store(&race_done, 1);
  return NULL;
}

static int init_race_program(long rounds) {
  for (long i = 0; i < rounds; i++) {
    fflush(stdout);
    pid_t round = fork();
    CHECK(round >= 0);
    if (round == 0) {
      alarm(CHILD_ALARM_S);
      pthread_t t;
      CHECK(pthread_create(&t, NULL, race_first, NULL) == 0);
      do {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
          alarm(CHILD_ALARM_S);
          void *p = TN(malloc)(16);
          _exit(p == NULL);
        }
        expect_child_ok(pid, "fork while another thread's first malloc initialises tamalloc");
      } while (!atomic_load(&race_done));
      CHECK(pthread_join(t, NULL) == 0);
      _exit(0);
    }
    expect_child_ok(round, "a round of init_race");
  }
  return 0;
}

static void case_init_race(void) { run_watched(init_race_program, test_scale(200), 170, "fork during initialisation"); }

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 2 && strcmp(argv[1], "threads") == 0)
    case_threads();
  else if (argc == 2 && strcmp(argv[1], "inherit") == 0)
    case_inherit();
  else if (argc == 2 && strcmp(argv[1], "signal") == 0)
    case_signal();
  else if (argc == 2 && strcmp(argv[1], "signal_alloc") == 0)
    case_signal_alloc();
  else if (argc == 2 && strcmp(argv[1], "signal_stats") == 0)
    case_signal_stats();
  else if (argc == 2 && strcmp(argv[1], "stdio") == 0)
    case_stdio();
  else if (argc == 2 && strcmp(argv[1], "bind") == 0)
    case_bind();
  else if (argc == 2 && strcmp(argv[1], "probation") == 0)
    case_probation();
  else if (argc == 2 && strcmp(argv[1], "init_race") == 0)
    case_init_race();
  else {
    fprintf(stderr, "usage: %s threads|inherit|signal|signal_alloc|signal_stats|stdio|bind|probation|init_race\n", argv[0]);
    return 2;
  }
  return 0;
}
