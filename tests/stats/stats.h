/* What the stats suite shares: a small JSON parser into a static node pool (it never allocates, so it
 * can read a snapshot without disturbing the counters it checks), the schema of ta_stats_json's object
 * written as one checker, capture of a FILE report into a buffer, and running python3 on a file. */
#ifndef TA_TEST_STATS_H
#define TA_TEST_STATS_H

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "../stress/stress.h"

#define SS_SLACK 16 /* blocks something other than the test may take meanwhile (stdio in an override build) */

/* ---- JSON ---------------------------------------------------------------------------------------- */

typedef enum { JS_NULL, JS_BOOL, JS_NUMBER, JS_STRING, JS_ARRAY, JS_OBJECT } js_type_t;

/* One parsed value. Children of an array or object are a sibling chain from `first`. */
typedef struct js_node_s {
  js_type_t type;
  const char *text;     /* the value in the source (strings: after the opening quote) */
  size_t text_len;      /* its bytes (strings: raw, escapes not decoded, no quotes) */
  const char *key;      /* member name when the parent is an object (raw), else NULL */
  size_t key_len;       /* bytes of key */
  double num;           /* numbers: the value */
  bool is_int;          /* numbers: written as an integer (no fraction, no exponent) that fits i */
  long long i;          /* then its value */
  bool is_uint;         /* numbers: a non-negative integer that fits u */
  unsigned long long u; /* then its value */
  int first;            /* first child: node index, -1 for none */
  int next;             /* next sibling: node index, -1 for none */
  int count;            /* children of an array or object */
} js_node_t;

#define JS_MAX_NODES 200000
#define JS_MAX_DEPTH 64

static js_node_t js_nodes[JS_MAX_NODES];
static int js_used;
static const char *js_src, *js_end, *js_pos;
static char js_error[200]; /* why the last js_parse failed, with the offset */

static inline int js_fail(const char *what) {
  if (js_error[0] == '\0')
    snprintf(js_error, sizeof js_error, "%s at offset %td (near \"%.20s\")", what, js_pos - js_src, js_pos);
  return -1;
}

static inline bool js_more(void) { return js_pos < js_end; }
static inline bool js_digit(void) { return js_more() && *js_pos >= '0' && *js_pos <= '9'; }

static inline void js_ws(void) {
  while (js_more() && (*js_pos == ' ' || *js_pos == '\t' || *js_pos == '\n' || *js_pos == '\r')) js_pos++;
}

static inline int js_new(js_type_t t) {
  if (js_used >= JS_MAX_NODES) return js_fail("too many values");
  js_node_t *n = &js_nodes[js_used];
  memset(n, 0, sizeof *n);
  n->type = t;
  n->first = n->next = -1;
  n->text = js_pos;
  return js_used++;
}

/* At a '"': reads the string, leaves js_pos after the closing quote. */
static inline bool js_string(const char **start, size_t *len) {
  js_pos++;
  *start = js_pos;
  while (js_more()) {
    unsigned char c = (unsigned char)*js_pos;
    if (c == '"') {
      *len = (size_t)(js_pos - *start);
      js_pos++;
      return true;
    }
    if (c < 0x20) return js_fail("control character in a string") == 0;
    if (c == '\\') {
      js_pos++;
      if (!js_more()) break;
      char e = *js_pos;
      if (e == 'u') {
        for (int k = 1; k <= 4; k++)
          if (js_pos + k >= js_end || !isxdigit((unsigned char)js_pos[k])) return js_fail("bad \\u escape") == 0;
        js_pos += 5;
        continue;
      }
      if (e == '\0' || strchr("\"\\/bfnrt", e) == NULL) return js_fail("bad escape") == 0;
    }
    js_pos++;
  }
  return js_fail("unterminated string") == 0;
}

