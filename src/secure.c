/* The secure variant (TA_SECURE=1): every public entry point checks and arms blocks around the
 * router's own call, so the arenas and the mmap path are the default build's, unchanged.
 *
 * Block layout. A request of n bytes asks the router for at least n + TA_SECURE_TAIL:
 *
 *   p                    p + n                      end - 16     end
 *   | the n bytes asked  | canary, >= 8 bytes       | trailer    | guard page (large blocks only)
 *
 * `end` is the block's end (p + the router's usable size) for a block from the arenas; a block on the
 * mmap path gets one page more, the last page of its mapping, which is made inaccessible (the guard),
 * and `end` is where the guard starts. The requested size n is kept in the trailer (16 bytes at end,
 * so the canary starts right after the requested bytes): word 0 is n, word 1 p's secret key xor n
 * (trailer_hash). Every canary byte is derived from p and the process secret, with its top bit set
 * so a stray NUL or ASCII byte never matches; the canary spans at most TA_SECURE_CANARY_MAX bytes
 * past n and the word below the trailer (canary_end). free, realloc, free_sized,
 * malloc_usable_size and the quarantine check the trailer and every canary byte before anything
 * else.
 *
 * Freed blocks of the arenas are zeroed (whole up to TA_SECURE_SCRUB bytes, else the first
 * TA_SECURE_SCRUB and the last TA_SECURE_SCRUB_TAIL requested bytes with the canary: scrub_range),
 * marked freed (word 1 becomes the check under another key, so a second free is told from a live
 * block) and kept in the freeing thread's
 * quarantine, a ring bounded by TA_QUARANTINE_SLOTS blocks and TA_QUARANTINE_BYTES bytes. The oldest
 * leaves when a new one does not fit: what was zeroed must still be zero, its mark intact (else a write
 * after free), and only then goes back to the router. The ring is the thread's own: no lock, no
 * atomic; a free that finds the ring in use (a signal handler that interrupted a free on this thread)
 * releases its block at once. A thread-exit key empties the ring. Large blocks go to a ring of
 * their own (TA_QUARANTINE_LARGE): their pages inaccessible but for the last one, which is zeroed,
 * holds the freed mark and is checked when the block leaves; kept resident up to
 * TA_SECURE_LARGE_KEEP bytes; above, zeroed whole and kept resident while the ring's resident bytes
 * stay within TA_QUARANTINE_LARGE_RESIDENT, else given back (zero when read again): large_zero.
 *
 * malloc(0) returns a distinct address inside one reserved inaccessible region (zero_region): any
 * read or write through it faults, free and realloc recognise it. */
#include "src/secure.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "arenas/arena.h"
#include "arenas/page.h"
#include "src/config.h"
#include "src/init.h"
#include "src/large.h"
#include "src/os.h"
#include "src/router.h"
#include "src/secret.h"
#include "tamalloc.h"

#define TA_SECURE_CANARY_MIN ((size_t)8)
#define TA_SECURE_TRAILER ((size_t)16)
#define TA_SECURE_TAIL (TA_SECURE_CANARY_MIN + TA_SECURE_TRAILER)
/* Canary bytes past the requested end at most, besides the word below the trailer (canary_end). */
#define TA_SECURE_CANARY_MAX ((size_t)64)
#define TA_QUARANTINE_SLOTS 256u
#define TA_QUARANTINE_BYTES ((size_t)256 << 10)
/* Large blocks kept: their pages are given back and inaccessible, so they cost address space only. */
#define TA_QUARANTINE_LARGE 4u
/* How much of a freed block of the arenas is zeroed and checked (scrub_range). */
#define TA_SECURE_SCRUB ((size_t)8 << 10)
#define TA_SECURE_SCRUB_TAIL ((size_t)64)
/* A freed large block up to this size keeps its pages resident (hidden, not zeroed) while in the
 * quarantine; a bigger one is zeroed whole and kept within TA_QUARANTINE_LARGE_RESIDENT, or gives its
 * pages back (they read as zero when the mapping is used again): large_zero. */
#define TA_SECURE_LARGE_KEEP ((size_t)2 << 20)
/* How much of the next block to leave the quarantine is fetched ahead (quarantine_put). */
#define TA_SECURE_PREFETCH ((size_t)1024)
/* Bytes of freed large blocks the large ring keeps resident, zeroed and inaccessible (large_zero);
 * a block that would pass it is given back instead. */
#define TA_QUARANTINE_LARGE_RESIDENT ((size_t)64 << 20)
/* malloc(0) addresses: one per TA_ALIGN bytes of a 256 MiB reservation (16 Mi of them); after that
 * malloc(0) gets an ordinary block of no bytes (canary and trailer only). */
