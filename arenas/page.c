/* Blocks inside a page: carving, the local list, and frees from other threads.
 *
 * The xfree protocol. Other threads never touch a page's local list. They push a freed block onto the
 * page's xfree word (a lock-free stack; only the owner takes from it, always the whole list with one
 * exchange, so there is no ABA). The owner collects it when its local list runs dry. A page whose
 * blocks are all out is "parked": the owner takes it out of its bin and sets TA_XFREE_FULL with a CAS
 * that succeeds only on an empty xfree word, so no remote free can be stranded on it. The first
 * remote free to meet TA_XFREE_FULL clears it (CAS) and pushes its block on the arena's xfree list
 * instead: that is the owner's notice that the page has room again. Later remote frees go on the
 * page's own word as usual. Memory orders: pushes are release, takes are acquire, so the links a
 * pusher wrote are visible to the owner that walks them. */
#include "arenas/page.h"

#include "src/os.h"
#include "arenas/trim.h"

_Atomic size_t ta_remote_collected; /* blocks freed by other threads that owners took back */
static uint8_t class_units[TA_CLASSES]; /* span length per class, filled by ta_page_units_init */

/* Units per span for a class: the fewest that waste at most an eighth of the span. */
static unsigned units_compute(unsigned cls) {
  size_t bs = ta_class_size(cls);
  for (unsigned k = 1; k <= TA_SPAN_MAX_UNITS; k++) {
    size_t span = (size_t)k * TA_UNIT_SIZE;
    if (span >= bs && span % bs <= span / 8) return k;
  }
  return TA_SPAN_MAX_UNITS;
}

unsigned ta_page_units_for(unsigned cls) {
  unsigned k = __atomic_load_n(&class_units[cls], __ATOMIC_RELAXED);
  if (ta_unlikely(k == 0)) {
    k = units_compute(cls);
    __atomic_store_n(&class_units[cls], (uint8_t)k, __ATOMIC_RELAXED);
  }
  return k;
}

void ta_page_init(ta_page_t *page, ta_arena_t *arena, unsigned cls, unsigned units) {
  ta_segment_t *seg = ta_seg_of(page);
  size_t bs = ta_class_size(cls);
  page->free = NULL;
  page->used = 0;
  page->block_size = (uint32_t)bs;
  page->start = (uintptr_t)seg + (size_t)(page - seg->pages) * TA_UNIT_SIZE;
  page->recip = (((uint64_t)1 << TA_RECIP_SHIFT) + bs - 1) / bs;
  page->recip_hi = page->recip << (64 - TA_RECIP_SHIFT);
  unsigned shift = (unsigned)__builtin_ctzll(bs);
  uint64_t odd = bs >> shift, inv = odd; /* odd * odd = 1 mod 8: 3 bits, doubled by each step */
  for (int i = 0; i < 5; i++) inv *= 2 - odd * inv;
  page->inv = inv;
  page->shift = (uint8_t)shift;
  atomic_store_explicit(&page->carved, 0, memory_order_relaxed);
  page->parked_live = 0;
  page->arena = arena;
  atomic_store_explicit(&page->xfree, 0, memory_order_relaxed);
  page->capacity = 0;
  page->reserved = (uint32_t)((size_t)units * TA_UNIT_SIZE / bs);
  page->cls = (uint8_t)cls;
  page->units = (uint8_t)units;
  page->in_full = 0;
  page->retired_size = 0;
  page->next = page->prev = NULL;
}

/* Carve the next stretch of never-used blocks onto the local list (which must be empty). Carving
 * lazily, a few KiB at a time, keeps untouched parts of a span out of the resident set. */
