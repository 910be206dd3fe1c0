/* bench-launch: runs one benchmark process and reports its resource use, for compare.py.
 *   bench-launch REPORT_FILE PROGRAM [ARGS...]
 * forks, execs PROGRAM, waits for it with wait4 and writes one line to REPORT_FILE:
 *   status=<exit code, or -signal> wall_s=<s> utime_s=<s> stime_s=<s> maxrss_kib=<KiB>
 * Why a launcher: Linux carries a process's peak-RSS mark across exec, so a benchmark started
 * directly by the Python runner would report at least the interpreter's own ~15 MiB as its ru_maxrss.
 * Forked from this small program, the floor is about a megabyte. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double seconds(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s REPORT_FILE PROGRAM [ARGS...]\n", argv[0]);
    return 64;
  }
  FILE *report = fopen(argv[1], "w");
  if (!report) {
    fprintf(stderr, "bench-launch: %s: %s\n", argv[1], strerror(errno));
    return 70;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "bench-launch: fork: %s\n", strerror(errno));
    return 71;
  }
  if (pid == 0) {
    fclose(report);
    execvp(argv[2], argv + 2);
    fprintf(stderr, "bench-launch: %s: %s\n", argv[2], strerror(errno));
    _exit(127);
  }
  int wstatus;
  struct rusage ru;
  while (wait4(pid, &wstatus, 0, &ru) < 0) {
    if (errno != EINTR) {
      fprintf(stderr, "bench-launch: wait4: %s\n", strerror(errno));
      return 71;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  int status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : WIFSIGNALED(wstatus) ? -WTERMSIG(wstatus) : -1;
  double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  fprintf(report, "status=%d wall_s=%.6f utime_s=%.6f stime_s=%.6f maxrss_kib=%ld\n", status, wall,
          seconds(ru.ru_utime), seconds(ru.ru_stime), ru.ru_maxrss);
  return fclose(report) == 0 ? 0 : 70;
}