static inline int js_number(void) {
  int id = js_new(JS_NUMBER);
  if (id < 0) return -1;
  const char *s = js_pos;
  bool neg = false, integral = true;
  if (*js_pos == '-') {
    neg = true;
    js_pos++;
  }
  if (!js_digit()) return js_fail("bad number");
  if (*js_pos == '0') js_pos++;
  else
    while (js_digit()) js_pos++;
  if (js_more() && *js_pos == '.') {
    integral = false;
    js_pos++;
    if (!js_digit()) return js_fail("bad fraction");
    while (js_digit()) js_pos++;
  }
  if (js_more() && (*js_pos == 'e' || *js_pos == 'E')) {
    integral = false;
    js_pos++;
    if (js_more() && (*js_pos == '+' || *js_pos == '-')) js_pos++;
    if (!js_digit()) return js_fail("bad exponent");
    while (js_digit()) js_pos++;
  }
  js_node_t *n = &js_nodes[id];
  n->text_len = (size_t)(js_pos - s);
  char tmp[64];
  if (n->text_len >= sizeof tmp) return js_fail("number too long");
  memcpy(tmp, s, n->text_len);
  tmp[n->text_len] = '\0';
  n->num = strtod(tmp, NULL);
  if (integral) {
    unsigned long long u = 0;
    bool overflow = false;
    for (const char *c = tmp + neg; *c; c++) {
      unsigned d = (unsigned)(*c - '0');
      if (u > (ULLONG_MAX - d) / 10) overflow = true;
      u = u * 10 + d;
    }
    if (!overflow) {
      if (!neg) {
        n->is_uint = true;
        n->u = u;
      }
      if (u <= (unsigned long long)LLONG_MAX) {
        n->is_int = true;
        n->i = neg ? -(long long)u : (long long)u;
      }
    }
  }
  return id;
}

static inline int js_value(int depth);

static inline void js_link(int parent, int *last, int child) {
  if (*last < 0) js_nodes[parent].first = child;
  else js_nodes[*last].next = child;
  *last = child;
  js_nodes[parent].count++;
}

static inline int js_object(int depth) {
  int id = js_new(JS_OBJECT);
  if (id < 0) return -1;
  js_pos++;
  js_ws();
  int last = -1;
  if (js_more() && *js_pos == '}') {
    js_pos++;
  } else {
    for (;;) {
      js_ws();
      if (!js_more() || *js_pos != '"') return js_fail("expected a member name");
      const char *k;
      size_t kl;
      if (!js_string(&k, &kl)) return -1;
      for (int c = js_nodes[id].first; c >= 0; c = js_nodes[c].next)
        if (js_nodes[c].key_len == kl && memcmp(js_nodes[c].key, k, kl) == 0) return js_fail("duplicate member");
      js_ws();
      if (!js_more() || *js_pos != ':') return js_fail("expected ':'");
      js_pos++;
      int v = js_value(depth + 1);
      if (v < 0) return -1;
      js_nodes[v].key = k;
      js_nodes[v].key_len = kl;
      js_link(id, &last, v);
      js_ws();
      if (js_more() && *js_pos == ',') {
        js_pos++;
        continue;
      }
      if (js_more() && *js_pos == '}') {
        js_pos++;
        break;
      }
      return js_fail("expected ',' or '}'");
    }
  }
  js_nodes[id].text_len = (size_t)(js_pos - js_nodes[id].text);
  return id;
}

static inline int js_array(int depth) {
  int id = js_new(JS_ARRAY);
  if (id < 0) return -1;
  js_pos++;
  js_ws();
  int last = -1;
  if (js_more() && *js_pos == ']') {
    js_pos++;
  } else {
    for (;;) {
      int v = js_value(depth + 1);
      if (v < 0) return -1;
      js_link(id, &last, v);
      js_ws();
      if (js_more() && *js_pos == ',') {
        js_pos++;
        continue;
      }
      if (js_more() && *js_pos == ']') {
        js_pos++;
        break;
      }
      return js_fail("expected ',' or ']'");
    }
  }
  js_nodes[id].text_len = (size_t)(js_pos - js_nodes[id].text);
  return id;
}