#define TA_CARVE_BYTES ((size_t)8192)
bool ta_page_extend(ta_page_t *page) {
  ta_assert(page->free == NULL);
  uint32_t left = page->reserved - page->capacity;
  if (left == 0) return false;
  size_t bs = page->block_size;
  uint32_t n = (uint32_t)(TA_CARVE_BYTES / bs);
  if (n == 0) n = 1;
  if (n > left) n = left;
  char *first = (char *)page->start + (size_t)page->capacity * bs;
  char *b = first;
  for (uint32_t i = 0; i + 1 < n; i++, b += bs) ((ta_block_t *)b)->next_enc = ta_link_encode((ta_block_t *)(b + bs));
  ((ta_block_t *)b)->next_enc = ta_link_encode(NULL);
  page->free = (ta_block_t *)first;
  page->capacity += n;
  atomic_store_explicit(&page->carved, (uint64_t)page->capacity * bs, memory_order_relaxed);
  return true;
}

/* The link stored in b, a block on one of page's lists, checked: a carved block of the page or NULL,
 * and no more than the page's blocks walked (a cycle). Aborts naming b otherwise. Every walk of a
 * page's list goes through this: a forged link is caught before it is followed or used as an index.
 * The list heads are trusted: the owner wrote them, or a remote free pushed a block that passed
 * ta_arena_page_checked. */
static ta_block_t *list_next(const ta_page_t *page, const ta_block_t *b, uint32_t *steps) {
  ta_block_t *next = ta_link_decode(b->next_enc);
  if (ta_unlikely((next != NULL && !ta_page_has_block(page, next)) || ++*steps > page->capacity))
    ta_page_corrupt(b);
  return next;
}

/* Move the blocks other threads freed onto the front of the local list. */
bool ta_page_collect(ta_page_t *page) {
  ta_assert(!page->in_full);
  if (atomic_load_explicit(&page->xfree, memory_order_relaxed) == 0) return false;
  uintptr_t w = atomic_exchange_explicit(&page->xfree, 0, memory_order_acquire);
  ta_assert((w & TA_XFREE_FULL) == 0);
  ta_block_t *head = (ta_block_t *)w, *tail = NULL;
  uint32_t n = 0, steps = 0;
  for (ta_block_t *b = head; b != NULL; n++) {
    tail = b;
    b = TA_HARDENING ? list_next(page, b, &steps) : ta_link_decode(b->next_enc);
  }
  ta_assert(n <= page->used);
  atomic_fetch_add_explicit(&ta_remote_collected, n, memory_order_relaxed);
  tail->next_enc = ta_link_encode(page->free);
  page->used -= n;
  page->free = head;
  return true;
}

/* Park a page whose blocks are all out: true if parked, false if remote frees arrived first. */
bool ta_page_try_park(ta_page_t *page) {
  uintptr_t expect = 0;
  if (!atomic_compare_exchange_strong_explicit(&page->xfree, &expect, TA_XFREE_FULL,
                                               memory_order_acq_rel, memory_order_relaxed))
    return false;
  page->in_full = 1;
  page->parked_live = page->used;
  page->used = 1;
  return true;
}

/* The owner freed a block into a parked page: used fell from 1 to 0 (see struct ta_page_s). */
static void page_unpark(ta_page_t *page) {
  atomic_fetch_and_explicit(&page->xfree, ~TA_XFREE_FULL, memory_order_acq_rel);
  page->in_full = 0;
  page->used = page->parked_live - 1;
  ta_bin_push(page->arena, page);
}

#define TA_OS_PAGES_MAX (TA_SPAN_MAX_UNITS * TA_UNIT_SIZE / TA_PAGE)
#define TA_BLOCKS_MAX (TA_UNIT_SIZE / 16)

static bool bit_get(const uint64_t *bits, size_t i) { return (bits[i / 64] >> (i % 64)) & 1; }
static void bit_set(uint64_t *bits, size_t i) { bits[i / 64] |= (uint64_t)1 << (i % 64); }

/* Release the OS pages of a page that hold free blocks only. Their blocks leave the free list and
 * stay out of it until the whole page is empty and goes back to its segment: re-listing them would
 * mean writing links into the released memory, and telling them apart from a block freed twice. */
