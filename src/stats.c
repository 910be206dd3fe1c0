/* Statistics: snapshots of every arena, segment and large block, reported as ta_stats_t, text, JSON,
 * glibc's mallinfo/malloc_info shapes, and a heap map.
 *
 * Reading statistics never changes allocator state. Arenas are read through the functions the arena
 * layer exports for it (arenas/census.h): live blocks come from the pages' own counters, which their
 * owner threads keep anyway, so nothing is counted on the fast paths. Those reads race with the
 * owners by design: a report must not stop the threads it describes; a snapshot taken while threads
 * run is an approximation that is exact once they are quiet. Residency is measured afterwards, with
 * no lock held (ta_os_resident). Reports are formatted without malloc (format.c)
 * so they work at exit, in exiting threads, and in a forked child. */
#include <malloc.h>
#include <pthread.h>
#include <string.h>

#include "arenas/census.h"
#include "src/config.h"
#include "src/format.h"
#include "src/init.h"
#include "src/large.h"
#include "src/os.h"
#include "src/stats.h"
#include "tamalloc.h"

typedef struct {
  size_t count, reserved, committed, resident;
} seg_totals_t;

/* One arena, or the sum of all (id unused). */
typedef struct {
  unsigned id;
  uint8_t state;
  seg_totals_t origin[2];          /* [0] brk, [1] mmap */
  size_t live_blocks, live_bytes;
  size_t cls_live[TA_CLASSES];     /* live blocks per class */
  size_t cls_free[TA_CLASSES];     /* carved blocks not live per class */
  size_t keepcost;                 /* free tail of the brk top */
} arena_snap_t;

typedef ta_seg_census_t seg_rec_t;

typedef void (*seg_visit_fn)(const arena_snap_t *arena, const seg_rec_t *seg, size_t resident, void *ctx);

static void collect_arena(ta_arena_t *arena, arena_snap_t *snap, seg_visit_fn visit, void *ctx) {
  memset(snap, 0, sizeof *snap);
  /* Room for the segments, mapped before the census (which takes locks) and measured after it
   * (mincore, a system call, with no lock held). */
  size_t cap = ta_arena_census_segments(arena) + 64;
  size_t bytes = ta_align_up(cap * sizeof(seg_rec_t), TA_PAGE);
  seg_rec_t *recs = ta_os_map(bytes);
  ta_arena_census_t c;
  size_t n = ta_arena_census(arena, &c, recs, recs ? cap : 0);
  snap->id = c.id;
  snap->state = c.state;
  snap->live_blocks = c.live_blocks;
  snap->live_bytes = c.live_bytes;
  snap->keepcost = c.keepcost;
  memcpy(snap->cls_live, c.cls_live, sizeof snap->cls_live);
  memcpy(snap->cls_free, c.cls_free, sizeof snap->cls_free);
  if (recs == NULL) return;
  for (size_t i = 0; i < n; i++) {
    seg_totals_t *t = &snap->origin[recs[i].origin == TA_SEG_BRK ? 0 : 1];
    size_t committed = (size_t)recs[i].mapped * TA_UNIT_SIZE;
    size_t resident = ta_os_resident((const void *)recs[i].addr, committed);
    t->count++;
    t->reserved += TA_SEGMENT_SIZE;
    t->committed += committed;
    t->resident += resident;
    if (visit) visit(snap, &recs[i], resident, ctx);
  }
  ta_os_unmap(recs, bytes);
}

static void snap_add(arena_snap_t *sum, const arena_snap_t *a) {
  for (int o = 0; o < 2; o++) {
    sum->origin[o].count += a->origin[o].count;
    sum->origin[o].reserved += a->origin[o].reserved;
    sum->origin[o].committed += a->origin[o].committed;
    sum->origin[o].resident += a->origin[o].resident;
  }
  sum->live_blocks += a->live_blocks;
  sum->live_bytes += a->live_bytes;
  sum->keepcost += a->keepcost;
  for (unsigned c = 0; c < TA_CLASSES; c++) {
    sum->cls_live[c] += a->cls_live[c];
    sum->cls_free[c] += a->cls_free[c];
  }
}