#define TA_ZERO_REGION ((size_t)256 << 20)
/* Mixed into the trailer hash of a freed block, so a freed mark never reads as a live trailer. */
#define TA_FREED_SALT ((uint64_t)0x5ec0f4eed0d0f00dULL)
#define TA_CANARY_TOP_BITS ((uint64_t)0x8080808080808080ULL)

typedef uint64_t __attribute__((may_alias)) ta_word_t;

/* A bijective 64-bit mix (the splitmix64 finalizer's constants). */
static inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

/* One mix per operation: the key is secret (ta_secret goes in), and the trailer's check word is the
 * key xor the size, so forging a trailer for another size means knowing the key. A second mix of n
 * adds nothing against that: mix64 is invertible, whoever reads the check word and knows n has the
 * key either way. */
static inline uint64_t block_key(const void *p) { return mix64((uintptr_t)p ^ ta_secret); }
static inline uint64_t trailer_hash(uint64_t key, uint64_t n) { return key ^ n; }

/* ---- malloc(0) ---- */

/* The region is followed by a bitmap, one bit per address handed out, set when it is freed (so
 * ta_owns answers 0 and a second free is a double free). One mapping for both, so one pointer
 * publishes them; the bitmap's pages are committed as they are first written. */
#define TA_ZERO_BITMAP (TA_ZERO_REGION / TA_ALIGN / 8)
static _Atomic uintptr_t zero_base; /* the reserved region, 0 until the first malloc(0) */
static _Atomic size_t zero_next;    /* bytes of the region handed out */

static bool zero_has(const void *p) {
  uintptr_t base = atomic_load_explicit(&zero_base, memory_order_acquire);
  return base != 0 && (uintptr_t)p - base < TA_ZERO_REGION;
}

/* A fresh address in the region, or NULL when it cannot be had (no region, or all used). */
static void *zero_take(void) {
  uintptr_t base = atomic_load_explicit(&zero_base, memory_order_acquire);
  if (base == 0) {
    void *m = ta_os_map(TA_ZERO_REGION + TA_ZERO_BITMAP);
    if (m == NULL) return NULL;
    if (!ta_os_protect(m, TA_ZERO_REGION, false)) {
      ta_os_unmap(m, TA_ZERO_REGION + TA_ZERO_BITMAP);
      return NULL;
    }
    uintptr_t want = 0;
    if (atomic_compare_exchange_strong_explicit(&zero_base, &want, (uintptr_t)m, memory_order_acq_rel,
                                                memory_order_acquire))
      base = (uintptr_t)m;
    else {
      ta_os_unmap(m, TA_ZERO_REGION + TA_ZERO_BITMAP); /* another thread's reservation won */
      base = want;
    }
  }
  size_t off = atomic_fetch_add_explicit(&zero_next, TA_ALIGN, memory_order_relaxed);
  return off < TA_ZERO_REGION ? (void *)(base + off) : NULL;
}

/* p is in the region: the bit of a live address handed out, else NULL. */
static _Atomic unsigned char *zero_bit(const void *p, unsigned char *mask) {
  uintptr_t base = atomic_load_explicit(&zero_base, memory_order_acquire);
  size_t off = (uintptr_t)p - base;
  if (off % TA_ALIGN != 0 || off >= atomic_load_explicit(&zero_next, memory_order_relaxed)) return NULL;
  size_t i = off / TA_ALIGN;
  *mask = (unsigned char)(1u << (i % 8));
  return (_Atomic unsigned char *)(base + TA_ZERO_REGION) + i / 8;
}

static void zero_free(const char *func, void *p) {
  unsigned char mask;
  _Atomic unsigned char *bit = zero_bit(p, &mask);
  if (bit == NULL) ta_fatal_ptr(func, "invalid pointer", p);
  if (atomic_fetch_or_explicit(bit, mask, memory_order_relaxed) & mask) ta_fatal_ptr(func, "double free", p);
}

static int zero_owns(const void *p) {
  unsigned char mask;
  _Atomic unsigned char *bit = zero_bit(p, &mask);
  return bit != NULL && !(atomic_load_explicit(bit, memory_order_relaxed) & mask);
}

/* ---- arming and checking a block ---- */

/* The canary bytes of [p + from, p + to): byte i (from p) is byte i % 8 of the canary word. `to` is
 * a multiple of 8 (end is 16-aligned, p too). Word by word: a first word shared with the block's
 * last bytes is masked to the canary's part (little-endian: its high bytes). */
static inline uint64_t canary_mask(size_t from) { return ~(uint64_t)0 << (8 * (from & 7)); }

static void canary_fill(char *p, size_t from, size_t to, uint64_t key) {
  uint64_t c = key | TA_CANARY_TOP_BITS;
  size_t i = from & ~(size_t)7;
  if (i < to && (from & 7) != 0) {
    ta_word_t *w = (ta_word_t *)(p + i);
    *w = (*w & ~canary_mask(from)) | (c & canary_mask(from));
    i += 8;
  }
  for (; i < to; i += 8) *(ta_word_t *)(p + i) = c;
}