static size_t page_purge_inside(ta_page_t *page) {
  size_t bs = page->block_size;
  if (page->free == NULL || page->capacity > TA_BLOCKS_MAX) return 0;
  uint64_t free_bits[TA_BLOCKS_MAX / 64] = {0};
  uint32_t steps = 0;
  /* Every block on the list is a carved one (list_next), so its index is below capacity. */
  for (ta_block_t *b = page->free; b != NULL; b = list_next(page, b, &steps))
    bit_set(free_bits, ((uintptr_t)b - page->start) / bs);
  uint64_t purge[TA_OS_PAGES_MAX / 64] = {0};
  size_t carved = atomic_load_explicit(&page->carved, memory_order_relaxed);
  size_t npages = (carved + TA_PAGE - 1) / TA_PAGE;
  bool any = false;
  for (size_t k = 0; k < npages; k++) {
    size_t lo = k * TA_PAGE, hi = (k + 1) * TA_PAGE < carved ? (k + 1) * TA_PAGE : carved;
    bool all_free = true;
    for (size_t i = lo / bs; i <= (hi - 1) / bs && all_free; i++) all_free = bit_get(free_bits, i);
    if (all_free) {
      bit_set(purge, k);
      any = true;
    }
  }
  if (!any) return 0;
  /* Rebuild the list in its order, without the blocks that touch a released OS page. */
  ta_block_t *head = NULL, **link_to = &head;
  ta_block_t *b = page->free;
  while (b != NULL) {
    ta_block_t *next = ta_link_decode(b->next_enc);
    size_t off = (uintptr_t)b - page->start;
    bool keep = true;
    for (size_t k = off / TA_PAGE; k <= (off + bs - 1) / TA_PAGE && keep; k++) keep = !bit_get(purge, k);
    if (keep) {
      *link_to = b;
      link_to = (ta_block_t **)&b->next_enc;
    }
    b = next;
  }
  *link_to = NULL;
  /* Links were stored raw above; encode them now that the list is final. */
  for (ta_block_t *c = head; c != NULL;) {
    ta_block_t *next = (ta_block_t *)c->next_enc;
    c->next_enc = ta_link_encode(next);
    c = next;
  }
  page->free = head;
  size_t released = 0;
  for (size_t k = 0; k < npages;) {
    if (!bit_get(purge, k)) {
      k++;
      continue;
    }
    size_t from = k;
    while (k < npages && bit_get(purge, k)) k++;
    if (ta_os_purge((char *)page->start + from * TA_PAGE, (k - from) * TA_PAGE))
      released += (k - from) * TA_PAGE;
  }
  return released;
}

/* The page goes back to its segment. `schedule`: the owner's free emptied it, so the arena notes
 * that a purge may be due (not when collecting). */
static void page_retire(ta_page_t *page, bool schedule) {
  ta_arena_t *arena = page->arena;
  ta_bin_remove(arena, page);
  uint32_t now = ta_trim_clock();
  ta_seg_span_free(page, now);
  if (schedule) ta_arena_span_freed(arena, now);
}

size_t ta_page_trim(ta_page_t *page, bool deep) {
  ta_page_collect(page);
  if (page->used == 0) {
    page_retire(page, false);
    return 0;
  }
  return deep ? page_purge_inside(page) : 0;
}

/* The owner's free brought used to 0: the page was parked, or it is empty and not current. */
void ta_page_free_slow(ta_page_t *page) {
  ta_busy_enter();
  if (page->in_full) page_unpark(page);
  if (page->used == 0) page_retire(page, true);
  ta_busy_leave();
}

/* A thread that does not own the page may read no list but the head word it pushes onto (the owner
 * may take the list and reuse its blocks at any moment), so a second free of a block is caught here
 * only while the block still heads that list; the owner catches the rest when it takes the lists in
 * (ta_arena_drain_xfree) or when it frees the block itself (ta_page_block_is_free). */
