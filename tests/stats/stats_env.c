/* The TAMALLOC_* environment, through a child program (stats_env_child, argv[1]) run with fork+execve
 * and a controlled environment (the parent's minus every TAMALLOC_* variable, plus the case's):
 *  - each valid form of each variable (sizes with k/m/g suffixes in either case and an optional b,
 *    negative decay, mmap threshold clamped to [4096, 1 MiB + 1]) gives that value in ta_getopt, the
 *    other options keep their defaults, and nothing is reported malformed;
 *  - each malformed form gives exactly one line `tamalloc: warning: NAME=<value> is malformed; keeping
 *    the default <default>` and the default;
 *  - the configuration is read once: changing the environment later changes nothing;
 *  - TAMALLOC_VERBOSE=1 prints one `tamalloc: config: NAME=value` line per knob, with effective values;
 *  - TAMALLOC_STATS=json | 1 | text | map reports at exit to stderr (JSON parsed and checked);
 *  - and, in this process, ta_mallopt's range rules for the background thread and the mmap line. */
#include "stats.h"

#define N_OPTS 8

extern char **environ;

static const char *helper;
static char out_buf[1 << 16];
static char err_buf[1 << 20];

static const char *const var_names[N_OPTS + 1] = {
    NULL, "TAMALLOC_MMAP_THRESHOLD", "TAMALLOC_TRIM_THRESHOLD", "TAMALLOC_TOP_PAD",
    "TAMALLOC_DECAY_MS", "TAMALLOC_ARENA_MAX", "TAMALLOC_BACKGROUND_THREAD", "TAMALLOC_RETAIN_MIN",
    "TAMALLOC_RETAIN_PERCENT"};
static const long defaults[N_OPTS + 1] = {0, 131072, 131072, 131072, 1000, 0, 1, 64 << 20, 12};

/* Runs the helper in `mode` with the parent's environment minus TAMALLOC_*, plus vars (NULL-ended
 * "NAME=value" strings). Fills out_buf and err_buf; fails unless it exits 0. */
static void run_child(const char *mode, const char *const *vars, const char *what) {
  static char *env[1024];
  size_t n = 0;
  for (char **e = environ; *e && n < 1000; e++)
    if (strncmp(*e, "TAMALLOC_", 9) != 0) env[n++] = *e;
  for (; *vars; vars++) env[n++] = (char *)*vars;
  env[n] = NULL;
  int out = memfd_create("ta-env-out", MFD_CLOEXEC), err = memfd_create("ta-env-err", MFD_CLOEXEC);
  CHECK(out >= 0 && err >= 0);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    if (dup2(out, 1) != 1 || dup2(err, 2) != 2) _exit(126);
    char *argv[] = {(char *)helper, (char *)mode, NULL};
    execve(helper, argv, env);
    _exit(127);
  }
  int status;
  CHECK(waitpid(pid, &status, 0) == pid);
  ss_read_fd(out, out_buf, sizeof out_buf);
  ss_read_fd(err, err_buf, sizeof err_buf);
  close(out);
  close(err);
  CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: the child failed (status 0x%x); stderr:\n%s", what,
            status, err_buf);
}

/* The value the helper printed for option opt. */
static long child_opt(int opt, const char *what) {
  char key[32];
  snprintf(key, sizeof key, "opt %d ", opt);
  const char *line = strstr(out_buf, key);
  CHECK_MSG(line != NULL, "%s: the child printed no value for option %d:\n%s", what, opt, out_buf);
  return strtol(line + strlen(key), NULL, 10);
}

static size_t count_lines_with(const char *text, const char *needle) {
  size_t n = 0;
  for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
  return n;
}

