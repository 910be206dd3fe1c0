/* Large blocks: each its own mapping, with a 16-byte header before the pointer (ta_large_hdr_t).
 *
 * The registry. free() must never read memory it does not own, and a foreign pointer may sit at the
 * start of an unmapped page, so the header alone cannot tell a large block: every live large block
 * is also in the registry. It is TA_REG_SHARDS independent open-addressing hash sets of block
 * addresses, the shard chosen by a hash of the address, each behind its own lock, so threads that
 * allocate and free large blocks meet on a lock only when their addresses hash to the same shard
 * (one time in 64), never on a process-wide one. A slot holds 0 (empty), a live block's address, or
 * a tombstone: the address of a freed block with REG_FREED set. A tombstone stays until its address
 * becomes a block again (the insertion overwrites it) or until its shard's ring of the last
 * TA_TOMBS_PER_SHARD tombstones pushes it out, so a second free of any freed block, by any thread,
 * is named a double free while the shard remembers it: per shard, tombstones <= TA_TOMBS_PER_SHARD,
 * and the table stays at most half full of live entries and tombstones (bounded memory).
 *
 * Retained mappings. A block at or above the mmap threshold is unmapped when freed. Once the adaptive
 * threshold (src/config.c) has risen past the largest size class, requests between the two are "heap"
 * requests that the bins cannot hold (a freed mapping past the largest class raises the threshold to
 * its maximum at once, src/config.c): their mappings are kept when freed, up to TA_CACHE_SLOTS of them
 * and TA_CACHE_MAX_BYTES in all, and reused by the next request of about the same size, so a loop of
 * multi-megabyte buffers stops paying a fault per page. The cache is TA_CACHE_SHARDS shards, one lock
 * each; a thread frees into and takes from its own shard (threads are dealt shards round robin), and
 * takes from another shard only when its own is empty. The global limits are one atomic word
 * (cache_held) that a free reserves in before it inserts. The trimmer unmaps retained mappings after
 * the decay time like any other free memory. They are not in the registry: a retained mapping is no
 * block. Retained mappings are page ranges, not whole mappings: they merge with a range freed next
 * to them, split for a smaller request, and a request none fits is assembled from them: the best
 * one grown by mremap, the pages of others moved into its new part (cache_gather, cache_fill); a
 * heap block's realloc works on the same ranges (resize_heap). The byte limit follows the peak of
 * the live blocks (cache_max_bytes).
 *
 * Locks (the process-wide order is in src/init.c): a thread holds at most one of this file's locks
 * at a time, registry shard or cache shard, and no other tamalloc lock with it; only the fork
 * handler holds them all, taken in the order registry shards 0..63, then cache shards 0..7. No
 * munmap or mremap runs under any of them; a registry table's own mmap does. Every static here is
 * zero-initialised (.bss: none of it is in the binary or resident before it is used); the locks get
 * their state from large_init, once, before the first block is made, and until then the entry points
 * answer without a lock that there is no block. */
#include "src/large.h"

#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "src/config.h"
#include "src/os.h"
#include "src/secret.h"

/* ---- the registry ---- */

#define TA_REG_SHARDS 64         /* a power of two */
#define TA_REG_MIN_CAP 512       /* slots of a shard's first table: one page */
#define TA_TOMBS_PER_SHARD 256   /* freed addresses a shard remembers */
#define REG_FREED ((uintptr_t)1) /* tombstone bit: block addresses are 16-aligned */

/* One shard. Invariants, under lock: live + tombs = the nonzero slots of table; (live + tombs) * 2
 * <= cap after every insertion but resize's (which may exceed it by the moves in flight, never fill
 * the table); every tombstone's address is in the shard's ring (reg_ring, so tombs <=
 * TA_TOMBS_PER_SHARD); bytes = the sum of the live blocks' map_size. Zero until the first block
 * (cap 0, no table), its lock given its state by large_init. */
typedef struct {
  ta_lock_t lock;     /* guards every field below and the shard's ring; valid once large_init ran */
  uintptr_t *table;   /* cap slots: 0, a live address, or address | REG_FREED */
  size_t cap;         /* slots, a power of two (0 before first use) */
  size_t live;        /* live blocks */
  size_t tombs;       /* tombstones */
  size_t bytes;       /* bytes mapped for the live blocks */
  unsigned ring_next; /* ring slot the next tombstone takes (its oldest) */
} __attribute__((aligned(64))) reg_shard_t;
_Static_assert(sizeof(reg_shard_t) <= 128, "a shard's fields fill two cache lines at most");

/* Zero-initialised (.bss), like every other static of this file: nothing of them is in the binary or
 * resident before the first large block. Measured (size, a static malloc(16) program): with the
 * locks statically initialised (not zero) and the rings inside the shards, 142,848 bytes of .data,
 * 64 KiB of them resident from the start (the kernel maps a file's pages in 16 at a time). */
static reg_shard_t reg[TA_REG_SHARDS];

/* Each shard's ring of tombstoned addresses (reg_ring[i] is reg[i]'s, under its lock), newest behind
 * ring_next; 0 unused. An entry whose slot became live again is stale: skipped. Apart from the
 * shards, so that large_init writes two pages of locks instead of touching 34 of rings. */
static uintptr_t reg_ring[TA_REG_SHARDS][TA_TOMBS_PER_SHARD];
static uintptr_t *ring_of(const reg_shard_t *s) { return reg_ring[s - reg]; }

/* Every shard's first table (TA_REG_MIN_CAP slots each, shard i's at i * TA_REG_MIN_CAP), one
 * mapping made before the first block is entered and never unmapped: a shard adopts its slice
 * without allocating, so entering a block that realloc moved into a shard never used before cannot
 * fail for memory. Written once (CAS, acq_rel) from NULL; read with acquire. */
static _Atomic(uintptr_t *) reg_first;
#define REG_FIRST_BYTES (TA_REG_SHARDS * TA_REG_MIN_CAP * sizeof(uintptr_t))

static bool reg_first_ready(void) {
  if (ta_likely(atomic_load_explicit(&reg_first, memory_order_acquire) != NULL)) return true;
  uintptr_t *mine = ta_os_map(REG_FIRST_BYTES);
  if (mine == NULL) return false;
  uintptr_t *expect = NULL;
  if (!atomic_compare_exchange_strong_explicit(&reg_first, &expect, mine, memory_order_acq_rel, memory_order_acquire))
    ta_os_unmap(mine, REG_FIRST_BYTES); /* another thread's won */
  return true;
}

static bool is_first_table(const uintptr_t *t) {
  uintptr_t *f = atomic_load_explicit(&reg_first, memory_order_acquire);
  return f != NULL && t >= f && t < f + TA_REG_SHARDS * TA_REG_MIN_CAP;
}

/* Bytes mapped for live large blocks (live_counted) in all shards, and the most they have been: what the cache's
 * byte limit measures against (cache_max_bytes). Relaxed: statistics that enforce a limit, no
 * memory is published through them. */