static size_t snap_committed(const arena_snap_t *s) { return s->origin[0].committed + s->origin[1].committed; }
static size_t snap_resident(const arena_snap_t *s) { return s->origin[0].resident + s->origin[1].resident; }
static double snap_frag(const arena_snap_t *s) {
  size_t res = snap_resident(s);
  return res == 0 || s->live_bytes >= res ? 0.0 : 1.0 - (double)s->live_bytes / (double)res;
}

typedef struct {
  arena_snap_t total;
  size_t arenas, pooled;
  void (*each_arena)(const arena_snap_t *a, void *ctx);
  seg_visit_fn each_seg;
  void *ctx;
} walk_t;

static void walk_one(ta_arena_t *arena, void *ctx) {
  walk_t *w = ctx;
  arena_snap_t a;
  collect_arena(arena, &a, w->each_seg, w->ctx);
  snap_add(&w->total, &a);
  w->arenas++;
  w->pooled += a.state == TA_ARENA_POOLED;
  if (w->each_arena) w->each_arena(&a, w->ctx);
}

static void walk(walk_t *w) {
  ta_init();
  ta_arena_foreach(walk_one, w);
}

void ta_stats_get(ta_stats_t *out) {
  walk_t w = {0};
  walk(&w);
  memset(out, 0, sizeof *out);
  out->arenas = ta_arena_count();
  out->arenas_pooled = w.pooled;
  out->segments = w.total.origin[0].count + w.total.origin[1].count;
  out->segments_brk = w.total.origin[0].count;
  out->segment_bytes = w.total.origin[0].reserved + w.total.origin[1].reserved;
  out->committed_bytes = snap_committed(&w.total);
  out->resident_bytes = snap_resident(&w.total);
  out->live_bytes = w.total.live_bytes;
  out->live_blocks = w.total.live_blocks;
  ta_large_totals(&out->large_blocks, &out->large_bytes);
  out->large_retained_bytes = ta_large_cached_bytes();
  ta_seg_trim_totals(&out->purged_bytes, &out->purge_calls);
  out->segment_grows = atomic_load_explicit(&ta_segment_grows, memory_order_relaxed);
  out->remote_frees_collected = atomic_load_explicit(&ta_remote_collected, memory_order_relaxed);
  out->arena_adoptions = atomic_load_explicit(&ta_arena_adoptions, memory_order_relaxed);
  out->fragmentation = snap_frag(&w.total);
}

unsigned ta_stats_classes(void) { return TA_CLASSES; }

int ta_stats_class(unsigned cls, size_t *block_size, size_t *live_blocks, size_t *live_bytes) {
  if (cls >= TA_CLASSES) return -1;
  walk_t w = {0};
  walk(&w);
  if (block_size) *block_size = ta_class_size(cls);
  if (live_blocks) *live_blocks = w.total.cls_live[cls];
  if (live_bytes) *live_bytes = w.total.cls_live[cls] * ta_class_size(cls);
  return 0;
}

static const char *state_name(uint8_t state) {
  return state == TA_ARENA_POOLED     ? "pooled"
         : state == TA_ARENA_SHARED   ? "shared"
         : state == TA_ARENA_ORPHANED ? "orphaned"
                                      : "bound";
}

/* "key": value pairs, the common shape of the reports. */
static void kv(ta_out_t *o, const char *key, unsigned long long v, bool comma) {
  ta_out_str(o, "\"");
  ta_out_str(o, key);
  ta_out_str(o, "\": ");
  ta_out_u(o, v);
  if (comma) ta_out_str(o, ", ");
}

typedef struct {
  ta_out_t *o;
  bool first; /* no element written yet in the current array */
} report_t;

static void json_arena(const arena_snap_t *a, void *ctx) {
  report_t *r = ctx;
  ta_out_t *o = r->o;
  ta_out_str(o, r->first ? "{" : ", {");
  r->first = false;
  kv(o, "id", a->id, true);
  ta_out_str(o, "\"state\": \"");
  ta_out_str(o, state_name(a->state));
  ta_out_str(o, "\", ");
  kv(o, "segments", a->origin[0].count + a->origin[1].count, true);
  kv(o, "live_bytes", a->live_bytes, true);
  kv(o, "live_blocks", a->live_blocks, true);
  kv(o, "committed_bytes", snap_committed(a), true);
  kv(o, "resident_bytes", snap_resident(a), true);
  ta_out_str(o, "\"fragmentation\": ");
  ta_out_frac(o, snap_frag(a));
  ta_out_str(o, "}");
}

