/* Large blocks: each its own mapping, with a 16-byte header before the pointer (ta_large_hdr_t).
 *
 * free() must never read memory it does not own, and a foreign pointer may sit at the start of an
 * unmapped page, so the header alone cannot tell a large block: every live large block is also in
 * the registry, an open-addressing hash set of block addresses behind large_lock. Large blocks cost
 * an mmap and page faults anyway; a locked hash probe is noise beside them. A small ring of recently
 * freed addresses lets a second free of the same block be named a double free.
 *
 * Retained mappings. A block at or above the mmap threshold is unmapped when freed. Once the adaptive
 * threshold (src/config.c) has risen past the largest size class, requests between the two are "heap"
 * requests that the bins cannot hold: their mappings are kept when freed, up to TA_CACHE_SLOTS of them
 * and TA_CACHE_MAX_BYTES in all, and reused by the next request of about the same size, so a loop of
 * multi-megabyte buffers stops paying a fault per page. The trimmer unmaps them after the decay time
 * like any other free memory. They are not in the registry: a retained mapping is no block. */
#include "src/large.h"

#include <stdatomic.h>
#include <string.h>

#include "src/config.h"
#include "src/os.h"
#include "src/secret.h"

static ta_lock_t large_lock = TA_LOCK_INIT;
static uintptr_t *reg;          /* large_lock: table of block addresses, 0 = empty slot */
static size_t reg_cap;          /* large_lock: slots, a power of two (0 before first use) */
static size_t reg_count;        /* large_lock: live blocks */
static size_t reg_bytes;        /* large_lock: bytes mapped for them */
#define TA_FREED_RING 64
static uintptr_t freed_ring[TA_FREED_RING]; /* large_lock: recently freed block addresses */
static unsigned freed_next;                 /* large_lock: next ring slot to overwrite */

#define TA_CACHE_SLOTS 16
#define TA_CACHE_MAX_BYTES ((size_t)128 << 20)
typedef struct {
  char *base;     /* the mapping */
  size_t size;    /* its length */
  uint32_t since; /* trim clock when it was retained */
} cache_entry_t;
static cache_entry_t cache[TA_CACHE_SLOTS]; /* large_lock: retained mappings, cache_n of them */
static unsigned cache_n;                    /* large_lock */
static size_t cache_bytes;                  /* large_lock: their total length */

typedef struct {
  uintptr_t *table; /* a table reg_reserve replaced, to unmap once large_lock is dropped */
  size_t cap;
} old_table_t;
static bool reg_reserve(old_table_t *old);
static void old_table_free(old_table_t *old);
static size_t reg_find(uintptr_t key);

/* A child whose parent may have been halfway through an edit of the registry (a removal shifts
 * entries back, so one may be missing from its probe chain for a moment, or present twice) rebuilds
 * it by inserting every entry anew into a fresh table, and forgets the retained mappings (their
 * bookkeeping may be torn; their address space is lost to the child, no block is). */
static void large_fork_rebuild(void) {
  cache_n = 0;
  cache_bytes = 0;
  uintptr_t *old = reg;
  size_t ocap = reg_cap;
  reg = NULL;
  reg_cap = reg_count = 0;
  for (size_t i = 0; i < ocap; i++) {
    if (old[i] == 0) continue;
    old_table_t dead = {0};
    bool ok = reg_reserve(&dead);
    old_table_free(&dead);
    if (!ok) break; /* no memory: the blocks not re-entered become unknown */
    size_t j = reg_find(old[i]);
    if (reg[j] == 0) {
      reg[j] = old[i];
      reg_count++;
    }
  }
  if (old) ta_os_unmap(old, ocap * sizeof(uintptr_t));
}