static _Atomic size_t live_bytes, peak_bytes;

/* Counted: blocks of more than the largest class, the requests only retained pages can serve (the
 * bins take the smaller ones once the threshold has risen, and pages kept for them would wait for
 * the decay while the bins grow: mixed_sizes' peak RSS rose 14 % with every block counted). */
static size_t live_counted(size_t map_size) { return map_size > TA_LARGE_CLASS_MAX + TA_PAGE ? map_size : 0; }

static void live_add(size_t add_map, size_t sub_map) {
  size_t add = live_counted(add_map), sub = live_counted(sub_map);
  if (add == sub) return;
  size_t now = atomic_fetch_add_explicit(&live_bytes, add - sub, memory_order_relaxed) + add - sub;
  size_t peak = atomic_load_explicit(&peak_bytes, memory_order_relaxed);
  while (now > peak &&
         !atomic_compare_exchange_weak_explicit(&peak_bytes, &peak, now, memory_order_relaxed, memory_order_relaxed)) {
  }
}

static uint64_t addr_hash(uintptr_t key) { return (uint64_t)(key >> 4) * 0x9e3779b97f4a7c15ull; }
/* The top bits pick the shard, lower ones the slot, so the two choices are independent. */
static reg_shard_t *shard_of(const void *p) { return &reg[addr_hash((uintptr_t)p) >> 58]; }
_Static_assert(TA_REG_SHARDS == 64, "shard_of takes the hash's top 6 bits");
static size_t slot_of(uintptr_t key, size_t cap) { return (size_t)(addr_hash(key) >> 20) & (cap - 1); }

/* s->lock held, s->cap != 0. Index of key's slot (live or tombstone), or of the empty slot where it
 * would go. */
static size_t reg_find(const reg_shard_t *s, uintptr_t key) {
  size_t i = slot_of(key, s->cap);
  while (s->table[i] != 0 && (s->table[i] & ~REG_FREED) != key) i = (i + 1) & (s->cap - 1);
  return i;
}

/* s->lock held. The slot value for p: 0 if the shard never saw it. */
static uintptr_t reg_get(const reg_shard_t *s, const void *p) {
  return s->cap ? s->table[reg_find(s, (uintptr_t)p)] : 0;
}

typedef struct {
  uintptr_t *table; /* a table reg_reserve replaced, to unmap once the shard's lock is dropped */
  size_t cap;
} old_table_t;

/* Unmaps a table reg_reserve replaced; with no lock held, so that no lock is held across munmap. A
 * first table stays (it is a slice of reg_first). */
static void old_table_free(old_table_t *old) {
  if (old->table && !is_first_table(old->table)) ta_os_unmap(old->table, old->cap * sizeof(uintptr_t));
  old->table = NULL;
}

/* s->lock held. Makes room for one more entry, doubling the table when it would pass half full;
 * false if that needed memory we lack. The old table is left in *dead for the caller to free after
 * it drops the lock. */
static bool reg_reserve(reg_shard_t *s, old_table_t *dead) {
  if (s->cap != 0 && (s->live + s->tombs + 1) * 2 <= s->cap) return true;
  if (s->cap == 0) {
    /* reg_first exists: a block was entered before anything could be resized or freed. */
    uintptr_t *f = atomic_load_explicit(&reg_first, memory_order_acquire);
    if (f == NULL) return false;
    s->table = f + (size_t)(s - reg) * TA_REG_MIN_CAP;
    s->cap = TA_REG_MIN_CAP;
    return true;
  }
  size_t ncap = s->cap * 2;
  uintptr_t *nt = ta_os_map(ncap * sizeof(uintptr_t));
  if (nt == NULL) return false;
  /* Fill the new table before it replaces the old one, so that at every moment `table` holds every
   * entry (a fork child may have to rebuild from it, see reg_fork_rebuild). */
  for (size_t i = 0; i < s->cap; i++) {
    if (s->table[i] == 0) continue;
    size_t j = slot_of(s->table[i] & ~REG_FREED, ncap);
    while (nt[j] != 0) j = (j + 1) & (ncap - 1);
    nt[j] = s->table[i];
  }
  atomic_signal_fence(memory_order_seq_cst);
  *dead = (old_table_t){.table = s->table, .cap = s->cap};
  s->table = nt;
  s->cap = ncap;
  return true;
}

/* s->lock held. Linear probing removal by shifting later entries back. */
static void reg_remove_at(reg_shard_t *s, size_t i) {
  size_t j = i, mask = s->cap - 1;
  for (;;) {
    s->table[i] = 0;
    for (;;) {
      j = (j + 1) & mask;
      if (s->table[j] == 0) return;
      size_t home = slot_of(s->table[j] & ~REG_FREED, s->cap);
      /* Move table[j] into the hole at i unless its home lies cyclically in (i, j]. */
      bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (!stays) break;
    }
    s->table[i] = s->table[j];
    i = j;
  }
}

/* s->lock held, room reserved (or, for resize, at least one empty slot left besides). p becomes
 * live, over its tombstone if it has one. */
static void reg_insert(reg_shard_t *s, uintptr_t p, size_t map_size) {
  size_t i = reg_find(s, p);
  ta_assert(s->table[i] != p); /* a live block's address cannot be mapped again */
  if (s->table[i] == (p | REG_FREED))
    s->tombs--;
  s->table[i] = p;
  s->live++;
  s->bytes += map_size;
  live_add(map_size, 0);
}

/* s->lock held. The live block in slot i becomes a tombstone; the ring remembers it, forgetting
 * the oldest tombstone if the ring is full (a stale entry, whose address is live again or already
 * gone, costs nothing to drop). */
static void reg_bury(reg_shard_t *s, size_t i, size_t map_size) {
  uintptr_t p = s->table[i];
  s->table[i] = p | REG_FREED;
  s->live--;
  s->tombs++;
  s->bytes -= map_size;
  live_add(0, map_size);
  uintptr_t *ring = ring_of(s);
  uintptr_t old = ring[s->ring_next];
  ring[s->ring_next] = p;
  s->ring_next = (s->ring_next + 1) % TA_TOMBS_PER_SHARD;
  if (old == 0) return;
  size_t j = reg_find(s, old);
  if (s->table[j] == (old | REG_FREED)) {
    reg_remove_at(s, j);
    s->tombs--;
  }
}

/* The tag covers every field free trusts: the address, and the size and offset it unmaps by. One
 * field changed by a stray write (a size that would take a live neighbour's mapping along) changes
 * the tag but for one time in 2^32, and the secret keeps a writer from computing a matching one. */
static uint32_t large_tag(const void *p, size_t map_size, uint32_t map_offset) {
  uint64_t h = ((uintptr_t)p ^ ta_secret) * 0x9e3779b97f4a7c15ull;
  h = (h ^ (h >> 29) ^ map_size) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 32) ^ map_offset) * 0x94d049bb133111ebull;
  return (uint32_t)(h >> 32);
}