static void json_report(ta_out_t *o) {
  report_t r = {.o = o, .first = true};
  walk_t w = {.each_arena = json_arena, .ctx = &r};
  ta_out_str(o, "{\"version\": 1, \"arenas\": [");
  walk(&w);
  size_t large_blocks, large_bytes, purged, calls;
  ta_large_totals(&large_blocks, &large_bytes);
  ta_seg_trim_totals(&purged, &calls);
  ta_out_str(o, "], \"config\": {");
  kv(o, "mmap_threshold", (unsigned long long)ta_config_get(TA_OPT_MMAP_THRESHOLD), true);
  kv(o, "trim_threshold", (unsigned long long)ta_config_get(TA_OPT_TRIM_THRESHOLD), true);
  kv(o, "top_pad", (unsigned long long)ta_config_get(TA_OPT_TOP_PAD), true);
  ta_out_str(o, "\"decay_ms\": ");
  ta_out_i(o, ta_config_get(TA_OPT_DECAY_MS));
  ta_out_str(o, ", ");
  kv(o, "arena_max", (unsigned long long)ta_config_get(TA_OPT_ARENA_MAX), true);
  ta_out_str(o, "\"background_thread\": ");
  ta_out_str(o, ta_config_get(TA_OPT_BACKGROUND_THREAD) ? "true" : "false");
  ta_out_str(o, "}, \"totals\": {");
  kv(o, "live_bytes", w.total.live_bytes, true);
  kv(o, "live_blocks", w.total.live_blocks, true);
  kv(o, "committed_bytes", snap_committed(&w.total), true);
  kv(o, "resident_bytes", snap_resident(&w.total), true);
  ta_out_str(o, "\"fragmentation\": ");
  ta_out_frac(o, snap_frag(&w.total));
  ta_out_str(o, ", ");
  kv(o, "large_blocks", large_blocks, true);
  kv(o, "large_bytes", large_bytes, true);
  kv(o, "large_retained_bytes", ta_large_cached_bytes(), false);
  ta_out_str(o, "}, \"segments\": {");
  static const char *const origin_names[2] = {"brk", "mmap"};
  for (int i = 0; i < 2; i++) {
    ta_out_str(o, "\"");
    ta_out_str(o, origin_names[i]);
    ta_out_str(o, "\": {");
    kv(o, "count", w.total.origin[i].count, true);
    kv(o, "reserved_bytes", w.total.origin[i].reserved, true);
    kv(o, "committed_bytes", w.total.origin[i].committed, true);
    kv(o, "resident_bytes", w.total.origin[i].resident, false);
    ta_out_str(o, i == 0 ? "}, " : "}");
  }
  ta_out_str(o, "}, \"trim\": {");
  kv(o, "purged_bytes", purged, true);
  kv(o, "purge_calls", calls, false);
  ta_out_str(o, "}, \"events\": {");
  kv(o, "segment_grows", atomic_load(&ta_segment_grows), true);
  kv(o, "remote_frees_collected", atomic_load(&ta_remote_collected), true);
  kv(o, "arena_adoptions", atomic_load(&ta_arena_adoptions), true);
  kv(o, "arenas_created", ta_arena_count(), false);
  ta_out_str(o, "}, \"classes\": [");
  bool first = true;
  for (unsigned c = 0; c < TA_CLASSES; c++) {
    if (w.total.cls_live[c] == 0) continue;
    ta_out_str(o, first ? "{" : ", {");
    first = false;
    kv(o, "class", c, true);
    kv(o, "size", ta_class_size(c), true);
    kv(o, "live_blocks", w.total.cls_live[c], true);
    kv(o, "live_bytes", w.total.cls_live[c] * ta_class_size(c), false);
    ta_out_str(o, "}");
  }
  ta_out_str(o, "]}\n");
}