static bool canary_intact(const char *p, size_t from, size_t to, uint64_t key) {
  uint64_t c = key | TA_CANARY_TOP_BITS;
  size_t i = from & ~(size_t)7;
  uint64_t diff = 0; /* no early exit: one test at the end */
  if (i < to && (from & 7) != 0) {
    diff = (*(const ta_word_t *)(p + i) ^ c) & canary_mask(from);
    i += 8;
  }
  for (; i < to; i += 8) diff |= *(const ta_word_t *)(p + i) ^ c;
  return diff == 0;
}

/* The canary proper is [n, canary_end): at most TA_SECURE_CANARY_MAX bytes past the 8-byte word
 * that holds the requested end, then (when the block's slack is bigger) the word right below the
 * trailer, which is always canary. The slack between is left alone: filling and checking all of it
 * (up to an eighth of a big block) cost more than the rest of a free. A linear overflow is caught
 * in the first bytes past n; one that skips them lands in the block's own slack, or reaches the
 * trailer and the word below it. */
static size_t canary_end(size_t n, size_t trailer) {
  size_t e = ((n + 7) & ~(size_t)7) + TA_SECURE_CANARY_MAX;
  return e < trailer ? e : trailer;
}

/* canary_end is a multiple of 8 and so is the trailer: either the canary reaches the trailer (the
 * word below it included, as in most small blocks) or it ends at least a word below it. */
static void canary_arm(char *p, size_t n, size_t trailer, uint64_t key) {
  size_t e = canary_end(n, trailer);
  canary_fill(p, n, e, key);
  if (e < trailer) canary_fill(p, trailer - 8, trailer, key);
}

static bool canary_ok(const char *p, size_t n, size_t trailer, uint64_t key) {
  size_t e = canary_end(n, trailer);
  return canary_intact(p, n, e, key) && (e == trailer || canary_intact(p, trailer - 8, trailer, key));
}

/* What a user pointer leads to, once checked. */
typedef struct ta_sblock_s {
  char *p;   /* the block */
  char *end; /* where the trailer ends (and a large block's guard page starts) */
  size_t n;  /* bytes asked for */
  uint64_t key; /* block_key(p), computed once per call */
  bool large; /* on the mmap path: guard page at end */
} ta_sblock_t;

/* Where the trailer of the router's block p ends: its block's end in the arenas; for a mapping
 * (*large set), the start of its last page, the guard. Stops naming `func` when p is neither. */
static char *block_end(const char *func, void *p, bool *large) {
  *large = !ta_segmap_has(p);
  if (!*large) {
    ta_page_t *page = ta_arena_page_checked(p);
    if (page == NULL) ta_router_bad_pointer(func, p);
    return (char *)p + page->block_size;
  }
  ta_large_view_t v;
  if (!ta_large_lookup(func, p, &v)) ta_router_bad_pointer(func, p);
  size_t usable = ta_large_view_usable(&v);
  return (char *)p + (usable < TA_PAGE ? 0 : usable - TA_PAGE);
}

/* Fills *b for the live block p, or stops naming `func`: a pointer that is no block, a block freed
 * before (its freed mark), a trailer or canary that is not the one written at allocation. */
static void block_check(const char *func, void *p, ta_sblock_t *b) {
  b->p = p;
  b->end = block_end(func, p, &b->large);
  if ((size_t)(b->end - b->p) < TA_SECURE_TAIL) ta_fatal_ptr(func, "block trailer overwritten at", p);
  uint64_t key = block_key(p);
  const ta_word_t *t = (const ta_word_t *)(b->end - TA_SECURE_TRAILER);
  uint64_t n = t[0];
  size_t room = (size_t)(b->end - b->p) - TA_SECURE_TAIL;
  if (n <= room && t[1] == trailer_hash(key ^ TA_FREED_SALT, n)) ta_fatal_ptr(func, "double free", p);
  if (n > room || t[1] != trailer_hash(key, n)) {
    /* The canary word below the trailer always exists: broken too, the writes came up from the
     * block's own bytes; intact, the trailer alone was hit (an underflow of the next block, say). */
    bool below = canary_intact(p, (size_t)(b->end - b->p) - TA_SECURE_TAIL, (size_t)(b->end - b->p) - TA_SECURE_TRAILER, key);
    ta_fatal_ptr(func, below ? "block trailer overwritten at" : "buffer overflow at", p);
  }
  if (!canary_ok(p, n, (size_t)(b->end - b->p) - TA_SECURE_TRAILER, key))
    ta_fatal_ptr(func, "buffer overflow at", p);
  b->n = n;
  b->key = key;
}