static ta_large_hdr_t *hdr_of(const void *p) { return (ta_large_hdr_t *)((char *)p - 16); }

static void hdr_seal(ta_large_hdr_t *h, const void *p) {
  h->tag = large_tag(p, h->map_size, h->map_offset);
}

static bool hdr_ok(const void *p) {
  const ta_large_hdr_t *h = hdr_of(p);
  return h->tag == large_tag(p, h->map_size, h->map_offset);
}

/* p is live in the registry and its shard's lock held (so no other thread can unmap it): its header
 * must still be the one we wrote, before its size is trusted. */
static ta_large_view_t hdr_checked(const char *func, const void *p) {
  if (ta_unlikely(!hdr_ok(p))) ta_fatal_ptr(func, "corrupted large block header at", p);
  const ta_large_hdr_t *h = hdr_of(p);
  return (ta_large_view_t){.map_size = h->map_size, .map_offset = h->map_offset};
}

/* ---- the retained-mapping cache ---- */

#define TA_CACHE_SLOTS 16
#define TA_CACHE_MAX_BYTES ((size_t)128 << 20)
#define TA_CACHE_SHARDS 8

typedef struct {
  char *base;     /* the mapping */
  size_t size;    /* its length */
  uint32_t since; /* trim clock when it was retained */
} cache_entry_t;

/* One shard: n entries, each also counted in cache_held. A shard has room for all TA_CACHE_SLOTS,
 * so an insertion that reserved in cache_held always finds a slot. */
typedef struct {
  ta_lock_t lock;                     /* guards n and e */
  unsigned n;                         /* entries in e */
  _Atomic unsigned avail;             /* n, stored under lock, read without it as a hint only */
  cache_entry_t e[TA_CACHE_SLOTS];    /* the retained mappings */
} __attribute__((aligned(64))) cache_shard_t;

static cache_shard_t cache[TA_CACHE_SHARDS]; /* zero (.bss); the locks valid once large_init ran */

/* Entries retained (or reserved by a free about to insert one) in all shards, and their pages:
 * count << CACHE_COUNT_SHIFT | pages. Relaxed: it only enforces the limits; the entries themselves
 * are published under the shard locks. */
#define CACHE_COUNT_SHIFT 48
#define CACHE_PAGES_MASK (((uint64_t)1 << CACHE_COUNT_SHIFT) - 1)
static _Atomic uint64_t cache_held;
static _Atomic unsigned cache_deal;            /* next shard to deal a thread */
static __thread unsigned tls_cache_shard;      /* this thread's shard + 1; 0 before it has one */

/* ---- start-up: the locks' one-time initialisation ---- */

/* The shards' locks start as zero bytes, which is not TA_LOCK_INIT (an error-checking mutex's kind
 * is not zero): large_init writes every one of them once, before the first block is made. Until then
 * no block exists and nothing is retained, so the entry points that look a pointer up answer "no
 * block of ours" without a lock (large_ready), and those that would edit answer that nothing is
 * there. The fork handler takes the locks only once they are valid (ta_large_fork). */
enum { LARGE_UNINIT, LARGE_INITIALISING, LARGE_READY };
static _Atomic unsigned large_state;  /* LARGE_READY stored with release after every lock is written */
static __thread bool tls_initialising; /* this thread is writing the locks (a re-entry is an error) */

static bool large_ready(void) { return atomic_load_explicit(&large_state, memory_order_acquire) == LARGE_READY; }

static void large_locks_init(void) {
  for (unsigned i = 0; i < TA_REG_SHARDS; i++) {
    ta_lock_t fresh = TA_LOCK_INIT;
    reg[i].lock = fresh;
  }
  for (unsigned i = 0; i < TA_CACHE_SHARDS; i++) {
    ta_lock_t fresh = TA_LOCK_INIT;
    cache[i].lock = fresh;
  }
}

static TA_NOINLINE void large_init_slow(void) {
  unsigned expect = LARGE_UNINIT;
  if (atomic_compare_exchange_strong_explicit(&large_state, &expect, LARGE_INITIALISING, memory_order_acquire,
                                              memory_order_acquire)) {
    tls_initialising = true;
    large_locks_init();
    atomic_store_explicit(&large_state, LARGE_READY, memory_order_release);
    tls_initialising = false;
    return;
  }
  /* Another thread is writing the locks (72 stores), or this one was interrupted doing it. */
  if (tls_initialising) ta_fatal("large blocks' start-up was re-entered: was malloc called from a signal handler?");
  while (!large_ready()) sched_yield();
}

/* Before the first lock of this file is taken by the thread that makes a block. */
static void large_init(void) {
  if (ta_unlikely(!large_ready())) large_init_slow();
}

size_t ta_large_cached_bytes(void) {
  return (size_t)(atomic_load_explicit(&cache_held, memory_order_relaxed) & CACHE_PAGES_MASK) * TA_PAGE;
}

static cache_shard_t *cache_own(void) {
  if (ta_unlikely(tls_cache_shard == 0))
    tls_cache_shard = atomic_fetch_add_explicit(&cache_deal, 1, memory_order_relaxed) % TA_CACHE_SHARDS + 1;
  return &cache[tls_cache_shard - 1];
}

static uint64_t cache_units(size_t size) { return ((uint64_t)1 << CACHE_COUNT_SHIFT) | size / TA_PAGE; }

/* The byte limit: TA_CACHE_MAX_BYTES, and no more than the trim threshold (twice the largest block
 * freed above the threshold once it adapted, as glibc keeps at each arena's heap top) for each
 * thread dealt a shard, up to the shards, so that what is retained stays about what glibc's heaps
 * would keep (issue 12: peak RSS within 1.1x glibc's) while threads that each recycle a buffer still
 * find theirs. */
static size_t cache_max_bytes(void) {
  size_t t = atomic_load_explicit(&ta_config.trim_threshold, memory_order_relaxed);
  if (t == 0) return 0; /* M_TRIM_THRESHOLD 0: retain nothing */
  unsigned users = atomic_load_explicit(&cache_deal, memory_order_relaxed);
  users = users == 0 ? 1 : users > TA_CACHE_SHARDS ? TA_CACHE_SHARDS : users;
  size_t max = t > TA_CACHE_MAX_BYTES / users ? TA_CACHE_MAX_BYTES : t * users;
  /* Also what the live blocks were at their peak and are no more: retained pages that keep live plus
   * retained below the peak add nothing to the peak (the next requests are made of them first,
   * cache_gather), and each one a free unmaps is a page the next request faults in again. Measured
   * (issue 12): with the trim threshold alone (32 MiB), big_blocks unmapped 242 MiB at --scale 0.1
   * and faulted 3.4x the pages tcmalloc did. */
  size_t peak = atomic_load_explicit(&peak_bytes, memory_order_relaxed);
  size_t live = atomic_load_explicit(&live_bytes, memory_order_relaxed);
  size_t below = peak > live ? peak - live : 0;
  if (below > max) max = below;
  return max < TA_CACHE_MAX_BYTES ? max : TA_CACHE_MAX_BYTES;
}