/* Text: one "name value" per line, bytes as plain numbers so scripts can read it too. */
static void text_arena(const arena_snap_t *a, void *ctx) {
  ta_out_t *o = ((report_t *)ctx)->o;
  ta_out_str(o, "  arena ");
  ta_out_u(o, a->id);
  ta_out_str(o, " (");
  ta_out_str(o, state_name(a->state));
  ta_out_str(o, "): segments ");
  ta_out_u(o, a->origin[0].count + a->origin[1].count);
  ta_out_str(o, ", live ");
  ta_out_u(o, a->live_bytes);
  ta_out_str(o, " bytes in ");
  ta_out_u(o, a->live_blocks);
  ta_out_str(o, " blocks, committed ");
  ta_out_u(o, snap_committed(a));
  ta_out_str(o, ", resident ");
  ta_out_u(o, snap_resident(a));
  ta_out_str(o, ", fragmentation ");
  ta_out_frac(o, snap_frag(a));
  ta_out_str(o, "\n");
}

static void text_report(ta_out_t *o) {
  report_t r = {.o = o};
  walk_t w = {.each_arena = text_arena, .ctx = &r};
  ta_out_str(o, "tamalloc statistics\n");
  walk(&w);
  size_t large_blocks, large_bytes, purged, calls;
  ta_large_totals(&large_blocks, &large_bytes);
  ta_seg_trim_totals(&purged, &calls);
  ta_out_str(o, "arenas: ");
  ta_out_u(o, ta_arena_count());
  ta_out_str(o, " created, ");
  ta_out_u(o, w.pooled);
  ta_out_str(o, " pooled\nsegments: ");
  ta_out_u(o, w.total.origin[0].count + w.total.origin[1].count);
  ta_out_str(o, " (");
  ta_out_u(o, w.total.origin[0].count);
  ta_out_str(o, " brk, ");
  ta_out_u(o, w.total.origin[1].count);
  ta_out_str(o, " mmap), reserved ");
  ta_out_u(o, w.total.origin[0].reserved + w.total.origin[1].reserved);
  ta_out_str(o, ", committed ");
  ta_out_u(o, snap_committed(&w.total));
  ta_out_str(o, ", resident ");
  ta_out_u(o, snap_resident(&w.total));
  ta_out_str(o, " bytes\nlive: ");
  ta_out_u(o, w.total.live_bytes);
  ta_out_str(o, " bytes in ");
  ta_out_u(o, w.total.live_blocks);
  ta_out_str(o, " blocks\nlarge: ");
  ta_out_u(o, large_blocks);
  ta_out_str(o, " blocks, ");
  ta_out_u(o, large_bytes);
  ta_out_str(o, " bytes mapped, ");
  ta_out_u(o, ta_large_cached_bytes());
  ta_out_str(o, " bytes retained for reuse\nfragmentation: ");
  ta_out_frac(o, snap_frag(&w.total));
  ta_out_str(o, " of resident segment memory holds no live block\ntrim: ");
  ta_out_u(o, purged);
  ta_out_str(o, " bytes released in ");
  ta_out_u(o, calls);
  ta_out_str(o, " calls\nevents: ");
  ta_out_u(o, atomic_load(&ta_segment_grows));
  ta_out_str(o, " segment grows, ");
  ta_out_u(o, atomic_load(&ta_remote_collected));
  ta_out_str(o, " remote frees collected, ");
  ta_out_u(o, atomic_load(&ta_arena_adoptions));
  ta_out_str(o, " arena adoptions\nclasses (size: live blocks):");
  for (unsigned c = 0; c < TA_CLASSES; c++) {
    if (w.total.cls_live[c] == 0) continue;
    ta_out_str(o, " ");
    ta_out_u(o, ta_class_size(c));
    ta_out_str(o, ":");
    ta_out_u(o, w.total.cls_live[c]);
  }
  ta_out_str(o, "\n");
}

static void map_segment(const arena_snap_t *a, const seg_rec_t *s, size_t resident, void *ctx) {
  ta_out_t *o = ((report_t *)ctx)->o;
  uint64_t all = ta_units_below(s->mapped);
  unsigned free_n = ta_units_count(s->free_units & all);
  unsigned dirty_n = ta_units_count(s->dirty_units & s->free_units & all);
  unsigned used_n = ta_units_count(all & ~s->free_units) + 1; /* + the header */
  ta_out_str(o, "segment ");
  ta_out_hex(o, s->addr);
  ta_out_str(o, "-");
  ta_out_hex(o, s->addr + (size_t)s->mapped * TA_UNIT_SIZE);
  ta_out_str(o, s->origin == TA_SEG_BRK ? " brk" : " mmap");
  ta_out_str(o, " arena ");
  ta_out_u(o, a->id);
  ta_out_str(o, " units in_use ");
  ta_out_u(o, used_n);
  ta_out_str(o, " free ");
  ta_out_u(o, dirty_n);
  ta_out_str(o, " purged ");
  ta_out_u(o, free_n - dirty_n);
  ta_out_str(o, " unmapped ");
  ta_out_u(o, TA_UNITS - s->mapped);
  ta_out_str(o, " resident ");
  ta_out_u(o, resident);
  ta_out_str(o, "\n");
}

