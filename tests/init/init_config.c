/* The TAMALLOC_* environment: read at the first allocation without allocating, right even when
 * setenv has just moved environ (with the override, setenv's own realloc of environ is tamalloc's
 * first call), and a malformed value reported in one line on stderr and ignored.
 * No constructor here allocates, so the first allocation happens in main.
 * Usage: init_config config_env (with TAMALLOC_MMAP_THRESHOLD=64k) | config_malformed */
#include <sys/wait.h>
#include <unistd.h>

#include "init_names.h"
#include "test.h"

/* Run from meson with TAMALLOC_MMAP_THRESHOLD=64k. */
static void case_config_env(void) {
  const char *v = getenv("TAMALLOC_MMAP_THRESHOLD");
  CHECK_MSG(v != NULL && strcmp(v, "64k") == 0, "run me with TAMALLOC_MMAP_THRESHOLD=64k");
  /* Enough new variables that setenv reallocates environ, before and after tamalloc reads it. */
  for (int i = 0; i < 300; i++) {
    char name[32];
    snprintf(name, sizeof name, "TA_INIT_TEST_VAR_%d", i);
    CHECK(setenv(name, "some value long enough to matter", 1) == 0);
  }
  void *p = ta_malloc(1);
  CHECK(p != NULL);
  ta_free(hide(p));
  long got = ta_getopt(TA_OPT_MMAP_THRESHOLD);
  CHECK_MSG(got == 65536, "ta_getopt(TA_OPT_MMAP_THRESHOLD) = %ld, want 65536 from the environment", got);
  /* And the router obeys it: 70000 bytes now take the mmap path, 60000 do not. */
  ta_stats_t s0, s1, s2;
  ta_stats_get(&s0);
  void *big = ta_malloc(70000);
  ta_stats_get(&s1);
  void *mid = ta_malloc(60000);
  ta_stats_get(&s2);
  CHECK(big != NULL && mid != NULL);
  CHECK_MSG(s1.large_blocks == s0.large_blocks + 1, "malloc(70000) did not take the mmap path");
  CHECK_MSG(s2.large_blocks == s1.large_blocks, "malloc(60000) took the mmap path");
  ta_free(big);
  ta_free(mid);
  printf("TAMALLOC_MMAP_THRESHOLD=64k read as %ld after environ moved\n", got);
}

/* The child side of config_malformed: print the threshold in force. */
static void case_config_child(void) {
  void *p = ta_malloc(10);
  CHECK(p != NULL);
  ta_free(hide(p));
  printf("%ld\n", ta_getopt(TA_OPT_MMAP_THRESHOLD));
}

static size_t drain(int fd, char *buf, size_t cap) {
  size_t n = 0;
  ssize_t r;
  while (n + 1 < cap && ((r = read(fd, buf + n, cap - 1 - n)) > 0 || (r < 0 && errno == EINTR)))
    if (r > 0) n += (size_t)r;
  buf[n] = '\0';
  return n;
}

/* A fresh process (the configuration is read once) with a malformed value, stderr captured. */
static void config_malformed_one(const char *value) {
  int out[2], err[2];
  CHECK(pipe(out) == 0 && pipe(err) == 0);
  fflush(stdout);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    close(out[0]);
    close(err[0]);
    setenv("TAMALLOC_MMAP_THRESHOLD", value, 1);
    execl("/proc/self/exe", "init_config", "config_child", (char *)NULL);
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  static char obuf[4096], ebuf[4096];
  drain(err[0], ebuf, sizeof ebuf);
  drain(out[0], obuf, sizeof obuf);
  close(out[0]);
  close(err[0]);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child with TAMALLOC_MMAP_THRESHOLD=%s: status 0x%x, stderr: %s",
            value, st, ebuf);
  CHECK_MSG(strcmp(obuf, "131072\n") == 0, "TAMALLOC_MMAP_THRESHOLD=%s: threshold %s, want the default 131072",
            value, obuf);
  const char *nl = strchr(ebuf, '\n');
  CHECK_MSG(nl != NULL && nl[1] == '\0', "TAMALLOC_MMAP_THRESHOLD=%s: want exactly one line on stderr, got \"%s\"",
            value, ebuf);
  CHECK_MSG(strncmp(ebuf, "tamalloc", 8) == 0 && strstr(ebuf, "TAMALLOC_MMAP_THRESHOLD") != NULL,
            "TAMALLOC_MMAP_THRESHOLD=%s: the warning must come from tamalloc and name the variable: \"%s\"",
            value, ebuf);
  printf("TAMALLOC_MMAP_THRESHOLD=%-6s -> %s", value, ebuf);
}

static void case_config_malformed(void) {
  static const char *const bad[] = {"12x", "1.5m", "64kk", "0x100", "k", "-5", "99999999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) config_malformed_one(bad[i]);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *c = argc > 1 ? argv[1] : "";
  if (strcmp(c, "config_env") == 0)
    case_config_env();
  else if (strcmp(c, "config_malformed") == 0)
    case_config_malformed();
  else if (strcmp(c, "config_child") == 0)
    case_config_child();
  else {
    fprintf(stderr, "usage: %s config_env | config_malformed\n", argv[0]);
    return 2;
  }
  return 0;
}