/* Writes the canary and trailer of a block of `end - p` bytes holding n. */
static void block_arm(char *p, char *end, size_t n) {
  uint64_t key = block_key(p);
  size_t trailer = (size_t)(end - p) - TA_SECURE_TRAILER;
  canary_arm(p, n, trailer, key);
  ta_word_t *t = (ta_word_t *)(p + trailer);
  t[0] = n;
  t[1] = trailer_hash(key, n);
}

/* Whether the router will give `total` bytes (with `align`) a mapping of their own; the same rule
 * as src/router.c. A guess (the threshold may move before the router reads it), safe either way:
 * block_new and realloc take what they got for what block_end says it is. */
static bool goes_large(size_t total, size_t align) {
  ta_init(); /* the threshold may come from the environment */
  return total >= ta_mmap_threshold() || total > TA_CLASS_MAX_SIZE || align > TA_ALIGNED_BIN_MAX;
}

/* A new armed block of n bytes aligned to `align` (a power of two; 16 or less: plain malloc),
 * zeroed when `zero`. NULL with errno ENOMEM when out of memory. */
static void *block_new(size_t n, size_t align, bool zero) {
  if (ta_unlikely(n > TA_MAX_REQUEST)) {
    errno = ENOMEM;
    return NULL;
  }
  bool guard = goes_large(n + TA_SECURE_TAIL, align);
  for (;;) {
    size_t total = n + TA_SECURE_TAIL + (guard ? TA_PAGE : 0);
    char *p = align > TA_ALIGN ? ta_router_aligned_alloc(align, total)
                               : zero ? ta_router_calloc(1, total) : ta_router_malloc(total);
    if (p == NULL) return NULL;
    bool large = false;
    /* Up to TA_SMALL_TABLE_MAX bytes the router always gives a block of the class of the size
     * (src/router.c: the fast path, the profiler's countdown and its sampled blocks alike), so its
     * end is known without looking the page up. */
    char *end = align <= TA_ALIGN && total <= TA_SMALL_TABLE_MAX ? p + ta_class_size(ta_class_small(total))
                                                                 : block_end("malloc", p, &large);
    ta_assert(end == block_end("malloc", p, &(bool){false}));
    if (!large) {
      block_arm(p, end, n);
      return p;
    }
    if ((size_t)(end - p) >= n + TA_SECURE_TAIL) {
      if (!ta_os_protect(end, TA_PAGE, false)) { /* end is page-aligned: the mapping's last page */
        ta_router_free(p);
        errno = ENOMEM;
        return NULL;
      }
      block_arm(p, end, n);
      return p;
    }
    /* A mapping without room for the guard (the threshold moved since the guess): once more, with. */
    ta_router_free(p);
    guard = true;
  }
}

/* ---- the quarantine ---- */

typedef struct ta_quarantine_s {
  void *slot[TA_QUARANTINE_SLOTS]; /* ring of freed blocks of the arenas, oldest at head */
  size_t size[TA_QUARANTINE_SLOTS]; /* each one's bytes up to its end (trailer included) */
  unsigned head;                    /* index of the oldest */
  unsigned count;                   /* blocks held */
  size_t bytes;                     /* sum of their sizes, at most TA_QUARANTINE_BYTES or one block */
  void *large[TA_QUARANTINE_LARGE]; /* ring of freed large blocks, oldest at large_head */
  char *large_end[TA_QUARANTINE_LARGE]; /* each one's end (its guard page follows) */
  size_t large_kept[TA_QUARANTINE_LARGE]; /* each one's bytes kept resident (zeroed), 0 if purged */
  unsigned large_head;              /* index of the oldest */
  unsigned large_count;             /* large blocks held */
  size_t large_resident;            /* sum of large_kept, at most TA_QUARANTINE_LARGE_RESIDENT */
} ta_quarantine_t;

/* The thread's own: allocated on its first free, emptied and freed by the thread-exit key. */
static __thread ta_quarantine_t *tls_quarantine __attribute__((tls_model("initial-exec")));
static __thread bool tls_quarantine_busy __attribute__((tls_model("initial-exec")));
/* Set once the exit key emptied the ring: frees from later destructors release at once. */
static __thread bool tls_quarantine_gone __attribute__((tls_model("initial-exec")));
static pthread_key_t quarantine_key;
static pthread_once_t quarantine_once = PTHREAD_ONCE_INIT;

/* A freed block's bytes [from, end): still all zero but for the freed mark in its trailer. */
/* [from, to) all zero (8-aligned bounds). */
static bool all_zero(const char *from, const char *to) {
  uint64_t any = 0; /* no early exit: one test at the end */
  for (const ta_word_t *w = (const ta_word_t *)from; (const char *)w < to; w++) any |= *w;
  return any == 0;
}