static void map_report(ta_out_t *o) {
  report_t r = {.o = o};
  walk_t w = {.each_seg = map_segment, .ctx = &r};
  ta_out_str(o, "tamalloc heap map (64 KiB units)\n");
  walk(&w);
  size_t n = ta_large_snapshot(NULL, 0);
  size_t cap = n + 64, bytes = ta_align_up(cap * sizeof(ta_large_info_t), TA_PAGE);
  ta_large_info_t *info = ta_os_map(bytes);
  if (info == NULL) return;
  n = ta_large_snapshot(info, cap);
  for (size_t i = 0; i < n && i < cap; i++) {
    ta_out_str(o, "large ");
    ta_out_hex(o, info[i].ptr);
    ta_out_str(o, " size ");
    ta_out_u(o, info[i].map_size - (info[i].ptr - info[i].map_start));
    ta_out_str(o, " mapping ");
    ta_out_hex(o, info[i].map_start);
    ta_out_str(o, "-");
    ta_out_hex(o, info[i].map_start + info[i].map_size);
    ta_out_str(o, "\n");
  }
  ta_os_unmap(info, bytes);
}

/* Sinks: a FILE (through a stack buffer, so stdio sees whole chunks) or a file descriptor. */
static void file_flush(void *ctx, const char *text, size_t len) { fwrite(text, 1, len, (FILE *)ctx); }

/* stdio's writes are cancellation points, and no allocator entry point may act on a cancel request:
 * the report is written whole with cancellation disabled, and a pending request waits for the
 * caller's next cancellation point. (The fd sink needs no such guard: it is a raw system call.) */
static void to_file(FILE *f, void (*report)(ta_out_t *)) {
  int cancel_state;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
  char buf[4096];
  ta_out_t o = {.buf = buf, .cap = sizeof buf, .flush = file_flush, .ctx = f};
  report(&o);
  ta_out_finish(&o);
  fflush(f);
  pthread_setcancelstate(cancel_state, NULL);
}

static void to_fd(int fd, void (*report)(ta_out_t *)) {
  char buf[4096];
  ta_out_t o = {.buf = buf, .cap = sizeof buf, .flush = ta_out_fd_flush, .ctx = (void *)(intptr_t)fd};
  report(&o);
  ta_out_finish(&o);
}

void ta_stats_print(FILE *out) { to_file(out, text_report); }
void ta_heap_map(FILE *out) { to_file(out, map_report); }

size_t ta_stats_json(char *buf, size_t len) {
  char dummy;
  ta_out_t o = {.buf = len ? buf : &dummy, .cap = len ? len : 1};
  json_report(&o);
  ta_out_finish(&o);
  return o.total;
}

void ta_stats_malloc_stats(void) { to_fd(2, text_report); }

struct mallinfo2 ta_stats_mallinfo2(void) {
  walk_t w = {0};
  walk(&w);
  size_t large_blocks, large_bytes;
  ta_large_totals(&large_blocks, &large_bytes);
  struct mallinfo2 mi = {0};
  size_t free_chunks = 0;
  for (unsigned c = 0; c < TA_CLASSES; c++) free_chunks += w.total.cls_free[c];
  mi.arena = snap_committed(&w.total);
  mi.ordblks = free_chunks;
  mi.hblks = large_blocks;
  mi.hblkhd = large_bytes;
  mi.uordblks = w.total.live_bytes;
  mi.fordblks = mi.arena > mi.uordblks ? mi.arena - mi.uordblks : 0;
  mi.keepcost = w.total.keepcost;
  return mi;
}

