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

static bool bit_get(const uint64_t *bits, size_t i) { return (bits[i / 64] >> (i % 64)) & 1; }
static void bit_set(uint64_t *bits, size_t i) { bits[i / 64] |= (uint64_t)1 << (i % 64); }

/* OS page k of the span (purged_os of the descriptor of the unit that holds it). */
static uint16_t *purged_word(ta_page_t *page, size_t k) {
  return &page[k / (TA_UNIT_SIZE / TA_PAGE)].purged_os; /* descriptors are indexed by unit */
}
static bool purged_get(ta_page_t *page, size_t k) { return (*purged_word(page, k) >> (k % (TA_UNIT_SIZE / TA_PAGE))) & 1; }
static void purged_set(ta_page_t *page, size_t k) {
  *purged_word(page, k) |= (uint16_t)(1u << (k % (TA_UNIT_SIZE / TA_PAGE)));
}
_Static_assert(TA_UNIT_SIZE / TA_PAGE == 16, "purged_os holds a unit's OS pages");

void ta_page_purged_clear(ta_page_t *page) {
  for (unsigned u = 0; u < page->units; u++) page[u].purged_os = 0;
  page->has_purged = 0;
}

/* The descriptor's geometry for blocks of class cls in a span of `units` units: block size, the
 * divisibility constants of ta_page_has_block and ta_arena_page_checked, reserved. */
static void page_geometry(ta_page_t *page, unsigned cls, unsigned units) {
  size_t bs = ta_class_size(cls);
  page->block_size = (uint32_t)bs;
  unsigned shift = (unsigned)__builtin_ctzll(bs);
  uint64_t odd = bs >> shift, inv = odd; /* odd * odd = 1 mod 8: 3 bits, doubled by each step */
  for (int i = 0; i < 5; i++) inv *= 2 - odd * inv;
  page->inv = inv;
  page->shift = (uint8_t)shift;
  page->reserved = (uint32_t)((size_t)units * TA_UNIT_SIZE / bs);
  page->cls = (uint8_t)cls;
  page->units = (uint8_t)units;
}

void ta_page_reclass(ta_page_t *page, unsigned cls, unsigned units) {
  page_geometry(page, cls, units);
  page->capacity = 1;
  atomic_store_explicit(&page->carved_n, 1, memory_order_relaxed);
}

void ta_page_init(ta_page_t *page, ta_arena_t *arena, unsigned cls, unsigned units) {
  ta_segment_t *seg = ta_seg_of(page);
  page->free = NULL;
  page->used = 0;
  page->start = (uintptr_t)seg + (size_t)(page - seg->pages) * TA_UNIT_SIZE;
  page_geometry(page, cls, units);
  atomic_store_explicit(&page->carved_n, 0, memory_order_relaxed);
  page->parked_live = 0;
  page->arena = arena;
  atomic_store_explicit(&page->xfree, 0, memory_order_relaxed);
  page->capacity = 0;
  page->in_full = 0;
  page->retired_size = 0;
  page->next = page->prev = NULL;
  page->idle_mark = 0;
  page->has_purged = 0; /* a span that held these units before cleared their bits when it retired */
}

/* Carve the next stretch of never-used blocks onto the local list (which must be empty). Carving
 * lazily, TA_CARVE_BYTES at a time, keeps untouched parts of a span out of the resident set. */
uint64_t ta_page_carve_seed;

/* The n blocks from `first` linked as page's free list in an order drawn from the seed and the
 * blocks' address (a Fisher-Yates shuffle; xorshift64 steps), so the next mallocs of the class do
 * not come in address order. n is at most TA_CARVE_BYTES / TA_ALIGN. */
