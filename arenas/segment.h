/* Heap segments, the pages (spans) inside them, and the segment map.
 *
 * Finding metadata from a pointer (the rule every free relies on):
 *  - A segment is TA_SEGMENT_SIZE (4 MiB) bytes aligned to its size, so p & ~(TA_SEGMENT_SIZE - 1) is
 *    the header of the segment that would hold p.
 *  - Whether that header is ours is answered by the segment map, one byte per 4 MiB slot of the
 *    TA_ADDRESS_BITS-bit user address space (47: src/os.h says how that is checked) (32 MiB of zero-initialised .bss the kernel commits only where written):
 *    nonzero exactly while a segment of ours occupies the slot. So free() reads no memory it does not
 *    own before it knows the pointer is inside a segment.
 *  - A segment is TA_UNITS (64) units of 64 KiB. Unit 0 holds the header below; each other unit is
 *    free or belongs to one span (1..16 units) that holds blocks of one size class. unit_span[u] is
 *    the byte offset, from pages[0], of the descriptor of the span holding unit u: its first unit's.
 *    A free unit keeps naming the descriptor of the span it last belonged to, now retired (nothing
 *    carved: it rejects every pointer, but remembers its block size, so a second free of one of its
 *    blocks is named a double free), or pages[0] (the header's, never live) if it never belonged to
 *    one. That descriptor may since head a newer, shorter span that does not reach the unit (or the
 *    same span, shrunk in place by realloc: arenas/resize.c); its carved bound, which ends inside
 *    that span, still rejects every pointer into the unit. A span that grows in place
 *    (arenas/resize.c) takes free units right after it and names itself in their unit_span first. A byte
 *    offset rather than an index spares the free path a multiplication.
 *  - Pointers outside every segment are either large blocks, found in the registry of src/large.c,
 *    or not ours at all.
 *
 * Ownership: a segment, its free-unit mask and every page in it belong to one arena. The owner thread
 * of that arena changes them without locks; other threads touch only a page's xfree word and the
 * arena's xfree list (see arenas/page.h). */
#ifndef TA_SEGMENT_H
#define TA_SEGMENT_H

#include <stdatomic.h>

#include "src/common.h"
#include "src/os.h"
#include "src/secret.h"
#include "arenas/sizeclass.h"

#pragma GCC visibility push(hidden)

#define TA_SEGMENT_SHIFT 22
#define TA_SEGMENT_SIZE ((size_t)1 << TA_SEGMENT_SHIFT)
#define TA_UNIT_SHIFT 16
#define TA_UNIT_SIZE ((size_t)1 << TA_UNIT_SHIFT)
#define TA_UNITS (TA_SEGMENT_SIZE / TA_UNIT_SIZE)
#define TA_SPAN_MAX_UNITS 16 /* a span never exceeds 1 MiB: the largest class fits one block */
#define TA_SEGMAP_SLOTS ((size_t)1 << (TA_ADDRESS_BITS - TA_SEGMENT_SHIFT))
#define TA_SPAN_OS_PAGES (TA_SPAN_MAX_UNITS * TA_UNIT_SIZE / TA_PAGE) /* OS pages in the longest span */

typedef struct ta_arena_s ta_arena_t;
typedef struct ta_segment_s ta_segment_t;
typedef struct ta_page_s ta_page_t;

/* A free block: its first word links to the next free block, encoded (ta_link_encode). */
typedef struct ta_block_s {
  uintptr_t next_enc; /* encoded pointer to the next free block, or the encoding of NULL */
} ta_block_t;

/* How xfree, the word other threads push freed blocks onto, is packed: a block address (16-byte
 * aligned, so its low bits are free) or'ed with flags. */
#define TA_XFREE_FULL ((uintptr_t)1) /* the owner parked the page as full; the list is then empty */