static inline int js_literal(const char *word, js_type_t t, bool value) {
  size_t n = strlen(word);
  if ((size_t)(js_end - js_pos) < n || memcmp(js_pos, word, n) != 0) return js_fail("unexpected character");
  int id = js_new(t);
  if (id < 0) return -1;
  js_nodes[id].i = value;
  js_nodes[id].text_len = n;
  js_pos += n;
  return id;
}

static inline int js_value(int depth) {
  js_ws();
  if (!js_more()) return js_fail("unexpected end");
  if (depth > JS_MAX_DEPTH) return js_fail("nested too deep");
  char c = *js_pos;
  if (c == '{') return js_object(depth);
  if (c == '[') return js_array(depth);
  if (c == '-' || (c >= '0' && c <= '9')) return js_number();
  if (c == '"') {
    int id = js_new(JS_STRING);
    if (id < 0) return -1;
    return js_string(&js_nodes[id].text, &js_nodes[id].text_len) ? id : -1;
  }
  if (c == 't') return js_literal("true", JS_BOOL, true);
  if (c == 'f') return js_literal("false", JS_BOOL, false);
  if (c == 'n') return js_literal("null", JS_NULL, false);
  return js_fail("unexpected character");
}

/* Parses s[0, len) as one JSON text (RFC 8259, whitespace around allowed); returns the root node or
 * -1 with the reason in js_error. Nodes live until the next js_parse. */
static inline int js_parse(const char *s, size_t len) {
  js_used = 0;
  js_error[0] = '\0';
  js_src = js_pos = s;
  js_end = s + len;
  int root = js_value(0);
  if (root < 0) return -1;
  js_ws();
  if (js_pos != js_end) return js_fail("bytes after the value");
  return root;
}

/* Parses or fails the test, naming `what`. */
static inline int js_parse_or_die(const char *s, size_t len, const char *what) {
  int root = js_parse(s, len);
  CHECK_MSG(root >= 0, "%s is not valid JSON: %s\n--- %s (%zu bytes) ---\n%.*s\n---", what, js_error, what, len,
            (int)(len > 4000 ? 4000 : len), s);
  return root;
}

/* Member `key` of object node `obj`, or -1. */
static inline int js_get(int obj, const char *key) {
  if (obj < 0 || js_nodes[obj].type != JS_OBJECT) return -1;
  size_t kl = strlen(key);
  for (int c = js_nodes[obj].first; c >= 0; c = js_nodes[c].next)
    if (js_nodes[c].key_len == kl && memcmp(js_nodes[c].key, key, kl) == 0) return c;
  return -1;
}

/* The node at a dotted path of member names ("totals.live_bytes"), or -1. */
static inline int js_path(int node, const char *path) {
  char key[64];
  while (node >= 0 && *path) {
    size_t k = strcspn(path, ".");
    CHECK(k < sizeof key);
    memcpy(key, path, k);
    key[k] = '\0';
    node = js_get(node, key);
    path += k + (path[k] == '.');
  }
  return node;
}

static inline int js_need(int node, const char *path, js_type_t t) {
  int n = js_path(node, path);
  CHECK_MSG(n >= 0, "the JSON has no \"%s\"", path);
  CHECK_MSG(js_nodes[n].type == t, "JSON \"%s\" is %.*s, of the wrong type", path,
            (int)(js_nodes[n].text_len > 200 ? 200 : js_nodes[n].text_len), js_nodes[n].text);
  return n;
}

/* A non-negative integer member: present, a number, written as an integer. */
static inline unsigned long long js_u64(int node, const char *path) {
  int n = js_need(node, path, JS_NUMBER);
  CHECK_MSG(js_nodes[n].is_uint, "JSON \"%s\" is %.*s, not a non-negative integer", path, (int)js_nodes[n].text_len,
            js_nodes[n].text);
  return js_nodes[n].u;
}

static inline long long js_i64(int node, const char *path) {
  int n = js_need(node, path, JS_NUMBER);
  CHECK_MSG(js_nodes[n].is_int, "JSON \"%s\" is %.*s, not an integer", path, (int)js_nodes[n].text_len,
            js_nodes[n].text);
  return js_nodes[n].i;
}