void ta_large_fork(ta_fork_phase_t phase) {
  static bool taken; /* fork_lock (src/init.c) */
  if (!ta_fork_one(&large_lock, &taken, phase) && phase >= TA_FORK_CHILD) large_fork_rebuild();
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

/* p is in the registry: its header must still be the one we wrote, before its size is trusted. */
static const ta_large_hdr_t *hdr_checked(const char *func, const void *p) {
  const ta_large_hdr_t *h = hdr_of(p);
  if (ta_unlikely(h->tag != large_tag(p, h->map_size, h->map_offset)))
    ta_fatal_ptr(func, "corrupted large block header at", p);
  return h;
}

static size_t slot_of(uintptr_t key, size_t cap) {
  return (size_t)((key >> 4) * 0x9e3779b97f4a7c15ull >> 20) & (cap - 1);
}

/* large_lock held. Index of key's slot, or of the empty slot where it would go. */
static size_t reg_find(uintptr_t key) {
  size_t i = slot_of(key, reg_cap);
  while (reg[i] != 0 && reg[i] != key) i = (i + 1) & (reg_cap - 1);
  return i;
}

/* Unmaps a table reg_reserve replaced; with large_lock not held, so that no lock is held across
 * munmap. */
static void old_table_free(old_table_t *old) {
  if (old->table) ta_os_unmap(old->table, old->cap * sizeof(uintptr_t));
  old->table = NULL;
}

/* large_lock held. Doubles the table when it is half full; false if that needed memory we lack.
 * The old table is left in *dead for the caller to free after it drops the lock. */
static bool reg_reserve(old_table_t *dead) {
  if (reg_cap != 0 && (reg_count + 1) * 2 <= reg_cap) return true;
  size_t ncap = reg_cap ? reg_cap * 2 : 1024;
  uintptr_t *nreg = ta_os_map(ncap * sizeof(uintptr_t));
  if (nreg == NULL) return false;
  uintptr_t *old = reg;
  size_t ocap = reg_cap;
  /* Fill the new table before it replaces the old one, so that at every moment `reg` holds every
   * entry (a fork child may have to rebuild from it, see large_fork_rebuild). */
  for (size_t i = 0; i < ocap; i++) {
    if (old[i] == 0) continue;
    size_t j = slot_of(old[i], ncap);
    while (nreg[j] != 0) j = (j + 1) & (ncap - 1);
    nreg[j] = old[i];
  }
  atomic_signal_fence(memory_order_seq_cst);
  reg = nreg;
  reg_cap = ncap;
  *dead = (old_table_t){.table = old, .cap = ocap};
  return true;
}

/* large_lock held. Linear probing removal by shifting later entries back (no tombstones). */
static void reg_remove_at(size_t i) {
  size_t j = i;
  for (;;) {
    reg[i] = 0;
    for (;;) {
      j = (j + 1) & (reg_cap - 1);
      if (reg[j] == 0) return;
      size_t home = slot_of(reg[j], reg_cap);
      /* Move reg[j] into the hole at i unless its home lies cyclically in (i, j]. */
      bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (!stays) break;
    }
    reg[i] = reg[j];
    i = j;
  }
}

static void freed_ring_forget(uintptr_t key) {
  for (unsigned i = 0; i < TA_FREED_RING; i++)
    if (freed_ring[i] == key) freed_ring[i] = 0;
}

/* Map a block of `size` bytes aligned to `align` (a power of two; 16 for plain malloc). */
/* A retained mapping serves a request that needs at most a quarter less. */
static bool cache_fits(size_t have, size_t need) { return have >= need && have <= need + need / 4; }

/* large_lock held: take the retained mapping that best serves `need` bytes: the smallest that is
 * large enough, else the largest (the caller resizes it; its resident pages are reused either way). */
static char *cache_take(size_t need, size_t *size) {
  int best = -1;
  for (unsigned i = 0; i < cache_n; i++) {
    if (best < 0) {
      best = (int)i;
      continue;
    }
    size_t have = cache[i].size, cur = cache[best].size;
    bool better = have >= need ? (cur < need || have < cur) : (cur < need && have > cur);
    if (better) best = (int)i;
  }
  if (best < 0) return NULL;
  char *base = cache[best].base;
  *size = cache[best].size;
  cache_bytes -= *size;
  cache[best] = cache[--cache_n];
  return base;
}

void *ta_large_alloc(size_t size, size_t align, bool reuse, bool *fresh) {
  /* The tag depends on the secret: the router ran ta_init before the first call. */
  *fresh = true;
  size_t offset = align <= 16 ? 16 : (align <= TA_PAGE ? align : TA_PAGE);
  if (size > TA_MAX_REQUEST || align > TA_MAX_REQUEST) return NULL;
  size_t map_size = ta_align_up(size + offset, TA_PAGE);
  char *base = NULL;
  if (reuse && offset == 16) {
    size_t have = 0;
    ta_lock(&large_lock);
    base = cache_take(map_size, &have);
    ta_unlock(&large_lock);
    if (base != NULL && !cache_fits(have, map_size)) {
      /* Too big: give the excess back; too small: grow it (mremap keeps what is resident). */
      char *moved = ta_os_remap(base, have, map_size);
      if (moved == NULL) ta_os_unmap(base, have);
      base = moved;
      have = map_size;
    }
    if (base != NULL) map_size = have;
    *fresh = base == NULL;
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
  old_table_t dead = {0};
  ta_lock(&large_lock);
  if (!reg_reserve(&dead)) {
    ta_unlock(&large_lock);
    ta_os_unmap(base, map_size);
    return NULL;
  }
  reg[reg_find((uintptr_t)p)] = (uintptr_t)p;
  reg_count++;
  reg_bytes += map_size;
  freed_ring_forget((uintptr_t)p);
  ta_unlock(&large_lock);
  old_table_free(&dead);
  return p;
}

bool ta_large_owns(const void *p) {
  bool found = false;
  ta_lock(&large_lock);
  if (reg_cap) found = reg[reg_find((uintptr_t)p)] == (uintptr_t)p;
  ta_unlock(&large_lock);
  return found;
}

bool ta_large_recently_freed(const void *p) {
  bool found = false;
  ta_lock(&large_lock);
  for (unsigned i = 0; i < TA_FREED_RING; i++) found |= freed_ring[i] == (uintptr_t)p;
  ta_unlock(&large_lock);
  return found && p != NULL;
}

size_t ta_large_cached_bytes(void) {
  ta_lock(&large_lock);
  size_t n = cache_bytes;
  ta_unlock(&large_lock);
  return n;
}

size_t ta_large_cache_trim(uint32_t now, long decay_ms, bool force) {
  cache_entry_t out[TA_CACHE_SLOTS];
  unsigned n = 0;
  ta_lock(&large_lock);
  for (unsigned i = 0; i < cache_n;) {
    if (force || (decay_ms >= 0 && (uint32_t)(now - cache[i].since) >= (uint64_t)decay_ms)) {
      out[n++] = cache[i];
      cache_bytes -= cache[i].size;
      cache[i] = cache[--cache_n];
    } else {
      i++;
    }
  }
  ta_unlock(&large_lock);
  size_t released = 0;
  for (unsigned i = 0; i < n; i++)
    if (ta_os_unmap(out[i].base, out[i].size)) released += out[i].size;
  return released;
}

bool ta_large_free(void *p) {
  ta_lock(&large_lock);
  size_t i = reg_cap ? reg_find((uintptr_t)p) : 0;
  if (reg_cap == 0 || reg[i] != (uintptr_t)p) {
    ta_unlock(&large_lock);
    return false;
  }
  const ta_large_hdr_t *h = hdr_checked("free", p);
  size_t map_size = h->map_size;
  char *base = (char *)p - h->map_offset;
  reg_remove_at(i);
  reg_count--;
  reg_bytes -= map_size;
  freed_ring[freed_next] = (uintptr_t)p;
  freed_next = (freed_next + 1) % TA_FREED_RING;
  uint32_t offset = h->map_offset;
  size_t usable = map_size - offset;
  /* Below the threshold (it rose after this block was made, or the block came from a retained
   * mapping): keep the mapping for the next request of its size, if there is room. */
  bool retain = offset == 16 && usable <= ta_mmap_threshold() && cache_n < TA_CACHE_SLOTS &&
                cache_bytes + map_size <= TA_CACHE_MAX_BYTES;
  if (retain) {
    cache[cache_n++] = (cache_entry_t){.base = base, .size = map_size, .since = ta_os_clock_ms()};
    cache_bytes += map_size;
  }
  ta_unlock(&large_lock);
  if (retain) return true;
  if (offset == 16) ta_config_adapt_mmap_threshold(usable); /* not for aligned blocks */
  /* If munmap fails (no VMA slot to split), the mapping stays: wasted, but nothing is handed out
   * twice, since the registry no longer names it. */
  ta_os_unmap(base, map_size);
  return true;
}

bool ta_large_size_matches(const void *p, size_t size, size_t align) {
  const ta_large_hdr_t *h = hdr_of(p); /* checked by ta_large_usable */
  (void)align; /* aligned mappings are trimmed to exactly the rounded size, like plain ones */
  if (size > h->map_size - h->map_offset) return false;
  return cache_fits(h->map_size, ta_align_up(size + h->map_offset, TA_PAGE));
}

size_t ta_large_usable(const char *func, const void *p) {
  const ta_large_hdr_t *h = hdr_checked(func, p);
  return h->map_size - h->map_offset;
}

void *ta_large_resize(void *p, size_t size) {
  ta_large_hdr_t *h = hdr_of(p); /* checked by ta_large_usable */
  size_t offset = h->map_offset;
  if (size > TA_MAX_REQUEST) return NULL;
  size_t map_size = ta_align_up(size + offset, TA_PAGE);
  size_t old_size = h->map_size;
  if (map_size == old_size) return p;
  /* Out of the registry before mremap may unmap the old address: another thread's new mapping can
   * land there at once, and its registration must not collide with ours. */
  ta_lock(&large_lock);
  reg_remove_at(reg_find((uintptr_t)p));
  ta_unlock(&large_lock);
  char *base = ta_os_remap((char *)p - offset, old_size, map_size);
  char *q = base ? base + offset : p;
  if (base) {
    ta_large_hdr_t *nh = hdr_of(q);
    nh->map_size = map_size;
    hdr_seal(nh, q);
  }
  ta_lock(&large_lock);
  /* The table had room for p, so it has room for q. */
  reg[reg_find((uintptr_t)q)] = (uintptr_t)q;
  if (base) {
    reg_bytes = reg_bytes - old_size + map_size;
    freed_ring_forget((uintptr_t)q);
  }
  ta_unlock(&large_lock);
  return base ? q : NULL;
}

void ta_large_totals(size_t *blocks, size_t *bytes) {
  ta_lock(&large_lock);
  *blocks = reg_count;
  *bytes = reg_bytes;
  ta_unlock(&large_lock);
}

size_t ta_large_snapshot(ta_large_info_t *out, size_t cap) {
  size_t n = 0;
  ta_lock(&large_lock);
  for (size_t i = 0; i < reg_cap; i++) {
    if (reg[i] == 0) continue;
    if (n < cap) {
      const ta_large_hdr_t *h = hdr_of((void *)reg[i]);
      out[n] = (ta_large_info_t){.ptr = reg[i], .map_start = reg[i] - h->map_offset, .map_size = h->map_size};
    }
    n++;
  }
  ta_unlock(&large_lock);
  return n;
}
