/* No allocator entry point acts on a thread's cancellation. A thread whose cancel request is pending
 * (deferred type, enabled state) calls one reporting entry point at a time: it must come back from
 * it with the whole report written, and only the next real cancellation point (pthread_testcancel)
 * may end it. An entry point that wrote through a cancellable write(2) or a FILE would end the thread
 * inside itself, mid-report and possibly holding the allocator's locks. The same for a fatal error:
 * its message is written whole and the process aborts, rather than the thread quietly ending.
 * The ta_* forms run in every build; the standard names only where they are tamalloc's. */
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blocks.h"

/* The calls under test; each gets a fresh thread with a pending cancel request. */
enum {
  E_TA_STATS_PRINT,
  E_TA_HEAP_MAP,
  E_TA_STATS_GET,
  E_TA_STATS_JSON,
  E_TA_TRIM,
#if TA_TEST_OVERRIDE
  E_MALLOC_STATS,
  E_MALLOC_INFO,
  E_MALLINFO2,
  E_MALLOC_TRIM,
#endif
  E_COUNT
};
/* Where each one's report goes, so the test can see it was written whole. */
enum { TO_NOTHING, TO_FILE, TO_STDERR };
static const struct {
  const char *name;
  int sink;
} entries[E_COUNT] = {
    {"ta_stats_print", TO_FILE}, {"ta_heap_map", TO_FILE}, {"ta_stats_get", TO_NOTHING},
    {"ta_stats_json", TO_NOTHING}, {"ta_trim", TO_NOTHING},
#if TA_TEST_OVERRIDE
    {"malloc_stats", TO_STDERR}, {"malloc_info", TO_FILE}, {"mallinfo2", TO_NOTHING},
    {"malloc_trim", TO_NOTHING},
#endif
};

/* The gate the thread waits at when it is cancelled: a mutex, because pthread_mutex_lock is not a
 * cancellation point, so the request stays pending until the thread reaches one. */
static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
static atomic_int returned; /* 1 once the entry point under test came back */
static FILE *report_file;    /* where the FILE-based reports go */
static int report_fd;        /* stderr is moved here while malloc_stats runs */

static void call_entry(int e) {
  switch (e) {
    case E_TA_STATS_PRINT: ta_stats_print(report_file); break;
    case E_TA_HEAP_MAP: ta_heap_map(report_file); break;
    case E_TA_STATS_GET: {
      ta_stats_t st;
      ta_stats_get(&st);
      break;
    }
    case E_TA_STATS_JSON: {
      char buf[256];
      (void)ta_stats_json(buf, sizeof buf);
      break;
    }
    case E_TA_TRIM: (void)ta_trim(0); break;
#if TA_TEST_OVERRIDE
    case E_MALLOC_STATS: malloc_stats(); break;
    case E_MALLOC_INFO: (void)malloc_info(0, report_file); break;
    case E_MALLINFO2: (void)mallinfo2(); break;
    case E_MALLOC_TRIM: (void)malloc_trim(0); break;
#endif
    default: break;
  }
}

static void *cancelled_thread(void *arg) {
  int e = (int)(intptr_t)arg;
  pthread_mutex_lock(&gate); /* blocks until main has sent the cancel request */
  pthread_mutex_unlock(&gate);
  call_entry(e);
  atomic_store(&returned, 1);
  pthread_testcancel();
  return NULL; /* not reached: the request was pending */
}

/* Starts fn in a thread, cancels it while it waits at the gate, and joins it. */
static void *run_with_pending_cancel(void *(*fn)(void *), void *arg) {
  atomic_store(&returned, 0);
  CHECK(pthread_mutex_lock(&gate) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, fn, arg) == 0);
  CHECK(pthread_cancel(t) == 0);
  CHECK(pthread_mutex_unlock(&gate) == 0);
  void *result = NULL;
  CHECK(pthread_join(t, &result) == 0);
  return result;
}

