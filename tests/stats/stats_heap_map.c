/* ta_heap_map against /proc/self/maps, read right after the map is written (nothing allocates or
 * frees in between, and the background thread is off). Every `segment 0xSTART-0xEND brk|mmap arena N
 * units in_use A free B purged C unmapped D` line names a range that /proc/self/maps covers (one
 * mapping or several adjacent ones), brk segments inside [heap]; segments do not overlap; the counts
 * match ta_stats_get. Every `large 0xPTR size N mapping 0xSTART-0xEND` line has its pointer inside its
 * mapping, which exists; the test's own large blocks are listed with their sizes, and its small blocks
 * lie in listed segments that have units in use. */
#include "stats.h"
#include "../seed/maps.h"

#define MAP_BUF (1 << 20)
#define MAX_SEGS 4096
#define MAX_LARGE 1024

typedef struct seg_line_s {
  uintptr_t lo, hi;    /* [lo, hi) */
  int brk;             /* 1: brk, 0: mmap */
  unsigned long arena; /* owning arena */
  unsigned long in_use, free_, purged, unmapped; /* units by state */
} seg_line_t;

typedef struct large_line_s {
  uintptr_t ptr;       /* the block */
  size_t size;         /* its size */
  uintptr_t lo, hi;    /* its mapping */
} large_line_t;

static char map_text[MAP_BUF];
static seg_line_t segs[MAX_SEGS];
static large_line_t larges[MAX_LARGE];
static size_t n_segs, n_large;

static int skip(const char **s, const char *word) {
  size_t n = strlen(word);
  if (strncmp(*s, word, n) != 0) return 0;
  *s += n;
  return 1;
}

static uintptr_t hex_field(const char **s, const char *line) {
  CHECK_MSG(skip(s, "0x"), "heap map: expected 0x... in \"%.*s\"", (int)strcspn(line, "\n"), line);
  const char *start = *s;
  uintptr_t v = parse_hex(s);
  CHECK_MSG(*s > start, "heap map: bad hex number in \"%.*s\"", (int)strcspn(line, "\n"), line);
  return v;
}

static unsigned long dec_field(const char **s, const char *name, const char *line) {
  CHECK_MSG(skip(s, name), "heap map: expected \"%s\" in \"%.*s\"", name, (int)strcspn(line, "\n"), line);
  const char *start = *s;
  unsigned long v = parse_dec(s);
  CHECK_MSG(*s > start, "heap map: expected a number after \"%s\" in \"%.*s\"", name, (int)strcspn(line, "\n"), line);
  return v;
}

static void parse_map(void) {
  n_segs = n_large = 0;
  for (const char *line = map_text; *line;) {
    const char *s = line;
    if (skip(&s, "segment ")) {
      CHECK(n_segs < MAX_SEGS);
      seg_line_t *g = &segs[n_segs++];
      g->lo = hex_field(&s, line);
      CHECK_MSG(skip(&s, "-"), "heap map: expected '-' in \"%.*s\"", (int)strcspn(line, "\n"), line);
      g->hi = hex_field(&s, line);
      if (skip(&s, " brk ")) g->brk = 1;
      else if (skip(&s, " mmap ")) g->brk = 0;
      else CHECK_MSG(0, "heap map: expected brk|mmap in \"%.*s\"", (int)strcspn(line, "\n"), line);
      g->arena = dec_field(&s, "arena ", line);
      g->in_use = dec_field(&s, " units in_use ", line);
      g->free_ = dec_field(&s, " free ", line);
      g->purged = dec_field(&s, " purged ", line);
      g->unmapped = dec_field(&s, " unmapped ", line);
      CHECK_MSG(g->lo < g->hi, "heap map: empty segment %#lx-%#lx", (unsigned long)g->lo, (unsigned long)g->hi);
      CHECK_MSG(g->in_use + g->free_ + g->purged + g->unmapped > 0, "heap map: segment %#lx with no units",
                (unsigned long)g->lo);
    } else if (skip(&s, "large ")) {
      CHECK(n_large < MAX_LARGE);
      large_line_t *l = &larges[n_large++];
      l->ptr = hex_field(&s, line);
      l->size = dec_field(&s, " size ", line);
      CHECK_MSG(skip(&s, " mapping "), "heap map: expected \"mapping\" in \"%.*s\"", (int)strcspn(line, "\n"), line);
      l->lo = hex_field(&s, line);
      CHECK(skip(&s, "-"));
      l->hi = hex_field(&s, line);
    }
    line += strcspn(line, "\n");
    if (*line == '\n') line++;
  }
}