static inline double js_num(int node, const char *path) { return js_nodes[js_need(node, path, JS_NUMBER)].num; }

static inline bool js_str_is(int node, const char *s) {
  return node >= 0 && js_nodes[node].type == JS_STRING && js_nodes[node].text_len == strlen(s) &&
         memcmp(js_nodes[node].text, s, js_nodes[node].text_len) == 0;
}

/* ---- The schema of ta_stats_json ----------------------------------------------------------------- */

static const char *const ss_config_keys[] = {"mmap_threshold", "trim_threshold", "top_pad",
                                             "decay_ms",       "arena_max",      "background_thread"};
static const int ss_config_opts[] = {TA_OPT_MMAP_THRESHOLD, TA_OPT_TRIM_THRESHOLD, TA_OPT_TOP_PAD,
                                     TA_OPT_DECAY_MS,       TA_OPT_ARENA_MAX,      TA_OPT_BACKGROUND_THREAD};

/* config.background_thread may be written 0/1 or false/true. */
static inline long long ss_config_value(int root, size_t k) {
  char path[64];
  snprintf(path, sizeof path, "config.%s", ss_config_keys[k]);
  int n = js_path(root, path);
  CHECK_MSG(n >= 0, "the JSON has no \"%s\"", path);
  if (js_nodes[n].type == JS_BOOL && ss_config_opts[k] == TA_OPT_BACKGROUND_THREAD) return js_nodes[n].i;
  return js_i64(root, path);
}

static inline void ss_check_fraction(int node, const char *path) {
  double f = js_num(node, path);
  CHECK_MSG(f >= 0.0 && f <= 1.0, "JSON \"%s\" = %g is not in [0, 1]", path, f);
}

/* Checks the object ta_stats_json writes: every member of the contract present with its type, numbers
 * in range, classes and arenas well formed. `quiescent`: nothing ran while the snapshot was taken, so
 * the parts must also add up exactly (class sums = totals, arena sums = totals, segments = totals). */