/* A span of units serving one size class (called a page below).
 * Invariants, for a live page:
 *   live = blocks handed out and not yet back on `free` (blocks on the xfree lists count as live
 *          until the owner collects them);
 *   used = live + (TA_PAGE_CURRENT_BIAS if current)   when not parked,
 *   used = 1 and parked_live = live                    while parked (in_full == 1),
 *   so the owner's free fast path needs one test, --used == 0, to catch both a page that became
 *   empty and a parked page that has room again;
 *   carved_n = capacity <= reserved, reserved * block_size <= units * TA_UNIT_SIZE;
 *   every block below index `carved_n` is handed out, on `free`, or on an xfree list;
 *   in_full == 1  <=>  the page is in no bin list (the owner parked it, all blocks out). */
struct ta_page_s {
  ta_block_t *free;        /* owner: local free list, encoded links */
  uint32_t used;           /* owner: see the invariant above */
  uint32_t block_size;     /* bytes per block; 0 on descriptors that are not live span heads */
  uintptr_t start;         /* address of block 0 (the span's first byte) */
  uint64_t inv;            /* block_size = odd * 2^shift, inv = odd^-1 mod 2^64 (ta_page_has_block) */
  uint64_t capacity;       /* owner: blocks carved so far (64-bit for ta_page_has_block) */
  uint8_t shift;           /* see inv */
  /* Slow paths, under arena->busy (the owner's or a collector's): some OS pages of the span were
   * released while they held only free blocks (purged_os says which); every block that overlaps one
   * is on no list until ta_page_relist lists them again. */
  uint8_t has_purged;
  /* Indexed by unit, not by span: bit k of pages[u].purged_os is OS page k of unit u, released
   * inside the live span that holds the unit. Cleared when that span retires. */
  uint16_t purged_os;
  union {
    uint32_t idle_mark;    /* collector: fingerprint of (free, used) at its last pass */
    uint32_t held_n;       /* collector, while parked: blocks of the page it holds */
  };
  /* capacity again, for other threads: any thread's free checks a pointer against it. Owner-written,
   * a relaxed atomic (plain moves on x86); a block a thread may free was carved before it was handed
   * out, so a stale read is never too small. */
  _Atomic uint64_t carved_n;
  ta_arena_t *arena;       /* owning arena: fixed while the page is live */
  _Atomic uintptr_t xfree; /* other threads: blocks they freed, or'ed with TA_XFREE_FULL */
  uint32_t reserved;       /* blocks the span holds */
  union {
    uint32_t parked_live;  /* owner: live blocks while parked */
    struct {               /* while not parked, under arena->busy (see page.c, the ghost head): */
      uint16_t ghost;      /* 1 + index of a block whose link is not to be read, or 0 */
      uint16_t ghost_next; /* 1 + index of the block that follows it on the list, or 0 for NULL */
    };
  };
  uint8_t cls;             /* size class */
  uint8_t units;           /* span length in units */
  uint8_t in_full;         /* owner: 1 while parked full (in no bin list) */
  uint32_t retired_size;   /* owner: block size before the span was retired, 0 while live */
  union {
    struct {
      ta_page_t *next;     /* owner: bin list */
      ta_page_t *prev;     /* owner: bin list */
    };
    struct {               /* while parked (in no bin list), a collector's, under arena->busy: */
      ta_page_t *held_next; /* the next parked page whose blocks it holds */
      ta_block_t *held;    /* the blocks of this page it holds, linked */
    };
  };
};

/* While a page is an arena's current page for its class its used count carries this bias, so the
 * free fast path sees used reach 0 only on pages that are not current (current pages are kept when
 * empty: a malloc/free loop must not retire and rebuild its page every time). */
#define TA_PAGE_CURRENT_BIAS ((uint32_t)1 << 30)

typedef enum { TA_SEG_MMAP = 1, TA_SEG_BRK = 2 } ta_seg_origin_t;

/* Invariants: free_units has bit u set  <=>  unit u is in no span and not being purged;
 * a unit in a span has unit_span[u] naming the span's page; the page a free unit's unit_span names
 * has carved == 0 or is a live span that ends before the unit (carved <= its own length);
 * dirty_units is a subset of free_units; units at or above mapped_units are neither in a span nor
 * free (the brk top segment gives them back to the OS when its free tail passes the trim threshold);
 * an empty segment has free_units == units_below(mapped_units) & ~1. */