/* Whether /proc/self/maps (last snapshot) covers [lo, hi) with one mapping or adjacent ones. */
static int maps_cover(uintptr_t lo, uintptr_t hi) {
  uintptr_t at = lo;
  map_t m;
  while (at < hi) {
    if (!maps_find(at, &m)) return 0;
    at = m.hi;
  }
  return 1;
}

/* The arena ids ta_stats_json lists, taken with the map. */
static char json_buf[1 << 20];
static unsigned long long arena_ids[256];
static size_t n_arena_ids;

static void take_arena_ids(void) {
  int root = ss_json_snapshot(json_buf, sizeof json_buf, NULL);
  n_arena_ids = 0;
  for (int a = js_nodes[js_path(root, "arenas")].first; a >= 0 && n_arena_ids < 256; a = js_nodes[a].next)
    arena_ids[n_arena_ids++] = js_u64(a, "id");
}

static int arena_known(unsigned long id) {
  for (size_t i = 0; i < n_arena_ids; i++)
    if (arena_ids[i] == id) return 1;
  return 0;
}

static void check_map(const ta_stats_t *st) {
  CHECK_MSG(n_segs >= 1, "the heap map lists no segment:\n%s", map_text);
  CHECK_MSG(n_segs == st->segments, "the heap map lists %zu segments, ta_stats_get counts %zu", n_segs, st->segments);
  CHECK_MSG(n_large == st->large_blocks, "the heap map lists %zu large blocks, ta_stats_get counts %zu", n_large,
            st->large_blocks);
  uintptr_t heap_lo = 0, heap_hi = 0;
  int have_heap = maps_heap(&heap_lo, &heap_hi);
  size_t n_brk = 0;
  for (size_t i = 0; i < n_segs; i++) {
    seg_line_t *g = &segs[i];
    CHECK_MSG(maps_cover(g->lo, g->hi), "segment %#lx-%#lx is not covered by /proc/self/maps", (unsigned long)g->lo,
              (unsigned long)g->hi);
    if (g->brk) {
      n_brk++;
      CHECK_MSG(have_heap && heap_lo <= g->lo && g->hi <= heap_hi,
                "brk segment %#lx-%#lx is not inside [heap] %#lx-%#lx", (unsigned long)g->lo, (unsigned long)g->hi,
                (unsigned long)heap_lo, (unsigned long)heap_hi);
    }
    CHECK_MSG(arena_known(g->arena), "segment %#lx: arena %lu, which ta_stats_json does not list",
              (unsigned long)g->lo, g->arena);
    for (size_t j = 0; j < i; j++)
      CHECK_MSG(g->hi <= segs[j].lo || segs[j].hi <= g->lo, "segments %#lx and %#lx overlap", (unsigned long)g->lo,
                (unsigned long)segs[j].lo);
  }
  CHECK_MSG(n_brk == st->segments_brk, "the heap map lists %zu brk segments, ta_stats_get counts %zu", n_brk,
            st->segments_brk);
  size_t large_bytes = 0;
  for (size_t i = 0; i < n_large; i++) {
    large_line_t *l = &larges[i];
    CHECK_MSG(l->lo <= l->ptr && l->ptr + l->size <= l->hi,
              "large block %#lx (%zu bytes) is not inside its mapping %#lx-%#lx", (unsigned long)l->ptr, l->size,
              (unsigned long)l->lo, (unsigned long)l->hi);
    CHECK_MSG(maps_cover(l->lo, l->hi), "large mapping %#lx-%#lx is not in /proc/self/maps", (unsigned long)l->lo,
              (unsigned long)l->hi);
    for (size_t j = 0; j < n_segs; j++)
      CHECK_MSG(l->hi <= segs[j].lo || segs[j].hi <= l->lo, "large mapping %#lx overlaps segment %#lx",
                (unsigned long)l->lo, (unsigned long)segs[j].lo);
    large_bytes += l->hi - l->lo;
  }
  CHECK_MSG(large_bytes == st->large_bytes, "large mappings in the map add up to %zu bytes, ta_stats_get says %zu",
            large_bytes, st->large_bytes);
}