/* Whether err_buf holds `line` as a whole line. */
static bool has_line(const char *line) {
  size_t n = strlen(line);
  for (const char *p = err_buf; (p = strstr(p, line)) != NULL; p++)
    if ((p == err_buf || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0')) return true;
  return false;
}

/* ---- One variable at a time ---- */

typedef struct env_case_s {
  int opt;           /* which TAMALLOC_* variable (TA_OPT_* number) */
  const char *value; /* its value */
  long expect;       /* ta_getopt afterwards; ignored for a malformed value (the default then) */
  int malformed;     /* 1: one warning line and the default */
} env_case_t;

#define GIB 1073741824L
/* The contract: mmap thresholds are clamped to [4096, 1 MiB + 1] (one past the largest size class). */
#define THR_MIN 4096L
#define THR_MAX (32L << 20)
static const env_case_t cases[] = {
    /* mmap threshold: suffixes, clamping to [4096, 32 MiB] */
    {TA_OPT_MMAP_THRESHOLD, "65536", 65536, 0},
    {TA_OPT_MMAP_THRESHOLD, "64k", 65536, 0},
    {TA_OPT_MMAP_THRESHOLD, "64K", 65536, 0},
    {TA_OPT_MMAP_THRESHOLD, "64kb", 65536, 0},
    {TA_OPT_MMAP_THRESHOLD, "64KB", 65536, 0},
    {TA_OPT_MMAP_THRESHOLD, "64kB", 65536, 0},
    {TA_OPT_MMAP_THRESHOLD, "1m", 1048576, 0},
    {TA_OPT_MMAP_THRESHOLD, "1M", 1048576, 0},
    {TA_OPT_MMAP_THRESHOLD, "1Mb", 1048576, 0},
    {TA_OPT_MMAP_THRESHOLD, "4096", THR_MIN, 0},
    {TA_OPT_MMAP_THRESHOLD, "4095", THR_MIN, 0},
    {TA_OPT_MMAP_THRESHOLD, "1", THR_MIN, 0},
    {TA_OPT_MMAP_THRESHOLD, "0", THR_MIN, 0},
    {TA_OPT_MMAP_THRESHOLD, "1048577", 1048577, 0},
    {TA_OPT_MMAP_THRESHOLD, "2m", 2097152, 0},
    {TA_OPT_MMAP_THRESHOLD, "32m", THR_MAX, 0},
    {TA_OPT_MMAP_THRESHOLD, "33554433", THR_MAX, 0},
    {TA_OPT_MMAP_THRESHOLD, "1g", THR_MAX, 0},
    {TA_OPT_MMAP_THRESHOLD, "1G", THR_MAX, 0},
    {TA_OPT_MMAP_THRESHOLD, "", 0, 1},
    {TA_OPT_MMAP_THRESHOLD, "abc", 0, 1},
    {TA_OPT_MMAP_THRESHOLD, "12x", 0, 1},
    {TA_OPT_MMAP_THRESHOLD, "k", 0, 1},
    {TA_OPT_MMAP_THRESHOLD, "64kk", 0, 1},
    {TA_OPT_MMAP_THRESHOLD, "64bk", 0, 1},
    {TA_OPT_MMAP_THRESHOLD, "64kbb", 0, 1},
    {TA_OPT_MMAP_THRESHOLD, "64k5", 0, 1},
    {TA_OPT_MMAP_THRESHOLD, "64 k", 0, 1},
    {TA_OPT_MMAP_THRESHOLD, "1.5m", 0, 1},
    {TA_OPT_MMAP_THRESHOLD, "1t", 0, 1},
    {TA_OPT_MMAP_THRESHOLD, "0x10000", 0, 1},
    {TA_OPT_MMAP_THRESHOLD, "-1", 0, 1},
    {TA_OPT_MMAP_THRESHOLD, "99999999999999999999", 0, 1},
    {TA_OPT_MMAP_THRESHOLD, "99999999999g", 0, 1},
    /* trim threshold */
    {TA_OPT_TRIM_THRESHOLD, "0", 0, 0},
    {TA_OPT_TRIM_THRESHOLD, "100", 100, 0},
    {TA_OPT_TRIM_THRESHOLD, "256k", 262144, 0},
    {TA_OPT_TRIM_THRESHOLD, "2m", 2097152, 0},
    {TA_OPT_TRIM_THRESHOLD, "1g", GIB, 0},
    {TA_OPT_TRIM_THRESHOLD, "3Gb", 3 * GIB, 0},
    {TA_OPT_TRIM_THRESHOLD, "", 0, 1},
    {TA_OPT_TRIM_THRESHOLD, "lots", 0, 1},
    {TA_OPT_TRIM_THRESHOLD, "-5", 0, 1},
    {TA_OPT_TRIM_THRESHOLD, "5q", 0, 1},
    {TA_OPT_TRIM_THRESHOLD, "mb", 0, 1},
    /* top pad */
    {TA_OPT_TOP_PAD, "0", 0, 0},
    {TA_OPT_TOP_PAD, "12345", 12345, 0},
    {TA_OPT_TOP_PAD, "4k", 4096, 0},
    {TA_OPT_TOP_PAD, "1M", 1048576, 0},
    {TA_OPT_TOP_PAD, "16KB", 16384, 0},
    {TA_OPT_TOP_PAD, "", 0, 1},
    {TA_OPT_TOP_PAD, "pad", 0, 1},
    {TA_OPT_TOP_PAD, "-4k", 0, 1},
    {TA_OPT_TOP_PAD, "4kx", 0, 1},
    /* decay: milliseconds, negative allowed */
    {TA_OPT_DECAY_MS, "0", 0, 0},
    {TA_OPT_DECAY_MS, "250", 250, 0},
    {TA_OPT_DECAY_MS, "60000", 60000, 0},
    {TA_OPT_DECAY_MS, "-1", -1, 0},
    {TA_OPT_DECAY_MS, "-1000", -1000, 0},
    {TA_OPT_DECAY_MS, "", 0, 1},
    {TA_OPT_DECAY_MS, "soon", 0, 1},
    {TA_OPT_DECAY_MS, "-", 0, 1},
    {TA_OPT_DECAY_MS, "--1", 0, 1},
    {TA_OPT_DECAY_MS, "1-", 0, 1},
    {TA_OPT_DECAY_MS, "1.5", 0, 1},
    {TA_OPT_DECAY_MS, "99999999999999999999", 0, 1},
    /* arena max */
    {TA_OPT_ARENA_MAX, "0", 0, 0},
    {TA_OPT_ARENA_MAX, "1", 1, 0},
    {TA_OPT_ARENA_MAX, "2", 2, 0},
    {TA_OPT_ARENA_MAX, "64", 64, 0},
    {TA_OPT_ARENA_MAX, "", 0, 1},
    {TA_OPT_ARENA_MAX, "two", 0, 1},
    {TA_OPT_ARENA_MAX, "-2", 0, 1},
    {TA_OPT_ARENA_MAX, "3x", 0, 1},
    /* background thread: 0 or 1 */
    {TA_OPT_BACKGROUND_THREAD, "0", 0, 0},
    {TA_OPT_BACKGROUND_THREAD, "1", 1, 0},
    {TA_OPT_BACKGROUND_THREAD, "", 0, 1},
    {TA_OPT_BACKGROUND_THREAD, "yes", 0, 1},
    {TA_OPT_BACKGROUND_THREAD, "2", 0, 1},
    {TA_OPT_BACKGROUND_THREAD, "-1", 0, 1},
    /* retained cap: a size, and a percentage 0..100 */
    {TA_OPT_RETAIN_MIN, "0", 0, 0},
    {TA_OPT_RETAIN_MIN, "16m", 16 << 20, 0},
    {TA_OPT_RETAIN_MIN, "1g", 1 << 30, 0},
    {TA_OPT_RETAIN_MIN, "", 0, 1},
    {TA_OPT_RETAIN_MIN, "-1", 0, 1},
    {TA_OPT_RETAIN_MIN, "lots", 0, 1},
    {TA_OPT_RETAIN_PERCENT, "0", 0, 0},
    {TA_OPT_RETAIN_PERCENT, "25", 25, 0},
    {TA_OPT_RETAIN_PERCENT, "100", 100, 0},
    {TA_OPT_RETAIN_PERCENT, "101", 0, 1},
    {TA_OPT_RETAIN_PERCENT, "-5", 0, 1},
    {TA_OPT_RETAIN_PERCENT, "12%", 0, 1},
};

static int failures;

/* Like CHECK_MSG, but counts and goes on, so one run lists every case that fails. */
#define EXPECT(cond, ...)                                                                            \
  do {                                                                                               \
    if (!(cond)) {                                                                                   \
      fprintf(stderr, "%s:%d: EXPECT failed: ", __FILE__, __LINE__);                                 \
      fprintf(stderr, __VA_ARGS__);                                                                  \
      fputc('\n', stderr);                                                                           \
      failures++;                                                                                    \
    }                                                                                                \
  } while (0)

static void test_case(const env_case_t *c) {
  static char var[256], what[300], warning[400];
  snprintf(var, sizeof var, "%s=%s", var_names[c->opt], c->value);
  snprintf(what, sizeof what, "%s (%s)", var, c->malformed ? "malformed" : "valid");
  const char *vars[] = {var, NULL};
  run_child("opts", vars, what);
  for (int opt = 1; opt <= N_OPTS; opt++) {
    long want = opt == c->opt && !c->malformed ? c->expect : defaults[opt];
    long got = child_opt(opt, what);
    EXPECT(got == want, "%s: ta_getopt(%s) = %ld, want %ld", what, var_names[opt], got, want);
  }
  size_t warnings = count_lines_with(err_buf, "tamalloc: warning:");
  if (c->malformed) {
    snprintf(warning, sizeof warning, "tamalloc: warning: %s is malformed; keeping the default %ld", var,
             defaults[c->opt]);
    EXPECT(warnings == 1 && has_line(warning), "%s: want exactly the line\n  %s\non stderr, got %zu warnings:\n%s",
           what, warning, warnings, err_buf);
  } else {
    EXPECT(warnings == 0 && !ss_contains(err_buf, "malformed"), "%s: a valid value drew a warning:\n%s", what,
           err_buf);
  }
}

/* Several at once: each is applied, each malformed one warned about once. */
static void test_combined(void) {
  const char *good[] = {"TAMALLOC_MMAP_THRESHOLD=64k", "TAMALLOC_DECAY_MS=-1", "TAMALLOC_ARENA_MAX=3",
                        "TAMALLOC_TOP_PAD=0", "TAMALLOC_TRIM_THRESHOLD=1m", "TAMALLOC_BACKGROUND_THREAD=0",
                        "TAMALLOC_RETAIN_MIN=8m", "TAMALLOC_RETAIN_PERCENT=50", NULL};
  run_child("opts", good, "eight valid variables");
  const long want[N_OPTS + 1] = {0, 65536, 1048576, 0, -1, 3, 0, 8 << 20, 50};
  for (int opt = 1; opt <= N_OPTS; opt++)
    EXPECT(child_opt(opt, "eight valid variables") == want[opt], "eight valid variables: ta_getopt(%s) = %ld, want %ld",
           var_names[opt], child_opt(opt, "eight valid variables"), want[opt]);
  EXPECT(count_lines_with(err_buf, "tamalloc:") == 0, "eight valid variables: stderr has\n%s", err_buf);

  const char *bad[] = {"TAMALLOC_MMAP_THRESHOLD=abc", "TAMALLOC_DECAY_MS=x", "TAMALLOC_ARENA_MAX=2", NULL};
  run_child("opts", bad, "two malformed, one valid");
  EXPECT(count_lines_with(err_buf, "tamalloc: warning:") == 2, "two malformed variables, stderr:\n%s", err_buf);
  EXPECT(has_line("tamalloc: warning: TAMALLOC_MMAP_THRESHOLD=abc is malformed; keeping the default 131072"),
         "two malformed variables: no warning for the mmap threshold:\n%s", err_buf);
  EXPECT(has_line("tamalloc: warning: TAMALLOC_DECAY_MS=x is malformed; keeping the default 1000"),
         "two malformed variables: no warning for the decay:\n%s", err_buf);
  EXPECT(child_opt(TA_OPT_MMAP_THRESHOLD, "bad") == 131072 && child_opt(TA_OPT_DECAY_MS, "bad") == 1000 &&
             child_opt(TA_OPT_ARENA_MAX, "bad") == 2,
         "two malformed, one valid: options %ld %ld %ld", child_opt(TA_OPT_MMAP_THRESHOLD, "bad"),
         child_opt(TA_OPT_DECAY_MS, "bad"), child_opt(TA_OPT_ARENA_MAX, "bad"));

  /* Nothing set: the defaults, and silence. */
  const char *none[] = {NULL};
  run_child("opts", none, "no variables");
  for (int opt = 1; opt <= N_OPTS; opt++)
    EXPECT(child_opt(opt, "defaults") == defaults[opt], "default of %s is %ld, want %ld", var_names[opt],
           child_opt(opt, "defaults"), defaults[opt]);
  EXPECT(err_buf[0] == '\0', "no variables set, yet stderr has:\n%s", err_buf);
}

/* Read once: the helper changes every variable after its first allocation. */
static void test_read_once(void) {
  const char *vars[] = {"TAMALLOC_MMAP_THRESHOLD=262144", "TAMALLOC_DECAY_MS=5", NULL};
  run_child("setenv", vars, "setenv after the first allocation");
  EXPECT(child_opt(TA_OPT_MMAP_THRESHOLD, "setenv") == 262144 && child_opt(TA_OPT_DECAY_MS, "setenv") == 5 &&
             child_opt(TA_OPT_BACKGROUND_THREAD, "setenv") == 1 && child_opt(TA_OPT_TOP_PAD, "setenv") == 131072,
         "changing the environment after the first allocation changed the configuration:\n%s", out_buf);
}

/* TAMALLOC_VERBOSE=1: a config line per knob, with the effective value. */
static void check_verbose(const char *what, const long want[N_OPTS + 1]) {
  static const char *const knobs[N_OPTS + 1] = {NULL,       "mmap_threshold", "trim_threshold",   "top_pad",
                                                "decay_ms", "arena_max",      "background_thread", "retain_min",
                                                "retain_percent"};
  const char *prefix = "tamalloc: config: ";
  size_t lines = 0;
  bool seen[N_OPTS + 1] = {false};
  for (const char *p = err_buf; *p;) {
    size_t len = strcspn(p, "\n");
    if (strncmp(p, prefix, strlen(prefix)) == 0) {
      lines++;
      const char *name = p + strlen(prefix);
      const char *eq = memchr(name, '=', len - strlen(prefix));
      EXPECT(eq != NULL && eq > name, "%s: config line without NAME=value: %.*s", what, (int)len, p);
      if (eq != NULL) {
        char lower[64] = {0};
        size_t nl = (size_t)(eq - name) < sizeof lower - 1 ? (size_t)(eq - name) : sizeof lower - 1;
        for (size_t i = 0; i < nl; i++) lower[i] = (char)tolower((unsigned char)name[i]);
        for (int k = 1; k <= N_OPTS; k++) {
          size_t kl = strlen(knobs[k]);
          if (nl < kl || strcmp(lower + nl - kl, knobs[k]) != 0) continue;
          char *end;
          long v = strtol(eq + 1, &end, 10);
          EXPECT(end > eq + 1 && v == want[k], "%s: %.*s, want %s=%ld", what, (int)len, p, knobs[k], want[k]);
          EXPECT(!seen[k], "%s: %s printed twice", what, knobs[k]);
          seen[k] = true;
        }
      }
    }
    p += len + (p[len] == '\n');
  }
  for (int k = 1; k <= N_OPTS; k++)
    EXPECT(seen[k], "%s: no \"%sNAME=value\" line for %s; stderr:\n%s", what, prefix, knobs[k], err_buf);
  EXPECT(lines >= N_OPTS, "%s: %zu config lines", what, lines);
}

static void test_verbose(void) {
  const char *v1[] = {"TAMALLOC_VERBOSE=1", NULL};
  run_child("opts", v1, "TAMALLOC_VERBOSE=1");
  check_verbose("TAMALLOC_VERBOSE=1", defaults);

  const char *v2[] = {"TAMALLOC_VERBOSE=1", "TAMALLOC_MMAP_THRESHOLD=1", "TAMALLOC_DECAY_MS=-1",
                      "TAMALLOC_ARENA_MAX=4", "TAMALLOC_BACKGROUND_THREAD=0", NULL};
  run_child("opts", v2, "TAMALLOC_VERBOSE=1 with settings");
  const long want[N_OPTS + 1] = {0, THR_MIN, 131072, 131072, -1, 4, 0, 64 << 20, 12};
  check_verbose("TAMALLOC_VERBOSE=1 with settings", want);

  const char *v0[] = {"TAMALLOC_VERBOSE=0", NULL};
  run_child("opts", v0, "TAMALLOC_VERBOSE=0");
  EXPECT(!ss_contains(err_buf, "tamalloc: config:"), "TAMALLOC_VERBOSE=0 printed the configuration:\n%s", err_buf);
}

/* TAMALLOC_STATS at exit. */
static void test_stats_at_exit(void) {
  const char *none[] = {NULL};
  run_child("exit", none, "exit, TAMALLOC_STATS unset");
  EXPECT(err_buf[0] == '\0', "TAMALLOC_STATS unset, yet at exit stderr has:\n%.2000s", err_buf);

  const char *json_quiet[] = {"TAMALLOC_STATS=json", "TAMALLOC_DECAY_MS=-1", "TAMALLOC_BACKGROUND_THREAD=0", NULL};
  const char *json_default[] = {"TAMALLOC_STATS=json", NULL};
  for (int round = 0; round < 2; round++) {
    const char *what = round == 0 ? "TAMALLOC_STATS=json (quiet)" : "TAMALLOC_STATS=json";
    run_child("exit", round == 0 ? json_quiet : json_default, what);
    EXPECT(strcmp(out_buf, "ok\n") == 0, "%s: the child's stdout is \"%s\"", what, out_buf);
    size_t len = strlen(err_buf);
    const char *start = err_buf + strspn(err_buf, " \t\r\n");
    CHECK_MSG(*start == '{', "%s: stderr does not hold just a JSON object:\n%.2000s", what, err_buf);
    int root = js_parse_or_die(start, len - (size_t)(start - err_buf), what);
    ss_check_stats_json(root, round == 0);
    EXPECT(js_u64(root, "totals.live_blocks") >= 1000, "%s: totals.live_blocks %llu, the child left 1000", what,
           js_u64(root, "totals.live_blocks"));
    EXPECT(js_u64(root, "totals.large_blocks") >= 1 && js_u64(root, "totals.large_bytes") >= TB_MIB,
           "%s: the child's 1 MiB block is not in totals.large_*", what);
    if (round == 0) {
      EXPECT(ss_config_value(root, 3) == -1, "%s: config.decay_ms %lld, the child ran with -1", what,
             ss_config_value(root, 3));
      EXPECT(ss_config_value(root, 5) == 0, "%s: config.background_thread %lld, the child ran with 0", what,
             ss_config_value(root, 5));
    }
    ss_python_check(SS_PY_JSON, start, len - (size_t)(start - err_buf), what);
  }

  static const char *const text_values[] = {"TAMALLOC_STATS=1", "TAMALLOC_STATS=text"};
  for (int k = 0; k < 2; k++) {
    const char *vars[] = {text_values[k], NULL};
    run_child("exit", vars, text_values[k]);
    EXPECT(strlen(err_buf) > 20 && ss_contains(err_buf, "tamalloc"),
           "%s: the report at exit is missing or does not mention \"tamalloc\":\n%.2000s", text_values[k], err_buf);
    EXPECT(err_buf[strspn(err_buf, " \t\r\n")] != '{', "%s: the report at exit is JSON, not text", text_values[k]);
  }

  const char *map[] = {"TAMALLOC_STATS=map", NULL};
  run_child("exit", map, "TAMALLOC_STATS=map");
  EXPECT(ss_contains(err_buf, "segment 0x") && ss_contains(err_buf, "large 0x"),
         "TAMALLOC_STATS=map: no heap map at exit (segment/large lines):\n%.2000s", err_buf);
  EXPECT(ss_contains(err_buf, " units in_use ") && ss_contains(err_buf, " mapping 0x"),
         "TAMALLOC_STATS=map: the lines do not have the heap map's fields:\n%.2000s", err_buf);
}

/* The same knobs through ta_mallopt in this process: the background thread takes 0 or 1 only, the mmap
 * threshold is clamped to [4096, 1 MiB + 1] as from the environment. */
static void test_mallopt_api(void) {
  ta_free(ta_malloc(1));
  long bg = ta_getopt(TA_OPT_BACKGROUND_THREAD), thr = ta_getopt(TA_OPT_MMAP_THRESHOLD);
  EXPECT(ta_mallopt(TA_OPT_BACKGROUND_THREAD, 0) == 1 && ta_getopt(TA_OPT_BACKGROUND_THREAD) == 0,
         "ta_mallopt(BACKGROUND_THREAD, 0) not taken");
  EXPECT(ta_mallopt(TA_OPT_BACKGROUND_THREAD, 1) == 1 && ta_getopt(TA_OPT_BACKGROUND_THREAD) == 1,
         "ta_mallopt(BACKGROUND_THREAD, 1) not taken");
  EXPECT(ta_mallopt(TA_OPT_BACKGROUND_THREAD, 2) == 0 && ta_mallopt(TA_OPT_BACKGROUND_THREAD, -1) == 0,
         "ta_mallopt(BACKGROUND_THREAD, 2 or -1) taken");
  EXPECT(ta_getopt(TA_OPT_BACKGROUND_THREAD) == 1, "a refused value changed BACKGROUND_THREAD");
  EXPECT(ta_mallopt(TA_OPT_MMAP_THRESHOLD, 1) == 1 && ta_getopt(TA_OPT_MMAP_THRESHOLD) == THR_MIN,
         "ta_mallopt(MMAP_THRESHOLD, 1): ta_getopt %ld, want %ld", ta_getopt(TA_OPT_MMAP_THRESHOLD), THR_MIN);
  EXPECT(ta_mallopt(TA_OPT_MMAP_THRESHOLD, 64L << 20) == 1 && ta_getopt(TA_OPT_MMAP_THRESHOLD) == THR_MAX,
         "ta_mallopt(MMAP_THRESHOLD, 64 MiB): ta_getopt %ld, want %ld", ta_getopt(TA_OPT_MMAP_THRESHOLD), THR_MAX);
  EXPECT(ta_mallopt(TA_OPT_MMAP_THRESHOLD, thr) == 1 && ta_mallopt(TA_OPT_BACKGROUND_THREAD, bg) == 1,
         "restoring the options failed");
  long rmin = ta_getopt(TA_OPT_RETAIN_MIN), rpct = ta_getopt(TA_OPT_RETAIN_PERCENT);
  EXPECT(ta_mallopt(TA_OPT_RETAIN_MIN, 1L << 20) == 1 && ta_getopt(TA_OPT_RETAIN_MIN) == 1L << 20,
         "ta_mallopt(RETAIN_MIN, 1 MiB) not taken");
  EXPECT(ta_mallopt(TA_OPT_RETAIN_MIN, -1) == 0 && ta_getopt(TA_OPT_RETAIN_MIN) == 1L << 20,
         "ta_mallopt(RETAIN_MIN, -1) taken");
  EXPECT(ta_mallopt(TA_OPT_RETAIN_PERCENT, 101) == 0 && ta_mallopt(TA_OPT_RETAIN_PERCENT, 30) == 1 &&
             ta_getopt(TA_OPT_RETAIN_PERCENT) == 30,
         "ta_mallopt(RETAIN_PERCENT): 101 taken or 30 refused");
  EXPECT(ta_mallopt(TA_OPT_RETAIN_MIN, rmin) == 1 && ta_mallopt(TA_OPT_RETAIN_PERCENT, rpct) == 1,
         "restoring the retained cap failed");
  EXPECT(ta_getopt(99) == -1 || ta_getopt(99) == 0, "ta_getopt(99) = %ld for an unknown option", ta_getopt(99));
}

int main(int argc, char **argv) {
  CHECK_MSG(argc > 1, "usage: stats_env /path/to/stats_env_child");
  helper = argv[1];
  CHECK_MSG(access(helper, X_OK) == 0, "cannot run %s", helper);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_case(&cases[i]);
  test_combined();
  test_read_once();
  test_verbose();
  test_stats_at_exit();
  test_mallopt_api();
  CHECK_MSG(failures == 0, "%d expectations failed (listed above)", failures);
  return 0;
}
