/* The arena layer's statistics (contract in census.h): read-only walks of an arena's segments and
 * pages. The owners' fields are read without their cooperation: word-sized reads of fields whose
 * every value is meaningful, under seg_lock, which keeps the segments mapped while they are read;
 * so these functions are exempt from ThreadSanitizer. */
#include "arenas/census.h"

#include <string.h>

/* Blocks on a page's remote list, followed only while each link names a block the page carved;
 * bounded by the page's capacity, so a list being pushed onto, or corrupt, cannot run away. */
__attribute__((no_sanitize("thread"))) static size_t page_pending(const ta_page_t *page) {
  uintptr_t w = atomic_load_explicit(&page->xfree, memory_order_acquire) & ~TA_XFREE_FULL;
  size_t n = 0;
  for (const ta_block_t *b = (const ta_block_t *)w; b != NULL && n < page->capacity; n++) {
    if (!ta_page_has_block(page, b)) break;
    b = ta_link_decode(b->next_enc);
  }
  return n;
}

/* seg_lock held: the live blocks of one segment's spans; `owner`: less those on remote lists. */
__attribute__((no_sanitize("thread"))) static void count_spans(ta_segment_t *seg, bool owner, ta_arena_census_t *c) {
  for (unsigned u = 1; u < seg->mapped_units; u++) {
    if (seg->unit_span[u] != u * sizeof(ta_page_t)) continue; /* not a span's first unit */
    const ta_page_t *page = &seg->pages[u];
    uint32_t bs = page->block_size, cap = (uint32_t)page->capacity;
    unsigned cls = page->cls;
    if (bs == 0 || cls >= TA_CLASSES) continue;
    uint32_t live = page->in_full ? page->parked_live : page->used & (TA_PAGE_CURRENT_BIAS - 1);
    if (live > cap) live = cap;
    if (owner) {
      size_t pending = page_pending(page);
      live = pending < live ? live - (uint32_t)pending : 0;
    }
    c->cls_live[cls] += live;
    c->cls_free[cls] += cap - live;
    c->live_blocks += live;
    c->live_bytes += (size_t)live * bs;
  }
}

/* seg_lock held, as the arena's owner for the moment: the arena's remote list (blocks freed into
 * pages it had parked) counts free. Links are followed while they name a carved block of a live
 * page of the arena, and at most a bounded number of steps. */
__attribute__((no_sanitize("thread"))) static void count_arena_list(ta_arena_t *arena, ta_arena_census_t *c) {
  const ta_block_t *b = (const ta_block_t *)atomic_load_explicit(&arena->xfree, memory_order_acquire);
  for (size_t steps = 0; b != NULL && steps < ((size_t)1 << 24); steps++) {
    ta_page_t *page = ta_arena_listed_page(arena, b);
    if (page == NULL) break;
    unsigned cls = page->cls;
    if (c->cls_live[cls] > 0) {
      c->cls_live[cls]--;
      c->cls_free[cls]++;
      c->live_blocks--;
      c->live_bytes -= page->block_size;
    }
    b = ta_link_decode(b->next_enc);
  }
}

size_t ta_arena_census_segments(ta_arena_t *arena) {
  if (arena->tainted) return 0;
  size_t n = 0;
  ta_lock(&arena->seg_lock);
  for (int list = 0; list < 2; list++)
    for (ta_segment_t *s = list ? arena->full_segments : arena->segments; s; s = s->next) n++;
  ta_unlock(&arena->seg_lock);
  return n;
}

typedef struct {
  ta_arena_census_t *out;
  ta_seg_census_t *segs;
  size_t cap, n;
} census_t;

static void census_visit(ta_arena_t *arena, bool owner, void *ctx) {
  census_t *k = ctx;
  ta_arena_census_t *c = k->out;
  /* An arena another thread owns: as its collector for the moment (arena.c), its remote lists hold
   * still and count free; if its owner is in a slow path, they count live (the owner is collecting
   * them). */
  bool claimed = !owner && ta_arena_collector_claim(arena, false);
  owner |= claimed;
  ta_lock(&arena->seg_lock);
  for (int list = 0; list < 2; list++) {
    for (ta_segment_t *s = list ? arena->full_segments : arena->segments; s; s = s->next) {
      count_spans(s, owner, c);
      if (s->origin == TA_SEG_BRK && ta_seg_is_brk_top(s)) {
        uint64_t in_use = (ta_units_below(s->mapped_units) & ~s->free_units) | 1;
        unsigned used_end = 64u - (unsigned)__builtin_clzll(in_use);
        c->keepcost += (size_t)(s->mapped_units - used_end) * TA_UNIT_SIZE;
      }
      if (k->n < k->cap)
        k->segs[k->n++] = (ta_seg_census_t){.addr = (uintptr_t)s, .free_units = s->free_units,
                                            .dirty_units = s->dirty_units, .mapped = s->mapped_units,
                                            .origin = s->origin};
    }
  }
  if (owner) count_arena_list(arena, c);
  ta_unlock(&arena->seg_lock);
  if (claimed) ta_arena_collector_release(arena);
}

size_t ta_arena_census(ta_arena_t *arena, ta_arena_census_t *out, ta_seg_census_t *segs, size_t cap) {
  memset(out, 0, sizeof *out);
  out->id = arena->id;
  out->state = __atomic_load_n(&arena->state, __ATOMIC_RELAXED);
  /* A fork child's arena whose lists may be half edited is reported without its segments. */
  if (arena->tainted) return 0;
  census_t k = {.out = out, .segs = segs, .cap = cap};
  ta_arena_visit(arena, census_visit, &k);
  return k.n;
}