static void *bad_free_thread(void *arg) {
  (void)arg;
  int not_a_block;
  pthread_mutex_lock(&gate);
  pthread_mutex_unlock(&gate);
  ta_free(&not_a_block); /* fatal: writes its message, then aborts */
  atomic_store(&returned, 1);
  pthread_testcancel();
  return NULL;
}

/* Bytes in the file behind fd (the report files are only ever appended to). */
static long file_size(int fd) {
  off_t end = lseek(fd, 0, SEEK_END);
  CHECK(end >= 0);
  return (long)end;
}

static void run_cancelled(int e) {
  long file_before = (fflush(report_file), file_size(fileno(report_file)));
  long fd_before = file_size(report_fd);
  /* malloc_stats writes to stderr: point fd 2 at a file for the call, so its report can be measured. */
  int saved_stderr = dup(2);
  CHECK(saved_stderr >= 0 && dup2(report_fd, 2) == 2);
  void *result = run_with_pending_cancel(cancelled_thread, (void *)(intptr_t)e);
  CHECK(dup2(saved_stderr, 2) == 2 && close(saved_stderr) == 0);

  CHECK_MSG(atomic_load(&returned) == 1, "%s acted on the pending cancel request: the thread ended inside it",
            entries[e].name);
  CHECK_MSG(result == PTHREAD_CANCELED, "after %s the thread was not cancelled at pthread_testcancel",
            entries[e].name);
  fflush(report_file);
  if (entries[e].sink == TO_FILE)
    CHECK_MSG(file_size(fileno(report_file)) > file_before, "%s wrote nothing to its FILE", entries[e].name);
  if (entries[e].sink == TO_STDERR)
    CHECK_MSG(file_size(report_fd) > fd_before, "%s wrote nothing to stderr", entries[e].name);
}

/* In a child, whose stderr is a pipe: a thread with a pending cancel request frees a stack address. */
static void test_fatal_under_cancel(void) {
  int pipefd[2];
  CHECK(pipe(pipefd) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(pipefd[0]);
    if (dup2(pipefd[1], 2) != 2) _exit(2);
    run_with_pending_cancel(bad_free_thread, NULL);
    _exit(3); /* the thread ended without the abort */
  }
  close(pipefd[1]);
  char msg[512];
  size_t got = 0;
  for (ssize_t n; got < sizeof msg - 1 && (n = read(pipefd[0], msg + got, sizeof msg - 1 - got)) > 0;)
    got += (size_t)n;
  msg[got] = '\0';
  close(pipefd[0]);
  int status;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
            "a fatal error in a thread with a pending cancel request: status %#x, not SIGABRT (stderr: %s)",
            status, msg);
  CHECK_MSG(strstr(msg, "tamalloc: free(): invalid pointer") != NULL, "the fatal message was %s", msg);
}

int main(void) {
  /* Something to report on: blocks in the arena and a large one, held across the calls. */
  void *small = ta_malloc(100), *large = ta_malloc(TB_MIB);
  CHECK(small != NULL && large != NULL);
  report_file = tmpfile();
  CHECK(report_file != NULL);
  char name[] = "/tmp/tamalloc-api-cancel-XXXXXX";
  report_fd = mkstemp(name);
  CHECK(report_fd >= 0);
  CHECK(unlink(name) == 0);

  for (int round = 0; round < 3; round++)
    for (int e = 0; e < E_COUNT; e++) run_cancelled(e);
#if !defined(__SANITIZE_THREAD__)
  /* Not under ThreadSanitizer: its runtime's own thread makes the process multithreaded, and the
   * forked child that aborts never reports back (it hangs in the runtime's exit path). */
  test_fatal_under_cancel();
#endif

  /* Nothing was left locked: the allocator and the reports still work from this thread. */
  ta_stats_print(report_file);
  void *p = ta_malloc(200);
  CHECK(p != NULL && ta_owns(p) == 1);
  ta_free(p);
  ta_free(small);
  ta_free(large);
  fclose(report_file);
  close(report_fd);
  return 0;
}