static inline void ss_check_stats_json(int root, bool quiescent) {
  CHECK_MSG(js_nodes[root].type == JS_OBJECT, "the report is not a JSON object");
  CHECK_MSG(js_u64(root, "version") == 1, "version %llu, want 1", js_u64(root, "version"));

  js_need(root, "config", JS_OBJECT);
  for (size_t k = 0; k < sizeof ss_config_keys / sizeof ss_config_keys[0]; k++) (void)ss_config_value(root, k);
  CHECK(js_u64(root, "config.mmap_threshold") >= 4096);
  (void)js_u64(root, "config.trim_threshold");
  (void)js_u64(root, "config.top_pad");
  (void)js_u64(root, "config.arena_max");
  long long bg = ss_config_value(root, 5);
  CHECK_MSG(bg == 0 || bg == 1, "config.background_thread = %lld", bg);

  js_need(root, "totals", JS_OBJECT);
  unsigned long long live_bytes = js_u64(root, "totals.live_bytes");
  unsigned long long live_blocks = js_u64(root, "totals.live_blocks");
  unsigned long long committed = js_u64(root, "totals.committed_bytes");
  unsigned long long resident = js_u64(root, "totals.resident_bytes");
  ss_check_fraction(root, "totals.fragmentation");
  unsigned long long large_blocks = js_u64(root, "totals.large_blocks");
  unsigned long long large_bytes = js_u64(root, "totals.large_bytes");
  CHECK_MSG(live_bytes >= 16 * live_blocks, "totals: %llu live bytes in %llu blocks", live_bytes, live_blocks);
  CHECK_MSG(large_bytes >= 4096 * large_blocks, "totals: %llu large bytes in %llu blocks", large_bytes, large_blocks);

  js_need(root, "segments", JS_OBJECT);
  unsigned long long seg_count = 0, seg_reserved = 0, seg_committed = 0, seg_resident = 0;
  static const char *const origins[] = {"segments.brk", "segments.mmap"};
  for (int o = 0; o < 2; o++) {
    int s = js_need(root, origins[o], JS_OBJECT);
    unsigned long long c = js_u64(s, "count"), rv = js_u64(s, "reserved_bytes");
    unsigned long long cm = js_u64(s, "committed_bytes"), rs = js_u64(s, "resident_bytes");
    seg_count += c;
    seg_reserved += rv;
    seg_committed += cm;
    seg_resident += rs;
    if (quiescent) {
      CHECK_MSG(cm <= rv, "%s: committed %llu > reserved %llu", origins[o], cm, rv);
      CHECK_MSG(rs <= cm, "%s: resident %llu > committed %llu", origins[o], rs, cm);
      CHECK_MSG((c == 0) == (rv == 0), "%s: %llu segments reserving %llu bytes", origins[o], c, rv);
    }
  }
  CHECK_MSG(live_bytes <= seg_reserved, "totals.live_bytes %llu > segment bytes %llu", live_bytes, seg_reserved);

  js_need(root, "trim", JS_OBJECT);
  unsigned long long purged = js_u64(root, "trim.purged_bytes"), calls = js_u64(root, "trim.purge_calls");
  CHECK_MSG((purged == 0) == (calls == 0) || calls > 0, "trim: %llu bytes purged in %llu calls", purged, calls);
  js_need(root, "events", JS_OBJECT);
  unsigned long long grows = js_u64(root, "events.segment_grows");
  (void)js_u64(root, "events.remote_frees_collected");
  (void)js_u64(root, "events.arena_adoptions");
  unsigned long long arenas_created = js_u64(root, "events.arenas_created");

  /* classes: ascending, each with live blocks, bytes = blocks x size, size = the class's size. */
  int classes = js_need(root, "classes", JS_ARRAY);
  unsigned long long sum_blocks = 0, sum_bytes = 0;
  long long prev = -1;
  for (int c = js_nodes[classes].first; c >= 0; c = js_nodes[c].next) {
    CHECK_MSG(js_nodes[c].type == JS_OBJECT, "classes[] holds a non-object");
    unsigned long long cls = js_u64(c, "class"), size = js_u64(c, "size");
    unsigned long long b = js_u64(c, "live_blocks"), y = js_u64(c, "live_bytes");
    CHECK_MSG(cls < ta_stats_classes(), "classes[]: class %llu out of range", cls);
    CHECK_MSG((long long)cls > prev, "classes[]: class %llu listed after %lld", cls, prev);
    prev = (long long)cls;
    size_t bs = 0, lb, ly;
    CHECK(ta_stats_class((unsigned)cls, &bs, &lb, &ly) == 0);
    CHECK_MSG(size == bs, "classes[]: class %llu has size %llu, ta_stats_class says %zu", cls, size, bs);
    if (quiescent) {
      CHECK_MSG(b > 0, "classes[]: class %llu listed with no live blocks", cls);
      CHECK_MSG(y == b * size, "classes[]: class %llu: %llu bytes in %llu blocks of %llu", cls, y, b, size);
    }
    sum_blocks += b;
    sum_bytes += y;
  }

  /* arenas: ids unique, state one of three words, numbers sane. */
  int arenas = js_need(root, "arenas", JS_ARRAY);
  unsigned long long a_bytes = 0, a_blocks = 0, a_segments = 0, a_committed = 0, a_resident = 0;
  for (int a = js_nodes[arenas].first; a >= 0; a = js_nodes[a].next) {
    CHECK_MSG(js_nodes[a].type == JS_OBJECT, "arenas[] holds a non-object");
    unsigned long long id = js_u64(a, "id");
    for (int b = js_nodes[arenas].first; b != a; b = js_nodes[b].next)
      CHECK_MSG(js_u64(b, "id") != id, "arenas[]: id %llu twice", id);
    int st = js_need(a, "state", JS_STRING);
    CHECK_MSG(js_str_is(st, "bound") || js_str_is(st, "pooled") || js_str_is(st, "shared") ||
                js_str_is(st, "orphaned"),
              "arenas[]: arena %llu has state \"%.*s\"", id, (int)js_nodes[st].text_len, js_nodes[st].text);
    a_segments += js_u64(a, "segments");
    a_bytes += js_u64(a, "live_bytes");
    a_blocks += js_u64(a, "live_blocks");
    a_committed += js_u64(a, "committed_bytes");
    a_resident += js_u64(a, "resident_bytes");
    ss_check_fraction(a, "fragmentation");
  }
  CHECK_MSG((unsigned long long)js_nodes[arenas].count <= arenas_created,
            "%d arenas listed, events.arenas_created = %llu", js_nodes[arenas].count, arenas_created);

  if (!quiescent) return;
  CHECK_MSG(sum_blocks == live_blocks, "classes[] sum to %llu live blocks, totals.live_blocks = %llu", sum_blocks,
            live_blocks);
  CHECK_MSG(sum_bytes == live_bytes, "classes[] sum to %llu live bytes, totals.live_bytes = %llu", sum_bytes,
            live_bytes);
  CHECK_MSG(a_blocks == live_blocks, "arenas[] sum to %llu live blocks, totals.live_blocks = %llu", a_blocks,
            live_blocks);
  CHECK_MSG(a_bytes == live_bytes, "arenas[] sum to %llu live bytes, totals.live_bytes = %llu", a_bytes, live_bytes);
  CHECK_MSG(a_segments <= seg_count, "arenas[] own %llu segments, segments.* count %llu", a_segments, seg_count);
  CHECK_MSG(a_committed <= seg_committed, "arenas[] commit %llu bytes, segments.* %llu", a_committed, seg_committed);
  CHECK_MSG(a_resident <= seg_resident, "arenas[] hold %llu resident bytes, segments.* %llu", a_resident,
            seg_resident);
  CHECK_MSG(committed == seg_committed, "totals.committed_bytes %llu, segments.* sum to %llu", committed,
            seg_committed);
  CHECK_MSG(resident == seg_resident, "totals.resident_bytes %llu, segments.* sum to %llu", resident, seg_resident);
  CHECK_MSG(resident <= committed, "totals: resident %llu > committed %llu", resident, committed);
  CHECK_MSG(grows >= seg_count || seg_count == 0, "events.segment_grows %llu < %llu segments mapped", grows,
            seg_count);
}