/* Room for one more retained mapping of `size` bytes within both limits: reserved, true. */
static bool cache_reserve(size_t size) {
  uint64_t cur = atomic_load_explicit(&cache_held, memory_order_relaxed);
  for (;;) {
    if ((cur >> CACHE_COUNT_SHIFT) + 1 > TA_CACHE_SLOTS) return false;
    if (((cur & CACHE_PAGES_MASK) + size / TA_PAGE) * TA_PAGE > cache_max_bytes()) return false;
    if (atomic_compare_exchange_weak_explicit(&cache_held, &cur, cur + cache_units(size), memory_order_relaxed,
                                              memory_order_relaxed))
      return true;
  }
}

static void cache_unreserve(size_t size) {
  atomic_fetch_sub_explicit(&cache_held, cache_units(size), memory_order_relaxed);
}

/* A retained mapping serves a request that needs at most a quarter less. */
static bool cache_fits(size_t have, size_t need) { return have >= need && have <= need + need / 4; }

/* A retained mapping larger than a request by at least this much is split: the request takes its
 * head, its tail stays retained (no system call: both are ranges of the same mapping, and munmap and
 * mremap take any page range). Smaller tails could serve no heap request (those are above the 1 MiB
 * class) and are cut off instead. */
#define TA_CACHE_SPLIT_MIN ((size_t)1 << 20)
static bool cache_splits(size_t have, size_t need) { return have >= need && have - need >= TA_CACHE_SPLIT_MIN; }

/* c->lock held: the index of the retained mapping that best serves `need` bytes: the smallest that
 * is large enough, else the largest (the caller resizes it; its resident pages are reused either
 * way); -1 if c holds none. */
static int cache_best(const cache_shard_t *c, size_t need) {
  int best = -1;
  for (unsigned i = 0; i < c->n; i++) {
    if (best < 0) {
      best = (int)i;
      continue;
    }
    size_t have = c->e[i].size, cur = c->e[best].size;
    bool better = have >= need ? (cur < need || have < cur) : (cur < need && have > cur);
    if (better) best = (int)i;
  }
  return best;
}

/* A retained mapping for `need` bytes, its reservation in cache_held released: one that fits
 * (cache_fits) or splits (cache_splits: the head is taken, the tail stays in its slot) from this
 * thread's shard, else from another shard, else (misfit_ok) the best misfit found, from this thread's shard
 * first (a misfit costs an mremap; looking at the other shards first costs a few uncontended locks).
 * Measured (issue 12): without the split, large_loop's freed 5-25 MiB mappings met a request of
 * another size, and the mremap that cut them gave back pages the next request faulted in again. */
static char *cache_take(size_t need, size_t *size, bool misfit_ok) {
  unsigned start = (unsigned)(cache_own() - cache);
  for (int pass = 0; pass < (misfit_ok ? 2 : 1); pass++) {
    for (unsigned k = 0; k < TA_CACHE_SHARDS; k++) {
      cache_shard_t *c = &cache[(start + k) % TA_CACHE_SHARDS];
      if (atomic_load_explicit(&c->avail, memory_order_relaxed) == 0) continue;
      char *base = NULL;
      bool split = false;
      ta_lock(&c->lock);
      int best = cache_best(c, need);
      if (best >= 0 && cache_splits(c->e[best].size, need)) {
        base = c->e[best].base;
        *size = need;
        split = true;
        c->e[best].base += need;
        c->e[best].size -= need;
      } else if (best >= 0 && (pass == 1 || cache_fits(c->e[best].size, need))) {
        base = c->e[best].base;
        *size = c->e[best].size;
        c->e[best] = c->e[--c->n];
        atomic_store_explicit(&c->avail, c->n, memory_order_relaxed);
      }
      ta_unlock(&c->lock);
      if (base != NULL) {
        /* A split leaves the entry (its count) and takes only the head's pages. */
        atomic_fetch_sub_explicit(&cache_held, split ? *size / TA_PAGE : cache_units(*size), memory_order_relaxed);
        return base;
      }
    }
  }
  return NULL;
}

/* The range [base, base + size), reserved in cache_held, joins this thread's shard, merged with the
 * shard's retained ranges it touches: a block freed next to the tail split off it (or next to a
 * block freed before it) becomes one range again, which serves a larger request without a system
 * call. A merged range may span two kernel mappings, which mremap refuses whole: the moves that take
 * such ranges go piece by piece (move_pages). Merging keeps the pages and frees a slot. */
static void cache_put(char *base, size_t size) {
  cache_shard_t *c = cache_own();
  uint64_t merged = 0;
  ta_lock(&c->lock);
  ta_assert(c->n < TA_CACHE_SLOTS);
  for (unsigned i = 0; i < c->n;) {
    cache_entry_t *e = &c->e[i];
    if (e->base + e->size == base || base + size == e->base) {
      if (e->base < base) base = e->base;
      size += e->size;
      *e = c->e[--c->n];
      merged++;
    } else {
      i++;
    }
  }
  c->e[c->n++] = (cache_entry_t){.base = base, .size = size, .since = ta_os_clock_ms()};
  atomic_store_explicit(&c->avail, c->n, memory_order_relaxed);
  ta_unlock(&c->lock);
  /* The merged entries' pages stay counted, in the one entry they became. */
  if (merged) atomic_fetch_sub_explicit(&cache_held, merged << CACHE_COUNT_SHIFT, memory_order_relaxed);
}

/* Takes the first `need` bytes of the retained range that starts at `at`, if one of at least that
 * size is retained (in any shard): the pages right after a block, for it to grow into. */
static bool cache_take_at(char *at, size_t need) {
  for (unsigned k = 0; k < TA_CACHE_SHARDS; k++) {
    cache_shard_t *c = &cache[k];
    if (atomic_load_explicit(&c->avail, memory_order_relaxed) == 0) continue;
    bool taken = false, whole = false;
    ta_lock(&c->lock);
    for (unsigned i = 0; i < c->n; i++) {
      cache_entry_t *e = &c->e[i];
      if (e->base != at) continue;
      if (e->size < need) break;
      taken = true;
      whole = e->size == need;
      if (whole) {
        *e = c->e[--c->n];
        atomic_store_explicit(&c->avail, c->n, memory_order_relaxed);
      } else {
        e->base += need;
        e->size -= need;
      }
      break;
    }
    ta_unlock(&c->lock);
    if (taken) {
      atomic_fetch_sub_explicit(&cache_held, whole ? cache_units(need) : need / TA_PAGE, memory_order_relaxed);
      return true;
    }
  }
  return false;
}