static void carve_shuffled(ta_page_t *page, char *first, uint32_t n) {
  uint16_t order[TA_CARVE_BYTES / TA_ALIGN];
  uint64_t x = (ta_page_carve_seed ^ (uintptr_t)first) | 1;
  for (uint32_t i = 0; i < n; i++) order[i] = (uint16_t)i;
  for (uint32_t i = n - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    uint32_t j = (uint32_t)(x % (i + 1));
    uint16_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  size_t bs = page->block_size;
  ta_block_t *next = NULL;
  for (uint32_t i = n; i-- > 0;) {
    ta_block_t *b = (ta_block_t *)(first + (size_t)order[i] * bs);
    b->next_enc = ta_link_encode(next);
    next = b;
  }
  page->free = next;
}

bool ta_page_extend(ta_page_t *page) {
  ta_assert(page->free == NULL);
  uint32_t left = page->reserved - page->capacity;
  if (left == 0) return false;
  size_t bs = page->block_size;
  uint32_t n = (uint32_t)(TA_CARVE_BYTES / bs);
  if (n == 0) n = 1;
  if (n > left) n = left;
  char *first = (char *)page->start + (size_t)page->capacity * bs;
  if (ta_unlikely(ta_page_carve_seed != 0)) {
    carve_shuffled(page, first, n);
  } else {
    char *b = first;
    for (uint32_t i = 0; i + 1 < n; i++, b += bs) ((ta_block_t *)b)->next_enc = ta_link_encode((ta_block_t *)(b + bs));
    ((ta_block_t *)b)->next_enc = ta_link_encode(NULL);
    page->free = (ta_block_t *)first;
  }
  page->capacity += n;
  atomic_store_explicit(&page->carved_n, page->capacity, memory_order_relaxed);
  return true;
}

/* The ghost head. A collector (arena.c) may release the OS page of the first block of a page's list
 * (it cannot unlink that block: the owner may be pushing onto it). It names the block the ghost:
 * walkers take the ghost's successor from ghost_next instead of from the block's link, which reads
 * zero now, and the ghost counts as off the list. The owner makes the list real again
 * (ta_page_unghost) before it pops from the page or parks it. */
/* The link stored in b, a block on one of page's lists, checked: a carved block of the page or NULL,
 * and no more than the page's blocks walked (a cycle). Aborts naming b otherwise. Every walk of a
 * page's list goes through this: a forged link is caught before it is followed or used as an index.
 * The list heads are trusted: the owner wrote them, or a remote free pushed a block that passed
 * ta_arena_page_checked. The ghost's link is ghost_next. Not instrumented for ThreadSanitizer: a
 * collector walks lists behind a running owner's back (page_purge_inside says why that is safe);
 * every other walk is ordered by arena->busy. */
__attribute__((no_sanitize("thread"))) static ta_block_t *list_next(const ta_page_t *page, const ta_block_t *b,
                                                                     uint32_t *steps) {
  ta_block_t *next = b == ta_page_ghost(page) ? ta_page_block_at(page, page->ghost_next) : ta_link_decode(b->next_enc);
  if (ta_unlikely((next != NULL && !ta_page_has_block(page, next)) || ++*steps > page->capacity))
    ta_page_corrupt(b);
  return next;
}

void ta_page_unghost(ta_page_t *page) {
  ta_block_t *ghost = ta_page_ghost(page);
  if (ghost == NULL) return;
  ta_block_t *after = ta_page_block_at(page, page->ghost_next);
  if (page->free == ghost) {
    page->free = after;
  } else {
    uint32_t steps = 0;
    ta_block_t *b = page->free;
    while (b != NULL && ta_link_decode(b->next_enc) != ghost) b = list_next(page, b, &steps);
    if (ta_unlikely(b == NULL)) ta_page_corrupt(ghost);
    b->next_enc = ta_link_encode(after);
  }
  page->ghost = page->ghost_next = 0;
}

/* The link after b on a page's xfree list (no ghost there), checked as list_next checks. */
static ta_block_t *xfree_next(const ta_page_t *page, const ta_block_t *b) {
  ta_block_t *next = ta_link_decode(b->next_enc);
  if (ta_unlikely(next != NULL && !ta_page_has_block(page, next))) ta_page_corrupt(b);
  return next;
}

_Noreturn void ta_page_xfree_overrun(const ta_page_t *page, const ta_block_t *head) {
  /* A block freed again by another thread while it already was on the list (a free of something
   * else between the two, so the second did not find it at the head) was linked to what had been
   * pushed since: the list loops back to it. Floyd's walk finds the block where the loop starts,
   * which is that block. A list that ends instead was forged. Each walk takes at most about three
   * times the page's capacity in steps before it meets or ends. */
  const ta_block_t *slow = head, *fast = head;
  do {
    slow = xfree_next(page, slow);
    fast = xfree_next(page, fast);
    if (fast != NULL) fast = xfree_next(page, fast);
    if (fast == NULL) ta_page_corrupt(head);
  } while (slow != fast);
  for (slow = head; slow != fast; fast = xfree_next(page, fast)) slow = xfree_next(page, slow);
  ta_fatal_ptr("free", "double free", slow);
}

/* Move the blocks other threads freed onto the front of the local list. A list longer than the
 * blocks the page has out holds one of them twice, or was forged: ta_page_xfree_overrun says which. */
bool ta_page_collect(ta_page_t *page) {
  ta_assert(!page->in_full);
  if (atomic_load_explicit(&page->xfree, memory_order_relaxed) == 0) return false;
  uintptr_t w = atomic_exchange_explicit(&page->xfree, 0, memory_order_acquire);
  ta_assert((w & TA_XFREE_FULL) == 0);
  ta_block_t *head = (ta_block_t *)w, *tail = NULL;
  uint32_t n = 0, steps = 0;
  uint32_t out = page->used & ~TA_PAGE_CURRENT_BIAS; /* blocks handed out and not freed by the owner */
  for (ta_block_t *b = head; b != NULL; n++) {
    if (TA_HARDENING && ta_unlikely(n == out)) ta_page_xfree_overrun(page, head);
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
  page->held_n = 0; /* the word was the idle mark */
  page->parked_live = page->used;
  page->used = 1;
  return true;
}

/* The owner freed a block into a parked page: used fell from 1 to 0 (see struct ta_page_s). */
static void page_unpark(ta_page_t *page) {
  atomic_fetch_and_explicit(&page->xfree, ~TA_XFREE_FULL, memory_order_acq_rel);
  page->in_full = 0;
  page->used = page->parked_live - 1;
  page->parked_live = 0; /* the word is the ghost's while not parked */
  ta_bin_push_tail(page->arena, page);
}

#define TA_BLOCKS_MAX (TA_UNIT_SIZE / 16)

/* Release the OS pages of a page that hold free blocks only. The blocks whose link (first word) lies
 * in a released OS page leave the free list and stay out of it (purged_os says which pages) until
 * ta_page_relist lists them again, when the page has nothing else to give: re-listing them at once
 * would mean writing links into the released memory. A free block that only extends over a
 * released OS page stays listed: nothing reads that part of it until it is handed out again.
 *
 * With `collector`, another thread does this for an owner that may be running (arena.c, the
 * collector protocol). The page is not current, so the owner's fast paths may only push a block it
 * frees onto the list: they write `free` and the pushed block's link (which names the old first
 * block), and read no link. So the first block seen stays first; links behind it are rewritten,
 * which nobody else reads or writes meanwhile; and if its OS pages hold only free blocks they are
 * released all the same, the block becoming the ghost head (see ta_page_unghost). A block the owner
 * pushes during the walk was live when the walk began, so the OS pages it overlaps are not released.
 * The owner writes a block's link before it publishes the block as the head (a compiler barrier
 * orders the two stores in ta_page_free_local; x86 keeps stores in order), so the head read here
 * has its link in place. Not instrumented for ThreadSanitizer: these reads of the owner's words race
 * with it by design. */
__attribute__((no_sanitize("thread"))) static size_t page_purge_inside(ta_page_t *page, bool collector) {
  if (!collector) ta_page_unghost(page);
  size_t bs = page->block_size;
  ta_block_t *head = __atomic_load_n(&page->free, __ATOMIC_RELAXED);
  if (head == NULL || page->capacity > TA_BLOCKS_MAX) return 0;
  ta_block_t *ghost = ta_page_ghost(page);
  /* The members of the list: from the head, the ghost (if any) skipped, wherever it is. */
  ta_block_t *first_member = head == ghost ? ta_page_block_at(page, page->ghost_next) : head;
  uint64_t free_bits[TA_BLOCKS_MAX / 64] = {0};
  uint32_t steps = 0;
  /* Every block on the list is a carved one (list_next), so its index is below capacity. */
  for (ta_block_t *b = first_member; b != NULL; b = list_next(page, b, &steps))
    if (b != ghost) bit_set(free_bits, ((uintptr_t)b - page->start) / bs);
  uint64_t purge[TA_SPAN_OS_PAGES / 64] = {0};
  /* Only OS pages wholly carved, unless the span is: one that the carved part ends inside gets
   * blocks written into it when the page is carved further, so ta_page_relist must never list
   * blocks there. */
  size_t carved = (size_t)page->capacity * bs;
  size_t npages = page->capacity == page->reserved ? (carved + TA_PAGE - 1) / TA_PAGE : carved / TA_PAGE;
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
  /* Relink the members in their order, without the blocks that touch a released OS page. A
   * block's link is read before it is rewritten (when the next kept block is found). The head of
   * a collector's walk stays first: kept, or made the ghost if its pages go. */
  bool head_pinned = collector && head != ghost;
  bool head_goes = false;
  if (head_pinned) {
    /* A head kept on the list keeps the OS page of its link. */
    size_t k0 = ((uintptr_t)head - page->start) / TA_PAGE;
    head_goes = bit_get(purge, k0);
    if (!head_goes) {
      purge[k0 / 64] &= ~((uint64_t)1 << (k0 % 64));
      any = false;
      for (size_t i = 0; i < TA_SPAN_OS_PAGES / 64; i++) any |= purge[i] != 0;
      if (!any) return 0;
    }
  }
  ta_block_t *first = NULL, *prev = head_pinned && !head_goes ? head : NULL;
  steps = 0;
  for (ta_block_t *b = head_pinned ? list_next(page, head, &steps) : first_member; b != NULL;) {
    ta_block_t *next = list_next(page, b, &steps);
    bool keep = b != ghost && !bit_get(purge, ((uintptr_t)b - page->start) / TA_PAGE);
    if (keep) {
      if (prev)
        prev->next_enc = ta_link_encode(b);
      else
        first = b;
      prev = b;
    }
    b = next;
  }
  if (prev) prev->next_enc = ta_link_encode(NULL);
  if (!collector) {
    page->free = first;
  } else if (head == ghost || head_goes) {
    /* The head stays in `free` (only the owner may change that word) but off the list. Any ghost
     * further down was bypassed by the relinking above. */
    page->ghost = (uint16_t)ta_page_index1(page, head);
    page->ghost_next = (uint16_t)ta_page_index1(page, first);
  } else {
    page->ghost = page->ghost_next = 0; /* the relinking bypassed any ghost behind the head */
  }
  for (size_t k = 0; k < npages; k++)
    if (bit_get(purge, k)) purged_set(page, k);
  page->has_purged = 1;
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

bool ta_page_relist(ta_page_t *page) {
  if (!page->has_purged) return false;
  ta_assert(ta_page_ghost(page) == NULL);
  size_t n = (size_t)page->units * (TA_UNIT_SIZE / TA_PAGE);
  size_t bs = page->block_size, cap = page->capacity;
  ta_block_t *list = page->free;
  for (size_t k = 0; k < n; k++) {
    if (!purged_get(page, k)) continue;
    /* The blocks whose first byte (their link) lies in OS page k. */
    for (size_t i = (k * TA_PAGE + bs - 1) / bs; i * bs < (k + 1) * TA_PAGE && i < cap; i++) {
      ta_block_t *b = (ta_block_t *)(page->start + i * bs);
      b->next_enc = ta_link_encode(list);
      list = b;
    }
  }
  ta_page_purged_clear(page);
  page->free = list;
  return list != NULL;
}

__attribute__((no_sanitize("thread"))) size_t ta_page_purge_idle(ta_page_t *page, bool all) {

  ta_block_t *head = __atomic_load_n(&page->free, __ATOMIC_RELAXED);
  uint32_t used = __atomic_load_n(&page->used, __ATOMIC_RELAXED);
  /* A fingerprint: a page that looks idle but is not only has pages released that it faults in
   * again; the protocol makes the purge safe either way. 0 is never a mark (a fresh page's). */
  uint32_t mark = (uint32_t)(((uintptr_t)head ^ ((uintptr_t)head >> 32)) * 0x9e3779b1u + used) | 1;
  bool idle = all || (head != NULL && mark == page->idle_mark);
  page->idle_mark = mark;
  return idle ? page_purge_inside(page, true) : 0;
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
  return deep ? page_purge_inside(page, false) : 0;
}

/* The owner's free brought used to 0: the page was parked, or it is empty and not current. */
static void page_free_slow(ta_page_t *page) {
  if (page->in_full) page_unpark(page);
  if (page->used == 0) page_retire(page, true);
}

void ta_page_free_slow(ta_page_t *page) {
  ta_arena_t *arena = page->arena;
  ta_arena_slow_enter(arena);
  page_free_slow(page);
  ta_arena_slow_leave(arena);
}

void ta_page_free_owned(ta_page_t *page, ta_block_t *block) {
  block->next_enc = ta_link_encode(page->free);
  page->free = block;
  if (--page->used == 0) page_free_slow(page);
}

void ta_page_retire_parked(ta_page_t *page, uint32_t now) {
  page->in_full = 0;
  page->used = 0;
  ta_seg_span_free(page, now);
}

/* A thread that does not own the page may read no list but the head word it pushes onto (the owner
 * may take the list and reuse its blocks at any moment), so a second free of a block is caught here
 * only while the block still heads that list; the owner catches the rest when it takes the lists in
 * (ta_arena_drain_xfree) or when it frees the block itself (ta_page_block_is_free). */
void ta_page_free_remote(ta_page_t *page, ta_block_t *block) {
  if (ta_unlikely(page->arena == atomic_load_explicit(&ta_prof_arena, memory_order_relaxed))) ta_prof_forget(block);
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
  ta_arena_t *arena = page->arena;
  ta_arena_slow_enter(arena);
  if (ta_page_block_is_free(page, block)) ta_fatal_ptr("free", "double free", block);
  /* Not on a list: user data that happened to look like a link. Free it for real. */
  ta_page_free_owned(page, block);
  ta_arena_slow_leave(arena);
}

void ta_page_corrupt(const void *where) {
  ta_fatal_ptr("malloc", "corrupted free list at", where);
}