/* A snapshot: ta_stats_json into buf, parsed; fails the test if it does not fit or does not parse. */
static inline int ss_json_snapshot(char *buf, size_t cap, size_t *len_out) {
  size_t len = ta_stats_json(buf, cap);
  CHECK_MSG(len < cap, "ta_stats_json needs %zu bytes, the test's buffer has %zu", len, cap);
  CHECK_MSG(strlen(buf) == len, "ta_stats_json returned %zu but wrote %zu bytes", len, strlen(buf));
  if (len_out) *len_out = len;
  return js_parse_or_die(buf, len, "ta_stats_json");
}

/* ---- Reports into buffers, python ---------------------------------------------------------------- */

/* A FILE over an anonymous memory file, with a static stdio buffer so that writing to it does not
 * allocate. ss_capture_end flushes, reads everything written into buf (NUL-terminated) and closes. */
static char ss_iobuf[1 << 16];

static inline FILE *ss_capture_begin(void) {
  int fd = memfd_create("ta-stats-report", MFD_CLOEXEC);
  CHECK(fd >= 0);
  FILE *f = fdopen(fd, "w+");
  CHECK(f != NULL);
  CHECK(setvbuf(f, ss_iobuf, _IOFBF, sizeof ss_iobuf) == 0);
  return f;
}