void ta_page_free_remote(ta_page_t *page, ta_block_t *block) {
  uintptr_t w = atomic_load_explicit(&page->xfree, memory_order_relaxed);
  for (;;) {
    if (ta_unlikely(w & TA_XFREE_FULL)) {
      /* Parked: take on the duty of telling the owner, through the arena's list. */
      if (atomic_compare_exchange_weak_explicit(&page->xfree, &w, 0, memory_order_relaxed,
                                                memory_order_relaxed)) {
        ta_arena_t *arena = page->arena;
        uintptr_t head = atomic_load_explicit(&arena->xfree, memory_order_relaxed);
        do {
          if (TA_HARDENING && ta_unlikely(head == (uintptr_t)block))
            ta_fatal_ptr("free", "double free", block);
          block->next_enc = ta_link_encode((ta_block_t *)head);
        } while (!atomic_compare_exchange_weak_explicit(&arena->xfree, &head, (uintptr_t)block,
                                                        memory_order_release, memory_order_relaxed));
        return;
      }
    } else {
      if (TA_HARDENING && ta_unlikely(w == (uintptr_t)block)) ta_fatal_ptr("free", "double free", block);
      block->next_enc = ta_link_encode((ta_block_t *)w);
      if (atomic_compare_exchange_weak_explicit(&page->xfree, &w, (uintptr_t)block,
                                                memory_order_release, memory_order_relaxed))
        return;
    }
  }
}

/* Whether block is on list, one of page's. Bounded by the page's capacity (list_next), so a
 * corrupted list cannot make the search run forever. */
static bool list_find(ta_page_t *page, ta_block_t *list, const ta_block_t *block) {
  uint32_t steps = 0;
  for (ta_block_t *b = list; b != NULL; b = list_next(page, b, &steps))
    if (b == block) return true;
  return false;
}

/* Whether block is on the arena's xfree list. Its blocks belong to any page of the arena, so no
 * page's capacity bounds the walk: a cycle is caught instead by Brent's method (a node is
 * remembered after 1, 2, 4, ... steps; once that lap is as long as the cycle, the walk comes back to
 * it). The owner's exchange is the only take, so the walk from a loaded head is undisturbed by
 * remote pushes. */
static bool arena_list_find(ta_arena_t *arena, const ta_block_t *block) {
  const ta_block_t *mark = NULL;
  size_t steps = 0, lap = 1;
  ta_block_t *b = (ta_block_t *)atomic_load_explicit(&arena->xfree, memory_order_acquire);
  while (b != NULL) {
    if (b == block) return true;
    ta_block_t *next = ta_link_decode(b->next_enc);
    if (next != NULL && (next == mark || ta_arena_listed_page(arena, next) == NULL)) ta_page_corrupt(b);
    if (++steps == lap) {
      mark = b;
      steps = 0;
      lap *= 2;
    }
    b = next;
  }
  return false;
}

/* Whether block is free already: on the page's local list, its xfree list, or the arena's (where a
 * remote free goes while the page is parked, and may stay after the owner unparked it). Only the
 * owner calls this, so the lists are stable except for pushes at the xfree heads, which do not
 * disturb a walk from an older head. */
bool ta_page_block_is_free(ta_page_t *page, const void *block) {
  uintptr_t w = atomic_load_explicit(&page->xfree, memory_order_acquire) & ~TA_XFREE_FULL;
  return list_find(page, page->free, block) || list_find(page, (ta_block_t *)w, block) ||
         arena_list_find(page->arena, block);
}

/* The block's first word looks like a free-list link: it is a double free if the block is free. */
void ta_page_free_suspect(ta_page_t *page, ta_block_t *block) {
  if (ta_page_block_is_free(page, block)) ta_fatal_ptr("free", "double free", block);
  /* Not on a list: user data that happened to look like a link. Free it for real. */
  block->next_enc = 0;
  ta_page_free_local(page, block);
}

void ta_page_corrupt(const void *where) {
  ta_fatal_ptr("malloc", "corrupted free list at", where);
}