/* A free that finds the limits full makes room for its mapping by unmapping smaller retained ones,
 * smallest first: a larger mapping serves more requests (cache_splits), and the one being freed is
 * resident now, while the small ones are mostly tails. True once `size` is reserved; false if only
 * mappings at least as large are retained. No lock is held across the munmap. Measured (issue 12):
 * with tails kept but no eviction, large_loop's frees found the 128 MiB full of tails and unmapped
 * the freed 5-25 MiB blocks (90 of 250 frees), and the next requests grew tails by mremap, faulting. */
static bool cache_make_room(size_t size) {
  for (unsigned tries = 0; tries <= TA_CACHE_SLOTS; tries++) {
    if (cache_reserve(size)) return true;
    unsigned vk = 0;
    char *vbase = NULL;
    size_t vsize = size;
    for (unsigned k = 0; k < TA_CACHE_SHARDS; k++) {
      cache_shard_t *c = &cache[k];
      if (atomic_load_explicit(&c->avail, memory_order_relaxed) == 0) continue;
      ta_lock(&c->lock);
      for (unsigned i = 0; i < c->n; i++)
        if (c->e[i].size < vsize) {
          vk = k;
          vbase = c->e[i].base;
          vsize = c->e[i].size;
        }
      ta_unlock(&c->lock);
    }
    if (vbase == NULL) return false;
    cache_shard_t *c = &cache[vk];
    bool taken = false;
    ta_lock(&c->lock);
    for (unsigned i = 0; i < c->n; i++)
      if (c->e[i].base == vbase && c->e[i].size == vsize) {
        c->e[i] = c->e[--c->n];
        atomic_store_explicit(&c->avail, c->n, memory_order_relaxed);
        taken = true;
        break;
      }
    ta_unlock(&c->lock);
    if (taken) {
      ta_os_unmap(vbase, vsize);
      cache_unreserve(vsize);
    }
  }
  return false;
}

/* Keeps [base, base + size), pages no block uses any more, for reuse if the limits allow (making
 * room as a free does), else unmaps it. True if kept. No lock held. */
static bool retain_or_unmap(char *base, size_t size) {
  if (cache_make_room(size)) {
    cache_put(base, size);
    return true;
  }
  ta_os_unmap(base, size);
  return false;
}

/* Moves the pages of [src, src + len) to [dst, dst + len), a range of fresh pages, and unmaps src:
 * by mremap, which takes one kernel mapping at a time, so a range that spans several (cache_put
 * merges neighbours, cache_fill assembles mappings of several) is moved in halves until each half
 * lies in one; a page mremap still refuses (no memory for a kernel mapping) is copied and unmapped.
 * Both ranges are the caller's alone: no other thread reads them meanwhile. Calls: one for a range
 * in one mapping, about 2 log2(pages) more for each boundary inside it. Returns the bytes copied. */
static size_t move_pages(char *src, size_t len, char *dst) {
  if (ta_os_move(src, len, dst)) return 0;
  if (len <= TA_PAGE) {
    memcpy(dst, src, len);
    ta_os_unmap(src, len);
    return len;
  }
  size_t half = len / TA_PAGE / 2 * TA_PAGE;
  return move_pages(src, half, dst) + move_pages(src + half, len - half, dst + half);
}

/* Retained ranges a gathered mapping is made of, at most: each costs an mremap and leaves the
 * mapping one more kernel mapping (vm.max_map_count). */
#define TA_GATHER_MAX 8

/* Fills [dest + off, dest + size), pages of a fresh mapping, with the pages of retained ranges,
 * largest misfit first: mremap moves their page tables there, so what the program touches next is
 * already resident and no byte is copied. What no range covers stays fresh (zero, faulted in on
 * first touch). Measured (issue 12): big_blocks faulted in 4 pages for each one tcmalloc did, with
 * 32 MiB retained in ranges none of which fitted the next request. True if any page moved. */
static bool cache_fill(char *dest, size_t off, size_t size) {
  bool moved = false;
  for (unsigned n = 0; n < TA_GATHER_MAX && off < size && ta_large_cached_bytes() != 0; n++) {
    size_t rem = size - off, have = 0;
    char *r = cache_take(rem, &have, true);
    if (r == NULL) break;
    size_t len = have < rem ? have : rem;
    (void)move_pages(r, len, dest + off); /* a page copied is one it could not move */
    /* The rest stays kept if it could serve a heap request (cache_splits' rule); a smaller rest
     * would only hold a slot and resident pages until the decay. */
    if (have - len >= TA_CACHE_SPLIT_MIN)
      retain_or_unmap(r + len, have - len);
    else if (len < have)
      ta_os_unmap(r + len, have - len);
    off += len;
    moved = true;
  }
  return moved;
}

/* A mapping of size bytes made of retained pages as far as they go; NULL, with nothing mapped, if
 * none is retained or there is no memory. *fresh: no page was retained (all read as zero). The best
 * retained range (cache_take's misfit) grows to the size by mremap, in place or moved, and the pages
 * it lacks come from other ranges (cache_fill), so a block made of one range is one kernel mapping,
 * as a block of its own is (tests/seed/seed_size finds the whole block in its header's mapping), and
 * costs one call instead of a mmap and a move. A range mremap refuses (it spans kernel mappings, or
 * no memory) moves into a fresh mapping piece by piece. */
static char *cache_gather(size_t size, bool *fresh) {
  *fresh = true;
  if (ta_large_cached_bytes() == 0) return NULL;
  size_t have = 0;
  char *r = cache_take(size, &have, true);
  if (r == NULL) return NULL;
  if (have >= size) {
    /* Larger by less than a split's worth (cache_splits): the rest could serve no heap request. */
    if (have > size) ta_os_unmap(r + size, have - size);
    *fresh = false;
    return r;
  }
  bool spans;
  char *dest = ta_os_remap(r, have, size, &spans);
  if (dest == NULL) {
    dest = ta_os_map(size);
    if (dest == NULL) {
      retain_or_unmap(r, have);
      return NULL;
    }
    (void)move_pages(r, have, dest); /* a page copied is one it could not move */
  }
  (void)cache_fill(dest, have, size);
  *fresh = false;
  return dest;
}

/* Cache trims that have taken mappings out of the shards and not yet unmapped them all. A forced
 * trim (malloc_trim) waits for them, so that what the cache held is gone when it returns, also when
 * the decay's trim took it a moment before (the test large_rss_trim saw 98 MiB still resident). */
static _Atomic unsigned trims_unmapping;

/* ---- fork ---- */

/* A child whose parent may have been halfway through an edit of a shard (a removal shifts entries
 * back, so one may be missing from its probe chain for a moment, or present twice) rebuilds that
 * shard by inserting every entry anew into a fresh table; its ring becomes the tombstones found. */