/* The freed mark of p's trailer (quarantine_put wrote it, the size asked for kept) intact: its size
 * in *n. */
static bool freed_marked(const char *p, const char *end, size_t *n) {
  const ta_word_t *t = (const ta_word_t *)(end - TA_SECURE_TRAILER);
  *n = t[0];
  return *n <= (size_t)(end - p) - TA_SECURE_TAIL && t[1] == trailer_hash(block_key(p) ^ TA_FREED_SALT, *n);
}

/* Zeroes [from, to) (8-aligned bounds) with 16-byte stores. Not memset: GCC made the scrub's
 * memset a `rep stosq`, whose start-up is most of the cost at these sizes (61% of block_release's
 * samples on larson, blocks of 8-1000 bytes). The loop must stay a loop: the empty asm hides the
 * pointer's progress, so the compiler cannot turn it back into memset. */
typedef uint64_t __attribute__((vector_size(16), may_alias, aligned(16))) ta_vec_t;
static void zero_words(char *from, char *to) {
  if (((uintptr_t)from & 8) != 0 && from < to) {
    *(ta_word_t *)from = 0;
    from += 8;
  }
  for (; to - from >= 32; from += 32) {
    __asm__("" : "+r"(from));
    ((ta_vec_t *)from)[0] = (ta_vec_t){0, 0};
    ((ta_vec_t *)from)[1] = (ta_vec_t){0, 0};
  }
  if (to - from >= 16) {
    *(ta_vec_t *)from = (ta_vec_t){0, 0};
    from += 16;
  }
  if (from < to) *(ta_word_t *)from = 0;
}

/* What a freed block of the arenas has zeroed (and its eviction checks): its first TA_SECURE_SCRUB
 * bytes, and from TA_SECURE_SCRUB_TAIL bytes below the requested end up to the trailer (the last
 * bytes asked for and the canary). A block of up to TA_SECURE_SCRUB bytes is scrubbed whole; the
 * middle of a bigger one is left as it was: zeroing and re-reading it all made a workload of mixed
 * sizes 4 times the default's time. [0, *head) and [*tail, size - TA_SECURE_TRAILER). */
static void scrub_range(size_t size, size_t n, size_t *head, size_t *tail) {
  size_t trailer = size - TA_SECURE_TRAILER;
  *head = trailer < TA_SECURE_SCRUB ? trailer : TA_SECURE_SCRUB;
  size_t t = n > TA_SECURE_SCRUB_TAIL ? (n - TA_SECURE_SCRUB_TAIL) & ~(size_t)7 : 0;
  *tail = t > *head ? t : *head;
}

/* The oldest block leaves: still all zero with its freed mark, else it was written after free. */
static void quarantine_evict(const char *func, ta_quarantine_t *q) {
  char *p = q->slot[q->head];
  size_t size = q->size[q->head];
  q->head = (q->head + 1) % TA_QUARANTINE_SLOTS;
  q->count--;
  q->bytes -= size;
  size_t n, head, tail;
  if (!freed_marked(p, p + size, &n)) ta_fatal_ptr(func, "write after free at", p);
  scrub_range(size, n, &head, &tail);
  if (!all_zero(p, p + head) || !all_zero(p + tail, p + size - TA_SECURE_TRAILER))
    ta_fatal_ptr(func, "write after free at", p);
  ta_router_free(p);
}

/* The start of the pages of a freed large block made inaccessible: every whole page below the
 * one that holds the trailer. */
static char *large_hidden(const char *p) { return (char *)ta_align_up((uintptr_t)p, TA_PAGE); }

/* The same for the large ring: its last page is checked (the rest faults on any access), then the
 * block made whole and accessible again (a retained mapping is reused whole) and freed. */
static void quarantine_evict_large(const char *func, ta_quarantine_t *q) {
  char *p = q->large[q->large_head];
  char *end = q->large_end[q->large_head];
  q->large_resident -= q->large_kept[q->large_head];
  q->large_head = (q->large_head + 1) % TA_QUARANTINE_LARGE;
  q->large_count--;
  char *last = end - TA_PAGE > p ? end - TA_PAGE : p;
  size_t n;
  if (!freed_marked(p, end, &n) || !all_zero(last, end - TA_SECURE_TRAILER)) ta_fatal_ptr(func, "write after free at", p);
  /* One call makes the hidden pages, the (accessible) last page and the guard accessible. */
  char *hidden = large_hidden(p);
  char *from = last > hidden ? hidden : end;
  ta_os_protect(from, (size_t)(end + TA_PAGE - from), true);
  ta_router_free(p);
}

static void quarantine_empty(const char *func, ta_quarantine_t *q) {
  while (q->count > 0) quarantine_evict(func, q);
  while (q->large_count > 0) quarantine_evict_large(func, q);
}