static const seg_line_t *segment_of(const void *p) {
  for (size_t i = 0; i < n_segs; i++)
    if (segs[i].lo <= (uintptr_t)p && (uintptr_t)p < segs[i].hi) return &segs[i];
  return NULL;
}

static const large_line_t *large_of(const void *p) {
  for (size_t i = 0; i < n_large; i++)
    if (larges[i].ptr == (uintptr_t)p) return &larges[i];
  return NULL;
}

/* ta_heap_map, then /proc/self/maps with nothing in between that could move the heap. */
static ta_stats_t take_map(void) {
  FILE *f = ss_capture_begin();
  ta_stats_t st = ss_stats();
  ta_heap_map(f);
  CHECK(fflush(f) == 0);
  maps_snapshot();
  ss_capture_end(f, map_text, MAP_BUF);
  take_arena_ids();
  parse_map();
  return st;
}

static void *other_thread(void *arg) {
  void **out = arg;
  for (int i = 0; i < 100; i++) {
    out[i] = ta_malloc(3000);
    CHECK(out[i] != NULL);
  }
  return NULL;
}

int main(void) {
  static void *small[5000];
  for (int i = 0; i < 5000; i++) {
    small[i] = ta_malloc(24 + (size_t)(i % 64) * 40);
    CHECK(small[i] != NULL);
    memset(small[i], 3, 24);
  }
  const size_t large_sizes[] = {TB_MIB, 300 * TB_KIB + 5, 8 * TB_MIB};
  void *large[3];
  for (int i = 0; i < 3; i++) {
    large[i] = ta_malloc(large_sizes[i]);
    CHECK(large[i] != NULL);
    memset(large[i], 4, 4096);
  }
  /* A second arena, with its own segment. */
  static void *theirs[100];
  pthread_t t;
  CHECK(pthread_create(&t, NULL, other_thread, theirs) == 0);
  CHECK(pthread_join(t, NULL) == 0);

  ta_stats_t st = take_map();
  check_map(&st);
  for (int i = 0; i < 3; i++) {
    const large_line_t *l = large_of(large[i]);
    CHECK_MSG(l != NULL, "the test's large block %p (%zu bytes) is not in the heap map:\n%s", large[i],
              large_sizes[i], map_text);
    CHECK_MSG(l->size >= large_sizes[i] && l->size <= large_sizes[i] + 64 * TB_KIB,
              "large block %p of %zu bytes listed with size %zu", large[i], large_sizes[i], l->size);
  }
  for (int i = 0; i < 5000; i += 97) {
    const seg_line_t *g = segment_of(small[i]);
    CHECK_MSG(g != NULL, "the test's block %p is in no listed segment", small[i]);
    CHECK_MSG(g->in_use > 0, "block %p is live, yet its segment %#lx lists no unit in use", small[i],
              (unsigned long)g->lo);
  }
  CHECK_MSG(segment_of(theirs[0]) != NULL, "the other thread's block %p is in no listed segment", theirs[0]);
  CHECK_MSG(segment_of(theirs[0])->arena != segment_of(small[0])->arena || st.arenas == 1,
            "the exited thread's blocks are listed in the main thread's arena");

  /* Freed large blocks leave the map; freed small blocks leave their segments' units free or purged. */
  for (int i = 0; i < 3; i++) ta_free(large[i]);
  for (int i = 0; i < 5000; i++) ta_free(small[i]);
  for (int i = 0; i < 100; i++) ta_free(theirs[i]);
  ta_trim(0);
  st = take_map();
  check_map(&st);
  for (int i = 0; i < 3; i++)
    CHECK_MSG(large_of(large[i]) == NULL, "freed large block %p is still in the heap map", large[i]);
  return 0;
}