static void reg_fork_rebuild(reg_shard_t *s) {
  uintptr_t *old = s->table;
  size_t ocap = s->cap;
  uintptr_t first_copy[TA_REG_MIN_CAP];
  if (old != NULL && is_first_table(old)) {
    /* The rebuilt shard adopts the same slice again: read the entries from a copy. */
    memcpy(first_copy, old, sizeof first_copy);
    memset(old, 0, sizeof first_copy);
    old = first_copy;
  }
  s->table = NULL;
  s->cap = s->live = s->tombs = s->bytes = 0;
  s->ring_next = 0;
  memset(ring_of(s), 0, sizeof reg_ring[0]);
  for (size_t i = 0; i < ocap; i++) {
    uintptr_t v = old[i];
    if (v == 0) continue;
    bool freed = (v & REG_FREED) != 0;
    if (freed && s->tombs >= TA_TOMBS_PER_SHARD) continue;
    old_table_t dead = {0};
    bool ok = reg_reserve(s, &dead);
    old_table_free(&dead);
    if (!ok) break; /* no memory: the blocks not re-entered become unknown */
    size_t j = reg_find(s, v & ~REG_FREED);
    if (s->table[j] != 0) continue; /* present twice */
    s->table[j] = v;
    if (freed) {
      s->tombs++;
      ring_of(s)[s->ring_next++] = v & ~REG_FREED;
      s->ring_next %= TA_TOMBS_PER_SHARD;
    } else {
      s->live++;
      /* The block is mapped in the child too; a header that fails its tag is counted as nothing. */
      if (hdr_ok((void *)v)) s->bytes += hdr_of((void *)v)->map_size;
    }
  }
  if (old && old != first_copy) ta_os_unmap(old, ocap * sizeof(uintptr_t));
}

void ta_large_fork(ta_fork_phase_t phase) {
  static bool reg_taken[TA_REG_SHARDS];     /* fork_lock (src/init.c) */
  static bool cache_taken[TA_CACHE_SHARDS]; /* fork_lock */
  if (phase == TA_FORK_PREPARE && !large_ready()) {
    /* No lock is valid yet (or another thread is writing them): take none. No block exists; one
     * made meanwhile by another thread is in a shard whose lock was not taken, which the child
     * rebuilds like any other. */
    memset(reg_taken, 0, sizeof reg_taken);
    memset(cache_taken, 0, sizeof cache_taken);
    return;
  }
  if (phase == TA_FORK_PARENT) {
    for (unsigned i = TA_CACHE_SHARDS; i-- > 0;) ta_fork_one(&cache[i].lock, &cache_taken[i], phase);
    for (unsigned i = TA_REG_SHARDS; i-- > 0;) ta_fork_one(&reg[i].lock, &reg_taken[i], phase);
    return;
  }
  /* A shard without a table holds nothing to rebuild (and its ring is left untouched). */
  for (unsigned i = 0; i < TA_REG_SHARDS; i++)
    if (!ta_fork_one(&reg[i].lock, &reg_taken[i], phase) && phase >= TA_FORK_CHILD && reg[i].cap != 0)
      reg_fork_rebuild(&reg[i]);
  bool rebuilt = false;
  for (unsigned i = 0; i < TA_CACHE_SHARDS; i++) {
    if (!ta_fork_one(&cache[i].lock, &cache_taken[i], phase) && phase >= TA_FORK_CHILD) {
      /* Its bookkeeping may be torn: forget its mappings (their address space is lost to the
       * child; no block is). */
      cache[i].n = 0;
      atomic_store_explicit(&cache[i].avail, 0, memory_order_relaxed);
      rebuilt = true;
    }
  }
  if (phase >= TA_FORK_CHILD) {
    /* A parent's trim caught between its take and its unmaps is no thread of the child's. */
    atomic_store_explicit(&trims_unmapping, 0, memory_order_relaxed);
    /* The child's live blocks, counted anew: a parent's thread may have been between a shard's edit
     * and its count. */
    size_t sum = 0;
    for (unsigned i = 0; i < TA_REG_SHARDS; i++)
      for (size_t k = 0; k < reg[i].cap; k++) {
        uintptr_t e = reg[i].table[k];
        if (e != 0 && !(e & REG_FREED) && hdr_ok((void *)e)) sum += live_counted(hdr_of((void *)e)->map_size);
      }
    atomic_store_explicit(&live_bytes, sum, memory_order_relaxed);
  }
  /* Every lock has its fresh state in the child now (ta_fork_one), whatever large_init had done. */
  if (phase >= TA_FORK_CHILD) atomic_store_explicit(&large_state, LARGE_READY, memory_order_release);
  if (phase >= TA_FORK_CHILD && rebuilt) {
    /* The limits' word counts what the whole shards hold (a parent's free that had reserved but not
     * yet inserted does not exist here). */
    uint64_t held = 0;
    for (unsigned i = 0; i < TA_CACHE_SHARDS; i++)
      for (unsigned k = 0; k < cache[i].n; k++) held += cache_units(cache[i].e[k].size);
    atomic_store_explicit(&cache_held, held, memory_order_relaxed);
  }
}

/* ---- blocks ---- */

/* Enters p, a block of map_size mapped bytes, in the registry; false (nothing entered) if a table
 * could not grow. */
static bool reg_enter(void *p, size_t map_size) {
  if (!reg_first_ready()) return false;
  reg_shard_t *s = shard_of(p);
  old_table_t dead = {0};
  ta_lock(&s->lock);
  bool ok = reg_reserve(s, &dead);
  if (ok) reg_insert(s, (uintptr_t)p, map_size);
  ta_unlock(&s->lock);
  old_table_free(&dead);
  return ok;
}

void *ta_large_alloc(size_t size, size_t align, bool reuse, bool *fresh) {
  /* The tag depends on the secret: the router ran ta_init before the first call. */
  *fresh = true;
  large_init();
  size_t offset = align <= 16 ? 16 : (align <= TA_PAGE ? align : TA_PAGE);
  if (size > TA_MAX_REQUEST || align > TA_MAX_REQUEST) return NULL;
  size_t map_size = ta_align_up(size + offset, TA_PAGE);
  char *base = NULL;
  if (reuse && offset == 16) {
    size_t have = 0;
    base = cache_take(map_size, &have, false);
    if (base != NULL) {
      map_size = have;
      *fresh = false;
    } else {
      base = cache_gather(map_size, fresh);
    }
  }
  if (base != NULL) {
    /* A retained mapping: already faulted in. */
  } else if (align <= TA_PAGE) {
    base = ta_os_map(map_size);
    if (base == NULL) return NULL;
  } else {
    /* The block must sit at a multiple of align with its header in the page before it. */
    size_t over = map_size + align;
    if (over < map_size) return NULL;
    char *raw = ta_os_map(over);
    if (raw == NULL) return NULL;
    uintptr_t p = ((uintptr_t)raw + TA_PAGE + align - 1) & ~(uintptr_t)(align - 1);
    base = (char *)p - TA_PAGE;
    size_t head = (size_t)(base - raw);
    size_t tail = over - head - map_size;
    if (head) ta_os_unmap(raw, head);
    if (tail) ta_os_unmap(base + map_size, tail);
  }
  char *p = base + offset;
  ta_large_hdr_t *h = hdr_of(p);
  h->map_size = map_size;
  h->map_offset = (uint32_t)offset;
  hdr_seal(h, p);
  /* Entered only now, header written: the registry names only blocks whose header is whole. */
  if (!reg_enter(p, map_size)) {
    ta_os_unmap(base, map_size);
    return NULL;
  }
  return p;
}