static void quarantine_exit(void *value) {
  ta_quarantine_t *q = value;
  tls_quarantine_busy = true;
  quarantine_empty("free", q);
  tls_quarantine = NULL;
  tls_quarantine_gone = true;
  tls_quarantine_busy = false;
  ta_router_free(q);
}

static void quarantine_key_create(void) { pthread_key_create(&quarantine_key, quarantine_exit); }

/* The calling thread's ring, made on first use; NULL when there is none to use now. */
static ta_quarantine_t *quarantine_get(void) {
  if (ta_likely(tls_quarantine != NULL)) return tls_quarantine;
  if (tls_quarantine_gone) return NULL;
  ta_quarantine_t *q = ta_router_calloc(1, sizeof *q);
  if (q == NULL) return NULL;
  pthread_once(&quarantine_once, quarantine_key_create);
  tls_quarantine = q;
  if (pthread_setspecific(quarantine_key, q) != 0) {
    tls_quarantine = NULL;
    ta_router_free(q);
    return NULL;
  }
  return q;
}

/* Zeroes a freed large block's bytes: its head below the first whole page and its last page, the
 * trailer's page; the pages between too above TA_SECURE_LARGE_KEEP, by memset when `keep` (the
 * pages stay resident, true returned), else by giving them back (they read as zero when touched
 * again). Up to TA_SECURE_LARGE_KEEP the pages between stay resident as they were, inaccessible while
 * quarantined (purging made every later use of the mapping fault them in again: 5x the default's
 * time on mixed_sizes). Above it, giving back every freed block made each reuse fault every page in
 * again: big_blocks 5.6x and large_loop 3.2x the default's time, 73% of it in the page-fault path;
 * memset costs one pass of stores instead. Call before the freed mark is written. */
static bool large_zero(ta_sblock_t *b, bool keep) {
  char *trailer = b->end - TA_SECURE_TRAILER;
  char *pages = large_hidden(b->p), *last = b->end - TA_PAGE;
  memset(b->p, 0, (size_t)(pages - b->p));
  if (last > pages && (size_t)(b->end - b->p) > TA_SECURE_LARGE_KEEP) {
    if (keep) {
      memset(pages, 0, (size_t)(trailer - pages));
      return true;
    }
    ta_os_purge(pages, (size_t)(b->end - pages));
    return false;
  }
  memset(last > pages ? last : pages, 0, (size_t)(trailer - (last > pages ? last : pages)));
  return true;
}

/* Marks a checked block freed in its trailer. */
static void freed_mark(ta_sblock_t *b) {
  ta_word_t *t = (ta_word_t *)(b->end - TA_SECURE_TRAILER);
  t[0] = b->n; /* a purged large block's trailer reads zero by now */
  t[1] = trailer_hash(b->key ^ TA_FREED_SALT, b->n);
}

/* Marks a checked block freed and keeps it in the thread's ring (or releases it at once when there is
 * no ring to use: reentered from a signal handler, or the thread is exiting). */
static void quarantine_put(ta_sblock_t *b) {
  if (!b->large) freed_mark(b);
  ta_quarantine_t *q = NULL;
  bool reentered = tls_quarantine_busy;
  if (!reentered) {
    tls_quarantine_busy = true;
    q = quarantine_get();
  }
  if (q == NULL) {
    if (b->large) {
      large_zero(b, false);
      freed_mark(b);
      ta_os_protect(b->end, TA_PAGE, true); /* nothing hidden yet */
    }
    ta_router_free(b->p);
  } else if (b->large) {
    if (q->large_count == TA_QUARANTINE_LARGE) quarantine_evict_large("free", q);
    size_t size = (size_t)(b->end - b->p);
    size_t kept = large_zero(b, q->large_resident + size <= TA_QUARANTINE_LARGE_RESIDENT) ? size : 0;
    freed_mark(b);
    char *hidden = large_hidden(b->p), *last = b->end - TA_PAGE;
    if (last > hidden) ta_os_protect(hidden, (size_t)(last - hidden), false);
    unsigned i = (q->large_head + q->large_count) % TA_QUARANTINE_LARGE;
    q->large[i] = b->p;
    q->large_end[i] = b->end;
    q->large_kept[i] = kept;
    q->large_resident += kept;
    q->large_count++;
  } else {
    size_t size = (size_t)(b->end - b->p);
    while (q->count > 0 && (q->count == TA_QUARANTINE_SLOTS || q->bytes + size > TA_QUARANTINE_BYTES))
      quarantine_evict("free", q);
    unsigned i = (q->head + q->count) % TA_QUARANTINE_SLOTS;
    q->slot[i] = b->p;
    q->size[i] = size;
    q->count++;
    q->bytes += size;
    /* The next to leave: its trailer's line and its first TA_SECURE_PREFETCH bytes (for writing:
     * the router puts its link in the first line), so the eviction's reads do not wait on memory.
     * The ring holds up to 256 KiB freed since, enough to push it out of the first-level cache:
     * evicting was a fifth of larson's samples, 30% of them on the trailer's load (6% with this)
     * and most of the rest in the zero check's loads. */
    char *next = q->slot[q->head];
    size_t next_size = q->size[q->head];
    __builtin_prefetch(next + next_size - TA_SECURE_TRAILER, 0);
    for (size_t off = 0; off < next_size && off < TA_SECURE_PREFETCH; off += 64) __builtin_prefetch(next + off, 1);
  }
  if (!reentered) tls_quarantine_busy = false;
}

