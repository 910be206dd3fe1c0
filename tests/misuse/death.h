/* Death tests: a case runs in a forked child whose stderr goes into a pipe; the parent checks how
 * the child ended (SIGABRT, or a clean exit for the cases that must not abort) and what it printed.
 * The child names the pointer the message must show through a second pipe (death_expect_ptr), so
 * the expected line is built from the child's own value, formatted with %p as tamalloc prints it. */
#ifndef TA_DEATH_H
#define TA_DEATH_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tamalloc.h"
#include "test.h"

/* The names under test: the standard ones when the build overrides them (so what users call is what
 * is checked), else tamalloc's own ta_* names (sanitizer builds keep the sanitizer's malloc). */
#if TA_TEST_STD_NAMES
#include <malloc.h>
void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t alignment, size_t size);
#define TN(f) f
#define TN_STR(f) #f
#else
#define TN(f) ta_##f
#define TN_STR(f) "ta_" #f
#endif

/* Hides where a pointer came from, so the compiler neither warns about freeing a stack address nor
 * reasons about a double free: the call must reach the allocator as written. */
static inline void *hide(void *p) {
  __asm__ volatile("" : "+r"(p));
  return p;
}

static int death_report_fd = -1; /* child: write end of the pipe naming the expected pointer */

/* Child side: the message must name this pointer. */
static void death_expect_ptr(const void *p) {
  char buf[64];
  int n = snprintf(buf, sizeof buf, "%p", p);
  if (death_report_fd >= 0 && n > 0) {
    ssize_t w = write(death_report_fd, buf, (size_t)n);
    (void)w;
  }
}

typedef enum {
  DEATH_LINE,     /* SIGABRT, stderr is exactly one line: want + pointer */
  DEATH_PREFIX,   /* SIGABRT, stderr is exactly one line starting with want, naming the pointer */
  DEATH_CONTAINS, /* SIGABRT, stderr contains want */
  DEATH_NONE,     /* exit status 0 and no tamalloc message on stderr */
  DEATH_SEGV,     /* SIGSEGV: an access to an inaccessible page (stderr not looked at) */
} death_mode_t;

static size_t read_all(int fd, char *buf, size_t cap) {
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, buf + n, cap - 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
    if (n + 1 >= cap) break;
  }
  buf[n] = '\0';
  return n;
}

static const char *status_text(int status, char *buf, size_t cap) {
  if (WIFEXITED(status))
    snprintf(buf, cap, "exit status %d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status))
    snprintf(buf, cap, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
  else
    snprintf(buf, cap, "status 0x%x", status);
  return buf;
}

/* Runs body in a child and checks its end against mode/want. Returns 0 when it matched, else prints
 * what happened and returns 1. */
static int death_run(const char *name, void (*body)(void), death_mode_t mode, const char *want) {
  int err_pipe[2], rep_pipe[2];
  CHECK(pipe(err_pipe) == 0 && pipe(rep_pipe) == 0);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core); /* an expected abort should not leave a core file behind */
    alarm(150); /* a hang ends as SIGALRM, which the parent reports (generous: ASan on a busy machine) */
    close(err_pipe[0]);
    close(rep_pipe[0]);
    dup2(err_pipe[1], STDERR_FILENO);
    close(err_pipe[1]);
    death_report_fd = rep_pipe[1];
    body();
    _exit(0);
  }
  close(err_pipe[1]);
  close(rep_pipe[1]);
  static char err[65536];
  char ptr[64];
  read_all(err_pipe[0], err, sizeof err);
  read_all(rep_pipe[0], ptr, sizeof ptr);
  close(err_pipe[0]);
  close(rep_pipe[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0) CHECK(errno == EINTR);

  char how[96], line[256];
  status_text(status, how, sizeof how);
  bool ok;
  if (mode == DEATH_NONE) {
    ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && strncmp(err, "tamalloc:", 9) != 0 &&
         strstr(err, "\ntamalloc:") == NULL;
    snprintf(line, sizeof line, "(exit 0, no tamalloc message on stderr)");
  } else if (mode == DEATH_SEGV) {
    ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
    snprintf(line, sizeof line, "(SIGSEGV)");
  } else {
    ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    switch (mode) {
      case DEATH_LINE:
        snprintf(line, sizeof line, "%s%s\n", want, ptr);
        ok = ok && ptr[0] != '\0' && strcmp(err, line) == 0;
        break;
      case DEATH_PREFIX: {
        snprintf(line, sizeof line, "%s... %s\n", want, ptr);
        const char *nl = strchr(err, '\n');
        size_t len = strlen(err);
        ok = ok && ptr[0] != '\0' && strncmp(err, want, strlen(want)) == 0 && nl == err + len - 1 &&
             len > strlen(ptr) + 1 && strncmp(nl - strlen(ptr), ptr, strlen(ptr)) == 0;
        break;
      }
      default:
        snprintf(line, sizeof line, "... %s ...", want);
        ok = ok && strstr(err, want) != NULL;
        break;
    }
  }
  if (ok) {
    printf("ok   %s: %s\n", name, how);
    return 0;
  }
  printf("FAIL %s\n  child ended with: %s\n  wanted:   %s%s", name, how,
         mode == DEATH_NONE || mode == DEATH_SEGV ? "" : "SIGABRT and stderr ", line);
  if (line[strlen(line) - 1] != '\n') printf("\n");
  printf("  stderr was: \"%s\"\n", err);
  return 1;
}

#endif