bool ta_large_owns(const void *p) {
  if (!large_ready()) return false;
  reg_shard_t *s = shard_of(p);
  ta_lock(&s->lock);
  bool found = reg_get(s, p) == (uintptr_t)p;
  ta_unlock(&s->lock);
  return found && p != NULL;
}

bool ta_large_was_freed(const void *p) {
  if (!large_ready()) return false;
  reg_shard_t *s = shard_of(p);
  ta_lock(&s->lock);
  bool found = reg_get(s, p) == ((uintptr_t)p | REG_FREED);
  ta_unlock(&s->lock);
  return found && p != NULL;
}

bool ta_large_lookup(const char *func, const void *p, ta_large_view_t *out) {
  if (!large_ready()) return false;
  reg_shard_t *s = shard_of(p);
  ta_lock(&s->lock);
  bool live = p != NULL && reg_get(s, p) == (uintptr_t)p;
  if (live) *out = hdr_checked(func, p);
  ta_unlock(&s->lock);
  return live;
}

size_t ta_large_cache_trim(uint32_t now, long decay_ms, bool force) {
  size_t released = 0;
  if (!large_ready()) return 0; /* nothing was ever retained */
  atomic_fetch_add_explicit(&trims_unmapping, 1, memory_order_relaxed);
  for (unsigned k = 0; k < TA_CACHE_SHARDS; k++) {
    cache_shard_t *c = &cache[k];
    if (atomic_load_explicit(&c->avail, memory_order_relaxed) == 0) continue;
    cache_entry_t out[TA_CACHE_SLOTS];
    unsigned n = 0;
    ta_lock(&c->lock);
    for (unsigned i = 0; i < c->n;) {
      if (force || (decay_ms >= 0 && (uint32_t)(now - c->e[i].since) >= (uint64_t)decay_ms)) {
        out[n++] = c->e[i];
        c->e[i] = c->e[--c->n];
      } else {
        i++;
      }
    }
    atomic_store_explicit(&c->avail, c->n, memory_order_relaxed);
    ta_unlock(&c->lock);
    for (unsigned i = 0; i < n; i++) {
      if (ta_os_unmap(out[i].base, out[i].size)) released += out[i].size;
      cache_unreserve(out[i].size);
    }
  }
  /* Release: a forced trim that reads the count drop with acquire sees the unmaps done. */
  atomic_fetch_sub_explicit(&trims_unmapping, 1, memory_order_release);
  while (force && atomic_load_explicit(&trims_unmapping, memory_order_acquire) != 0) sched_yield();
  return released;
}

bool ta_large_free(void *p, bool *retained) {
  *retained = false;
  if (!large_ready()) return false;
  reg_shard_t *s = shard_of(p);
  ta_lock(&s->lock);
  size_t i = s->cap ? reg_find(s, (uintptr_t)p) : 0;
  if (p == NULL || s->cap == 0 || s->table[i] != (uintptr_t)p) {
    ta_unlock(&s->lock);
    return false;
  }
  ta_large_view_t v = hdr_checked("free", p);
  reg_bury(s, i, v.map_size);
  ta_unlock(&s->lock);
  /* Ours alone from here: no other thread finds p live. */
  char *base = (char *)p - v.map_offset;
  size_t usable = ta_large_view_usable(&v);
  /* Below the threshold (it rose after this block was made, or the block came from a retained
   * mapping): keep the mapping for the next request of its size, if there is room. */
  if (v.map_offset == 16 && usable <= ta_mmap_threshold() && cache_make_room(v.map_size)) {
    cache_put(base, v.map_size);
    *retained = true;
    return true;
  }
  if (v.map_offset == 16) ta_config_adapt_mmap_threshold(usable, TA_LARGE_CLASS_MAX); /* not for aligned blocks */
  /* If munmap fails (no VMA slot to split), the mapping stays: wasted, but nothing is handed out
   * twice, since the registry no longer names it. */
  ta_os_unmap(base, v.map_size);
  return true;
}

bool ta_large_size_matches(const ta_large_view_t *v, size_t size, size_t align) {
  (void)align; /* aligned mappings are trimmed to exactly the rounded size, like plain ones */
  if (size > ta_large_view_usable(v)) return false;
  return cache_fits(v->map_size, ta_align_up(size + v->map_offset, TA_PAGE));
}

/* s->lock held, p live in s with view *v: p's mapping is now map_size bytes (a page multiple, the
 * header's offset included). */
static void hdr_resize(reg_shard_t *s, void *p, ta_large_view_t *v, size_t map_size) {
  s->bytes = s->bytes - v->map_size + map_size;
  live_add(map_size, v->map_size);
  ta_large_hdr_t *h = hdr_of(p);
  h->map_size = map_size;
  hdr_seal(h, p);
  v->map_size = map_size;
}

/* A heap block (plain alignment, new size below the threshold) grows by copying into a retained
 * range when what it copies is at most this many times what it would fault in: measured on this
 * machine (issue 12), a page fault costs about 1 ns per byte and a copy of resident memory a tenth
 * of that, so copying 4 bytes to avoid faulting 1 is still the cheaper, and the old pages become a
 * retained range instead of staying beside a grown mapping. */
#define TA_GROW_COPY_RATIO 4

/* The heap paths of realloc, tried before mremap; NULL if none applies. Shrinking keeps the block
 * where it is and retains the tail; growing takes the retained range right after the block when
 * there is one (in place, no system call), else copies into a retained range that fits. */