/* Zero a checked block's scrubbed bytes (a large block's are zeroed by quarantine_put, which knows
 * whether the ring has room to keep it resident), then quarantine it. */
static void block_release(ta_sblock_t *b) {
  if (!b->large) {
    size_t head, tail;
    scrub_range((size_t)(b->end - b->p), b->n, &head, &tail);
    zero_words(b->p, b->p + head);
    zero_words(b->p + tail, b->end - TA_SECURE_TRAILER);
  }
  quarantine_put(b);
}

/* ---- randomised order within a page ---- */

/* From here on the arenas carve blocks in a random order (arenas/page.c): the next malloc of a size
 * is not the block above the last one. Blocks carved before (start-up allocations of ld.so and libc)
 * keep address order. */
__attribute__((constructor)) static void secure_start(void) {
  ta_init(); /* ta_secret */
  ta_page_carve_seed = mix64(ta_secret ^ TA_FREED_SALT) | 1;
}

/* ---- the entry points ---- */

void *ta_secure_malloc(size_t size) {
  if (size == 0) {
    void *z = zero_take();
    if (z != NULL) return z;
  }
  return block_new(size, TA_ALIGN, false);
}

void *ta_secure_calloc(size_t count, size_t size) {
  size_t n;
  if (ta_unlikely(__builtin_mul_overflow(count, size, &n))) {
    errno = ENOMEM;
    return NULL;
  }
  return n == 0 ? ta_secure_malloc(0) : block_new(n, TA_ALIGN, true);
}

void ta_secure_free(void *p) {
  if (p == NULL) return;
  if (zero_has(p)) {
    zero_free("free", p);
    return;
  }
  ta_sblock_t b;
  block_check("free", p, &b);
  block_release(&b);
}

void *ta_secure_realloc(void *p, size_t size) {
  if (p == NULL) return ta_secure_malloc(size);
  if (zero_has(p)) {
    zero_free("realloc", p); /* a new block either way; nothing to copy */
    return size == 0 ? NULL : ta_secure_malloc(size);
  }
  if (size == 0) {
    ta_secure_free(p);
    return NULL;
  }
  ta_sblock_t b;
  block_check("realloc", p, &b);
  if (ta_unlikely(size > TA_MAX_REQUEST)) {
    errno = ENOMEM;
    return NULL;
  }
  size_t room = (size_t)(b.end - b.p);
  /* A block of the arenas that still fits, and is not more than twice what is needed, stays. */
  if (!b.large && size + TA_SECURE_TAIL <= room && size + TA_SECURE_TAIL > room / 2) {
    block_arm(b.p, b.end, size);
    return p;
  }
  /* A mapping that stays one is resized by mremap (page tables move, not bytes), the guard made
   * accessible for the call and re-made at the new end. mremap refuses a range the kernel still
   * keeps as two areas (the guard's mprotect split them, and in a fork child the halves may not
   * merge again): then the copy below. goes_large is a guess: the router reads the threshold
   * again, and another thread may have raised it since (a freed mapping above 1 MiB raises it to
   * 32 MiB at once), so the block that comes back may be one of the arenas, with no guard page
   * (tests/secure/secure_threshold_race.c). */
  if (b.large && goes_large(size + TA_SECURE_TAIL, TA_ALIGN)) {
    ta_os_protect(b.end, TA_PAGE, true);
    char *q = ta_router_realloc(p, size + TA_SECURE_TAIL + TA_PAGE);
    if (q != NULL) {
      bool large;
      char *end = block_end("realloc", q, &large);
      if (large) ta_os_protect(end, TA_PAGE, false);
      block_arm(q, end, size);
      return q;
    }
    ta_os_protect(b.end, TA_PAGE, false);
  }
  char *q = block_new(size, TA_ALIGN, false);
  if (q == NULL) return NULL;
  memcpy(q, p, b.n < size ? b.n : size);
  block_release(&b);
  return q;
}

void *ta_secure_reallocarray(void *p, size_t count, size_t size) {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) {
    errno = ENOMEM;
    return NULL;
  }
  return ta_secure_realloc(p, n);
}