struct ta_segment_s {
  ta_arena_t *arena;             /* owner */
  ta_segment_t *next;            /* seg_lock: the arena's segment list */
  ta_segment_t *prev;            /* seg_lock: the arena's segment list */
  uint64_t free_units;           /* seg_lock: bit u = unit u may be given to a span */
  uint64_t dirty_units;          /* seg_lock: bit u = free unit u may hold touched pages */
  uint8_t origin;                /* ta_seg_origin_t */
  uint8_t mapped_units;          /* seg_lock: units backed by memory: 64 but on a trimmed brk top */
  uint8_t in_full_list;          /* seg_lock: on the arena's list of segments without free units */
  /* seg_lock: the segment was empty and a pass released the header's memory past its first OS page
   * (descriptors only, all retired: zero reads as a descriptor that holds nothing); the next span
   * taken from it writes them again. */
  uint8_t hdr_released;
  uint16_t unit_span[TA_UNITS];  /* owner: unit -> byte offset of its span's page from pages[0] */
  uint32_t dirty_since[TA_UNITS]; /* seg_lock: trim clock (ms) when the unit became dirty */
  /* seg_lock: bit u of warm_heads[c] = a span of class c retired with its head at unit u; a hint for
   * the next span of class c (span_head in segment.c checks it against the descriptor). */
  uint64_t warm_heads[TA_CLASSES];
  ta_page_t pages[TA_UNITS];     /* descriptors; pages[0] is never live */
};
_Static_assert(sizeof(ta_segment_t) <= TA_UNIT_SIZE, "segment header must fit in unit 0");
_Static_assert(__builtin_offsetof(ta_segment_t, pages) <= TA_PAGE,
               "an empty segment's header past its first OS page holds descriptors only (hdr_released)");
_Static_assert(TA_UNITS == 64, "free_units is one 64-bit mask");
_Static_assert(TA_UNITS * sizeof(ta_page_t) <= UINT16_MAX, "unit_span offsets fit 16 bits");
_Static_assert(TA_SPAN_MAX_UNITS * TA_UNIT_SIZE >= TA_CLASS_MAX_SIZE, "largest class fits a span");

/* Units 1 .. n-1 (unit 0 is the header). */
TA_INLINE uint64_t ta_units_below(unsigned n) {
  return (n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1)) & ~(uint64_t)1;
}

/* Units set in a mask. A bit trick rather than __builtin_popcountll: without -mpopcnt (the x86-64
 * baseline) GCC makes the builtin a call to __popcountdi2, which the link takes from libgcc_s, so
 * every program linked with the archive mapped libgcc_s at start-up for it. */
TA_INLINE unsigned ta_units_count(uint64_t m) {
  m = m - ((m >> 1) & 0x5555555555555555u);
  m = (m & 0x3333333333333333u) + ((m >> 2) & 0x3333333333333333u);
  m = (m + (m >> 4)) & 0x0f0f0f0f0f0f0f0fu;
  return (unsigned)((m * 0x0101010101010101u) >> 56);
}

extern uint8_t ta_segmap[TA_SEGMAP_SLOTS];

TA_INLINE ta_segment_t *ta_seg_of(const void *p) {
  return (ta_segment_t *)((uintptr_t)p & ~(uintptr_t)(TA_SEGMENT_SIZE - 1));
}

/* True when p lies inside a live segment of ours. Reads only the segment map. */
TA_INLINE bool ta_segmap_has(const void *p) {
  uintptr_t slot = (uintptr_t)p >> TA_SEGMENT_SHIFT;
  return slot < TA_SEGMAP_SLOTS && __atomic_load_n(&ta_segmap[slot], __ATOMIC_RELAXED) != 0;
}

TA_INLINE ta_page_t *ta_seg_page_of(ta_segment_t *seg, const void *p) {
  unsigned unit = (unsigned)(((uintptr_t)p >> TA_UNIT_SHIFT) & (TA_UNITS - 1));
  return (ta_page_t *)((char *)seg->pages + seg->unit_span[unit]);
}

/* Free-list link encoding. With hardening, links are xor'ed with the process secret, so a stray
 * write of a plausible pointer is caught when decoded, and a freed block's first word is recognisable
 * without being mistaken for user data (see ta_page_free_local). */