static void *resize_heap(void *p, size_t map_size, ta_large_resize_t *how) {
  reg_shard_t *s = shard_of(p);
  ta_large_view_t v;
  ta_lock(&s->lock);
  if (reg_get(s, p) != (uintptr_t)p) {
    ta_unlock(&s->lock);
    how->live = false;
    return NULL;
  }
  v = hdr_checked("realloc", p);
  char *base = (char *)p - v.map_offset;
  if (map_size < v.map_size) {
    size_t old_map = v.map_size;
    hdr_resize(s, p, &v, map_size);
    ta_unlock(&s->lock);
    how->retained = retain_or_unmap(base + map_size, old_map - map_size);
    return p;
  }
  ta_unlock(&s->lock);
  size_t grow = map_size - v.map_size;
  if (cache_take_at(base + v.map_size, grow)) {
    ta_lock(&s->lock);
    bool still = reg_get(s, p) == (uintptr_t)p && hdr_ok(p) && hdr_of(p)->map_size == v.map_size;
    if (still) hdr_resize(s, p, &v, map_size);
    ta_unlock(&s->lock);
    if (still) return p;
    /* Freed or resized by another thread meanwhile (a race in the program): the pages go back. */
    how->retained = retain_or_unmap(base + v.map_size, grow);
    how->live = false;
    return NULL;
  }
  size_t usable = ta_large_view_usable(&v);
  if (usable > TA_GROW_COPY_RATIO * grow) return NULL;
  size_t have = 0;
  char *nb = cache_take(map_size, &have, false);
  if (nb == NULL) return NULL;
  char *q = nb + 16;
  ta_large_hdr_t *h = hdr_of(q);
  h->map_size = have;
  h->map_offset = 16;
  hdr_seal(h, q);
  if (!reg_enter(q, have)) {
    how->retained = retain_or_unmap(nb, have);
    return NULL;
  }
  memcpy(q, p, usable);
  how->copied = usable;
  bool kept;
  if (!ta_large_free(p, &kept)) {
    /* Freed by another thread while we copied (a race in the program): report p, drop q. */
    ta_large_free(q, &kept);
    how->live = false;
    return NULL;
  }
  how->retained |= kept;
  return q;
}

void *ta_large_resize(void *p, size_t size, ta_large_resize_t *how) {
  *how = (ta_large_resize_t){.live = large_ready()};
  if (!how->live) return NULL;
  bool *live = &how->live;
  reg_shard_t *s = shard_of(p);
  ta_lock(&s->lock);
  size_t i = s->cap ? reg_find(s, (uintptr_t)p) : 0;
  *live = p != NULL && s->cap != 0 && s->table[i] == (uintptr_t)p;
  if (!*live) {
    ta_unlock(&s->lock);
    return NULL;
  }
  ta_large_view_t v = hdr_checked("realloc", p);
  size_t map_size = size > TA_MAX_REQUEST ? 0 : ta_align_up(size + v.map_offset, TA_PAGE);
  if (map_size == 0 || map_size == v.map_size) {
    ta_unlock(&s->lock);
    return map_size ? p : NULL;
  }
  bool heap = v.map_offset == 16 && size < ta_mmap_threshold();
  if (heap) {
    ta_unlock(&s->lock);
    void *q = resize_heap(p, map_size, how);
    if (q != NULL || !*live) return q;
    /* None applied: mremap, as for a block above the threshold. The block may have changed since the
     * lock was dropped (only by a racing program): look it up again. */
    ta_lock(&s->lock);
    i = s->cap ? reg_find(s, (uintptr_t)p) : 0;
    *live = s->cap != 0 && s->table[i] == (uintptr_t)p;
    if (!*live) {
      ta_unlock(&s->lock);
      return NULL;
    }
    v = hdr_checked("realloc", p);
    if (map_size == v.map_size) {
      ta_unlock(&s->lock);
      return p;
    }
  }
  /* A tombstone before mremap may unmap the old address: another thread's new mapping can land there
   * at once, and its registration must find no live entry of ours. */
  reg_bury(s, i, v.map_size);
  ta_unlock(&s->lock);
  char *old_base = (char *)p - v.map_offset;
  bool spans;
  char *base = ta_os_remap(old_base, v.map_size, map_size, &spans);
  if (base == NULL && spans) {
    /* A block made of retained ranges may span kernel mappings, which mremap refuses whole: move
     * its pages into a fresh mapping a piece at a time (move_pages: no byte copied). */
    base = ta_os_map(map_size);
    if (base != NULL) {
      size_t keep = map_size < v.map_size ? map_size : v.map_size;
      how->copied += move_pages(old_base, keep, base);
      if (keep < v.map_size) ta_os_unmap(old_base + keep, v.map_size - keep);
    }
  }
  char *q = base ? base + v.map_offset : p;
  if (base) {
    ta_large_hdr_t *nh = hdr_of(q);
    nh->map_size = map_size;
    hdr_seal(nh, q);
    /* A heap block's new pages are retained ones where there are some: not yet touched, and the
     * block is no other thread's to see before it is entered. */
    if (heap && map_size > v.map_size && cache_fill(base, v.map_size, map_size)) how->retained = true;
  } else {
    map_size = v.map_size; /* p as it was */
  }
  /* q (or p again) back in: p's tombstone stays if the block moved, so a free of the old address
   * reads as the double free it is. */
  reg_shard_t *t = shard_of(q);
  old_table_t dead = {0};
  ta_lock(&t->lock);
  if (!reg_reserve(t, &dead)) {
    /* No memory for a larger table (t has one: a first table needs none): enter it anyway while an
     * empty slot is left besides (the half load is for speed; probing needs one empty slot), else
     * make room by dropping a tombstone. */
    while (t->live + t->tombs + 2 > t->cap && t->tombs > 0) {
      size_t j = 0;
      while ((t->table[j] & REG_FREED) == 0) j++;
      reg_remove_at(t, j);
      t->tombs--;
    }
    if (t->live + t->tombs + 2 > t->cap) ta_fatal("out of memory for the large-block registry in realloc()");
  }
  reg_insert(t, (uintptr_t)q, map_size);
  ta_unlock(&t->lock);
  old_table_free(&dead);
  return base ? q : NULL;
}

void ta_large_totals(size_t *blocks, size_t *bytes) {
  *blocks = *bytes = 0;
  if (!large_ready()) return;
  for (unsigned k = 0; k < TA_REG_SHARDS; k++) {
    reg_shard_t *s = &reg[k];
    ta_lock(&s->lock);
    *blocks += s->live;
    *bytes += s->bytes;
    ta_unlock(&s->lock);
  }
}

size_t ta_large_snapshot(ta_large_info_t *out, size_t cap) {
  size_t n = 0;
  if (!large_ready()) return 0;
  for (unsigned k = 0; k < TA_REG_SHARDS; k++) {
    reg_shard_t *s = &reg[k];
    ta_lock(&s->lock);
    for (size_t i = 0; i < s->cap; i++) {
      uintptr_t v = s->table[i];
      if (v == 0 || (v & REG_FREED)) continue;
      if (n < cap) {
        /* A report trusts no header it has not checked. */
        const ta_large_hdr_t *h = hdr_of((void *)v);
        out[n] = hdr_ok((void *)v)
                     ? (ta_large_info_t){.ptr = v, .map_start = v - h->map_offset, .map_size = h->map_size}
                     : (ta_large_info_t){.ptr = v, .map_start = v, .map_size = 0};
      }
      n++;
    }
    ta_unlock(&s->lock);
  }
  return n;
}