/* free_sized and free_aligned_sized: the size must be the one asked for (the trailer keeps it). */
static void free_checked_size(const char *func, void *p, size_t size) {
  if (p == NULL) return;
  if (zero_has(p)) {
    if (size != 0) ta_fatal_ptr(func, "size does not match the block", p);
    zero_free(func, p);
    return;
  }
  ta_sblock_t b;
  block_check(func, p, &b);
  if (size != b.n) ta_fatal_ptr(func, "size does not match the block", p);
  block_release(&b);
}

void ta_secure_free_sized(void *p, size_t size) { free_checked_size("free_sized", p, size); }

void ta_secure_free_aligned_sized(void *p, size_t align, size_t size) {
  (void)align; /* the exact size is the stronger check */
  free_checked_size("free_aligned_sized", p, size);
}

void *ta_secure_aligned_alloc(size_t align, size_t size) {
  if (!ta_is_pow2(align)) {
    errno = EINVAL;
    return NULL;
  }
  if (size == 0 && align <= TA_ALIGN) return ta_secure_malloc(0);
  return block_new(size, align, false);
}

void *ta_secure_memalign(size_t align, size_t size) { return ta_secure_aligned_alloc(align, size); }

static void *aligned_for_memalign(size_t align, size_t size, void *caller) {
  (void)caller;
  return ta_secure_aligned_alloc(align, size);
}

int ta_secure_posix_memalign(void **out, size_t align, size_t size) {
  return ta_posix_memalign_by(out, align, size, aligned_for_memalign, NULL);
}

void *ta_secure_valloc(size_t size) { return ta_secure_aligned_alloc(TA_PAGE, size); }

void *ta_secure_pvalloc(size_t size) {
  size_t rounded = ta_pvalloc_size(size);
  return rounded ? ta_secure_aligned_alloc(TA_PAGE, rounded) : NULL;
}

size_t ta_secure_usable_size(const void *p) {
  if (p == NULL || zero_has(p)) return 0;
  ta_sblock_t b;
  block_check("malloc_usable_size", (void *)p, &b);
  return b.n;
}

int ta_secure_trim(size_t pad) {
  if (!tls_quarantine_busy && tls_quarantine != NULL) {
    tls_quarantine_busy = true;
    quarantine_empty("malloc_trim", tls_quarantine);
    tls_quarantine_busy = false;
  }
  return ta_router_trim(pad);
}

int ta_secure_owns(const void *p) {
  if (zero_has(p)) return zero_owns(p);
  if (!ta_router_owns(p)) return 0;
  const char *end;
  if (ta_segmap_has(p)) {
    end = (const char *)p + ta_arena_page_checked(p)->block_size;
  } else {
    ta_large_view_t v;
    if (!ta_large_lookup("ta_owns", p, &v)) return 0; /* freed by another thread since */
    end = (const char *)p + ta_large_view_usable(&v) - TA_PAGE;
  }
  const ta_word_t *t = (const ta_word_t *)(end - TA_SECURE_TRAILER);
  return t[1] != trailer_hash(block_key(p) ^ TA_FREED_SALT, t[0]);
}

/* The public names (src/router.c defines them in the default build). */
#define TA_ALIAS(name) __attribute__((alias(#name), visibility("default")))
void *ta_malloc(size_t size) TA_ALIAS(ta_secure_malloc);
void *ta_calloc(size_t count, size_t size) TA_ALIAS(ta_secure_calloc);
void *ta_realloc(void *p, size_t size) TA_ALIAS(ta_secure_realloc);
void *ta_reallocarray(void *p, size_t count, size_t size) TA_ALIAS(ta_secure_reallocarray);
void ta_free(void *p) TA_ALIAS(ta_secure_free);
void ta_free_sized(void *p, size_t size) TA_ALIAS(ta_secure_free_sized);
void ta_free_aligned_sized(void *p, size_t align, size_t size) TA_ALIAS(ta_secure_free_aligned_sized);
void *ta_aligned_alloc(size_t align, size_t size) TA_ALIAS(ta_secure_aligned_alloc);
int ta_posix_memalign(void **out, size_t align, size_t size) TA_ALIAS(ta_secure_posix_memalign);
void *ta_memalign(size_t align, size_t size) TA_ALIAS(ta_secure_memalign);
void *ta_valloc(size_t size) TA_ALIAS(ta_secure_valloc);
void *ta_pvalloc(size_t size) TA_ALIAS(ta_secure_pvalloc);
size_t ta_usable_size(const void *p) TA_ALIAS(ta_secure_usable_size);
int ta_trim(size_t pad) TA_ALIAS(ta_secure_trim);
int ta_owns(const void *p) TA_ALIAS(ta_secure_owns);