TA_INLINE uintptr_t ta_link_encode(const ta_block_t *next) {
  return TA_HARDENING ? (uintptr_t)next ^ ta_secret : (uintptr_t)next;
}
TA_INLINE ta_block_t *ta_link_decode(uintptr_t enc) {
  return (ta_block_t *)(TA_HARDENING ? enc ^ ta_secret : enc);
}
/* Every encoded link, NULL's included, carries the secret's top 17 bits (addresses are below 2^47).
 * A word without them is certainly not a link; one with them may be user data (for random data one
 * time in 2^17) and is checked the slow way. */
TA_INLINE bool ta_link_plausible(uintptr_t word) {
  return ((word ^ ta_secret) >> TA_ADDRESS_BITS) == 0;
}

/* segment.c */
/* fork handlers (protocol in src/init.c): the brk mover flag (no lock to take). */
void ta_seg_fork(ta_fork_phase_t phase);
void ta_segmap_set(ta_segment_t *seg, bool live);
/* A span of `units` units for blocks of class cls, its descriptor not yet initialised; NULL if no
 * memory. Inside a segment it goes where a retired span of that class was, if those units are still
 * dirty (their touched pages fit the new span's blocks), else to the lowest free run. Owner only. */
ta_page_t *ta_seg_span_alloc(ta_arena_t *arena, unsigned units, unsigned cls);
/* The span goes back to its segment, dirty since `now`. Owner only. */
void ta_seg_span_free(ta_page_t *page, uint32_t now);
/* In-place resizing (arenas/resize.c), owner only: the free units right after the span join it, up
 * to `units` in all (false, nothing changed, if any of them is not free); the units of a span from
 * `keep` to `had` go back to the segment, dirty since `now` (the descriptor already says `keep`). */
bool ta_seg_span_grow(ta_page_t *page, unsigned units);
void ta_seg_span_shrink(ta_page_t *page, unsigned had, unsigned keep, uint32_t now);
/* Unlink an empty segment from its arena and give it back to the OS (seg_lock not held).
 * False if it must stay: a brk segment that is not the top of the heap. */
bool ta_seg_release(ta_segment_t *seg);
/* Lower the break from `old_end` to `new_end`, if tamalloc still owns the break there. */
bool ta_seg_brk_cut(uintptr_t old_end, uintptr_t new_end);
bool ta_seg_is_brk_top(const ta_segment_t *seg);
/* The trim mechanism: release an arena's free units as the policy (arenas/trim.h) says (force:
 * every free unit now, and top_pad for the brk top). Any thread may call it; one pass at a time runs
 * over an arena (arena->trimming): a scheduled one skips a busy arena, a forced one or one with a
 * budget waits for it.
 * `budget`: release that many bytes of free units beyond those due (the retained cap), newest
 * segments' first. Returns the bytes given back. */
size_t ta_seg_trim(ta_arena_t *arena, uint32_t now, bool force, size_t top_pad, size_t budget);
/* The cap on free-but-resident memory. Free units that may hold touched pages are counted over all
 * arenas; the cap is the larger of TAMALLOC_RETAIN_MIN and TAMALLOC_RETAIN_PERCENT of the most
 * memory the segments ever held. Returns the bytes to release now, beyond what decay has made due,
 * to get back under the cap: 0 until the count passes the cap by a quarter (so a burst of frees
 * and mallocs of the same memory around the cap does not purge each time). */
size_t ta_seg_retain_excess(void);
/* Free units that may hold touched pages, in bytes, over all arenas. */
size_t ta_seg_dirty_bytes(void);
/* Bytes and release operations given back so far; ta_seg_count_released adds bytes released inside
 * live pages (arenas/page.c). */
void ta_seg_trim_totals(size_t *bytes, size_t *calls);
void ta_seg_count_released(size_t bytes);
/* Set when there is memory worth purging on schedule (a second segment grew; the router sets it too
 * for a retained large mapping). The arena layer only reports it; the router polls it after a malloc
 * slow path and has the scheduler (src/sched.c) start its thread. */
extern _Atomic bool ta_seg_sched_wanted;
size_t ta_seg_count(size_t *brk_count);

#pragma GCC visibility pop

#endif