/* glibc's malloc_info shape: per heap, the free blocks by size; then totals. */
static void xml_attr(ta_out_t *o, const char *name, unsigned long long v) {
  ta_out_str(o, " ");
  ta_out_str(o, name);
  ta_out_str(o, "=\"");
  ta_out_u(o, v);
  ta_out_str(o, "\"");
}

static void xml_heap(const arena_snap_t *a, void *ctx) {
  ta_out_t *o = ((report_t *)ctx)->o;
  ta_out_str(o, "<heap");
  xml_attr(o, "nr", a->id);
  ta_out_str(o, ">\n<sizes>\n");
  size_t free_count = 0, free_bytes = 0;
  for (unsigned c = 0; c < TA_CLASSES; c++) {
    if (a->cls_free[c] == 0) continue;
    ta_out_str(o, "  <size");
    xml_attr(o, "from", c ? ta_class_size(c - 1) + 1 : 1);
    xml_attr(o, "to", ta_class_size(c));
    xml_attr(o, "total", a->cls_free[c] * ta_class_size(c));
    xml_attr(o, "count", a->cls_free[c]);
    ta_out_str(o, "/>\n");
    free_count += a->cls_free[c];
    free_bytes += a->cls_free[c] * ta_class_size(c);
  }
  ta_out_str(o, "</sizes>\n<total type=\"fast\" count=\"0\" size=\"0\"/>\n<total type=\"rest\"");
  xml_attr(o, "count", free_count);
  xml_attr(o, "size", free_bytes);
  ta_out_str(o, "/>\n<system type=\"current\"");
  xml_attr(o, "size", snap_committed(a));
  ta_out_str(o, "/>\n<system type=\"max\"");
  xml_attr(o, "size", snap_committed(a));
  ta_out_str(o, "/>\n<aspace type=\"total\"");
  xml_attr(o, "size", a->origin[0].reserved + a->origin[1].reserved);
  ta_out_str(o, "/>\n<aspace type=\"mprotect\"");
  xml_attr(o, "size", a->origin[0].reserved + a->origin[1].reserved);
  ta_out_str(o, "/>\n</heap>\n");
}

static void xml_report(ta_out_t *o) {
  report_t r = {.o = o};
  walk_t w = {.each_arena = xml_heap, .ctx = &r};
  ta_out_str(o, "<malloc version=\"1\">\n");
  walk(&w);
  size_t large_blocks, large_bytes, free_count = 0, free_bytes = 0;
  ta_large_totals(&large_blocks, &large_bytes);
  for (unsigned c = 0; c < TA_CLASSES; c++) {
    free_count += w.total.cls_free[c];
    free_bytes += w.total.cls_free[c] * ta_class_size(c);
  }
  ta_out_str(o, "<total type=\"fast\" count=\"0\" size=\"0\"/>\n<total type=\"rest\"");
  xml_attr(o, "count", free_count);
  xml_attr(o, "size", free_bytes);
  ta_out_str(o, "/>\n<total type=\"mmap\"");
  xml_attr(o, "count", large_blocks);
  xml_attr(o, "size", large_bytes);
  ta_out_str(o, "/>\n<system type=\"current\"");
  xml_attr(o, "size", snap_committed(&w.total));
  ta_out_str(o, "/>\n<system type=\"max\"");
  xml_attr(o, "size", snap_committed(&w.total));
  ta_out_str(o, "/>\n<aspace type=\"total\"");
  xml_attr(o, "size", w.total.origin[0].reserved + w.total.origin[1].reserved);
  ta_out_str(o, "/>\n<aspace type=\"mprotect\"");
  xml_attr(o, "size", w.total.origin[0].reserved + w.total.origin[1].reserved);
  ta_out_str(o, "/>\n</malloc>\n");
}

int ta_stats_malloc_info(int options, FILE *out) {
  if (options != 0) return -1;
  to_file(out, xml_report);
  return 0;
}

/* TAMALLOC_STATS: the report at exit, straight to stderr. */
__attribute__((destructor)) static void stats_at_exit(void) {
  switch (ta_config.stats_at_exit) {
    case TA_STATS_TEXT: to_fd(2, text_report); break;
    case TA_STATS_JSON: to_fd(2, json_report); break;
    case TA_STATS_MAP: to_fd(2, map_report); break;
    default: break;
  }
}