static inline size_t ss_read_fd(int fd, char *buf, size_t cap) {
  size_t len = 0;
  for (;;) {
    ssize_t k = pread(fd, buf + len, cap - 1 - len, (off_t)len);
    CHECK(k >= 0);
    if (k == 0) break;
    len += (size_t)k;
    CHECK_MSG(len < cap - 1, "report larger than the test's buffer (%zu bytes)", cap);
  }
  buf[len] = '\0';
  return len;
}

/* Flushes f and reads it; f stays open (ss_capture_close). */
static inline size_t ss_capture_read(FILE *f, char *buf, size_t cap) {
  CHECK(fflush(f) == 0);
  CHECK(!ferror(f));
  return ss_read_fd(fileno(f), buf, cap);
}

static inline size_t ss_capture_end(FILE *f, char *buf, size_t cap) {
  size_t len = ss_capture_read(f, buf, cap);
  CHECK(fclose(f) == 0);
  return len;
}

/* fd 2 into a memory file while a function writes to stderr: begin returns the saved fd 2. */
static inline int ss_stderr_begin(int *mem) {
  fflush(stderr);
  *mem = memfd_create("ta-stats-stderr", MFD_CLOEXEC);
  CHECK(*mem >= 0);
  int saved = dup(2);
  CHECK(saved >= 0);
  CHECK(dup2(*mem, 2) == 2);
  return saved;
}

static inline size_t ss_stderr_end(int saved, int mem, char *buf, size_t cap) {
  fflush(stderr);
  CHECK(dup2(saved, 2) == 2);
  close(saved);
  size_t len = ss_read_fd(mem, buf, cap);
  close(mem);
  return len;
}

/* Writes data to a fresh file under /tmp; path receives its name (the caller unlinks it). */
static inline void ss_write_temp(const char *data, size_t len, char path[64]) {
  snprintf(path, 64, "/tmp/ta-stats-XXXXXX");
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  for (size_t done = 0; done < len;) {
    ssize_t k = write(fd, data + done, len - done);
    CHECK(k > 0);
    done += (size_t)k;
  }
  close(fd);
}

/* Runs `python3 -c script path` (python from TA_TEST_PYTHON, which meson sets when it found one);
 * returns its exit status, or -1 when there is no python (the caller skips that check). */
static inline int ss_python(const char *script, const char *path) {
  const char *py = getenv("TA_TEST_PYTHON");
  if (py == NULL || *py == '\0') {
    fprintf(stderr, "note: TA_TEST_PYTHON unset, python check skipped\n");
    return -1;
  }
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    execl(py, py, "-c", script, path, (char *)NULL);
    _exit(127);
  }
  int status;
  CHECK(waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Runs a python check on data; fails the test when python says no. */
static inline void ss_python_check(const char *script, const char *data, size_t len, const char *what) {
  char path[64];
  ss_write_temp(data, len, path);
  int rc = ss_python(script, path);
  unlink(path);
  CHECK_MSG(rc == -1 || rc == 0, "python rejected %s (exit %d)", what, rc);
}

#define SS_PY_JSON "import json,sys; json.load(open(sys.argv[1]))"

/* ---- Small things ---------------------------------------------------------------------------------- */

static inline ta_stats_t ss_stats(void) {
  ta_stats_t s;
  memset(&s, 0xa5, sizeof s); /* a field the implementation forgets to fill shows as garbage */
  ta_stats_get(&s);
  return s;
}

/* The class whose block size is `size`; fails if there is none. */
static inline unsigned ss_class_of_size(size_t size) {
  unsigned n = ta_stats_classes();
  for (unsigned c = 0; c < n; c++) {
    size_t bs, lb, ly;
    CHECK(ta_stats_class(c, &bs, &lb, &ly) == 0);
    if (bs == size) return c;
  }
  CHECK_MSG(0, "no size class of %zu bytes among %u", size, n);
  return 0;
}

static inline void ss_class(unsigned cls, size_t *blocks, size_t *bytes) {
  size_t bs;
  CHECK(ta_stats_class(cls, &bs, blocks, bytes) == 0);
}

/* Whether haystack[0, len) contains needle. */
static inline bool ss_contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

#endif
