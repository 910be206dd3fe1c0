/* realloc across every path a block can take (in place within a block, or by a change of its span's
 * class (arenas/resize.c), between size classes, bins to a mapping at the mmap threshold, mapping to mapping by mremap, mapping back to the bins), at
 * the edges of the classes near 1 MiB, of the largest class (TA_CLASS_MAX_SIZE) and of the
 * threshold, with the threshold set to several values, also changed between the malloc and the
 * realloc. Every byte the block keeps is checked after every step, and the router's copy counter
 * (ta_router_realloc_copied) says which path ran: a mapping that stays a mapping is never copied,
 * a move between the bins and a mapping copies exactly what it keeps. `double`: a buffer doubled
 * from 64 B to 64 MiB copies less than twice its final size in all (fresh, with the adaptive
 * threshold already risen, and with the threshold fixed at its 32 MiB ceiling). ta_* names only,
 * so it runs in sanitizer builds too. */
#include "large_util.h"
#include "src/os.h"
#include "src/router.h"

#define CLASS_MAX MIB /* TA_CLASS_MAX_SIZE */

static void set_threshold(size_t t) {
  CHECK(ta_mallopt(TA_OPT_MMAP_THRESHOLD, (long)t) == 1);
  CHECK_EQ_SZ(ta_getopt(TA_OPT_MMAP_THRESHOLD), t);
}

/* Where a request of n bytes goes with the threshold at t (README: the router's rule). */
static int mapped_for(size_t n, size_t t) { return n >= t || n > CLASS_MAX; }

static size_t pages(size_t n) { return (n + 16 + 4095) / 4096; }

static unsigned long steps;

/* One realloc from a live block p of `a` bytes (tag's pattern on all a; *mapped: whether it is a
 * mapping) to b bytes, the threshold now t. Checks contents and the path; returns the new block,
 * its pattern extended to all b bytes, and updates *mapped. */
static unsigned char *step(unsigned char *p, size_t a, size_t b, uint32_t tag, int *mapped, size_t t) {
  int was_mapped = *mapped;
  CHECK(ta_owns(p));
  size_t usable = ta_usable_size(p);
  CHECK(usable >= a);
  size_t c0 = ta_router_realloc_copied();
  unsigned long r0 = ta_os_calls(TA_OS_MREMAP), m0 = ta_os_calls(TA_OS_MMAP);
  unsigned char *q = ta_realloc(p, b);
  CHECK_MSG(q != NULL, "realloc(%zu -> %zu) failed", a, b);
  size_t keep = a < b ? a : b;
  size_t bad = pat_check(q, tag, 0, keep);
  CHECK_MSG(bad == keep, "realloc %zu -> %zu (threshold %zu, %s): byte %zu lost", a, b, t,
            was_mapped ? "mapped" : "bins", bad);
  size_t copied = ta_router_realloc_copied() - c0;
  unsigned long remaps = ta_os_calls(TA_OS_MREMAP) - r0, mmaps = ta_os_calls(TA_OS_MMAP) - m0;
  size_t full = usable < b ? usable : b; /* what a move copies */
  if (was_mapped) {
    if (mapped_for(b, t) && b < t && pages(b) * 4096 - 16 < usable) {
      /* A heap block shrinks where it is; its tail is retained, no system call but the eviction
       * of a smaller retained range (munmap). */
      CHECK_MSG(q == p && copied == 0 && remaps == 0, "heap realloc %zu -> %zu moved (copied %zu, %lu mremaps)",
                a, b, copied, remaps);
    } else if (mapped_for(b, t) && b < t && pages(b) * 4096 - 16 > usable) {
      /* A heap block grows into the retained range after it (in place, no call), or by a copy into
       * a retained range (of the old block: copies at most 4 times what it adds), or by mremap,
       * its new pages moved in from retained ranges (more mremaps; a block made of retained ranges
       * may span kernel mappings, which mremap refuses whole: then it moves piece by piece). mremap
       * may grow it where it is, when the addresses after it are free (a block grown from a
       * retained range by mremap often has free addresses after it). */
      if (q == p && remaps == 0)
        CHECK_MSG(copied == 0, "heap realloc %zu -> %zu in place copied %zu", a, b, copied);
      else if (q == p)
        CHECK_MSG(copied == 0 && mmaps == 0, "heap realloc %zu -> %zu grown where it is by mremap: copied %zu, %lu mmaps",
                  a, b, copied, mmaps);
      else if (copied != 0)
        CHECK_MSG(copied == usable && copied <= 4 * (b - a) + 8192 && remaps == 0,
                  "heap realloc %zu -> %zu copied %zu, %lu mremaps", a, b, copied, remaps);
      else
        CHECK_MSG(remaps >= 1, "heap realloc %zu -> %zu: %lu mremap calls", a, b, remaps);
    } else if (mapped_for(b, t)) {
      /* mremap or nothing: never a copy; within the mapping's pages, not even mremap. A block made
       * of retained ranges may span kernel mappings, which mremap refuses whole: then one fresh
       * mapping and its pages moved in piece by piece (at least one more mremap). */
      CHECK_MSG(copied == 0, "mapped realloc %zu -> %zu copied %zu bytes", a, b, copied);
      if (pages(b) * 4096 - 16 == usable)
        CHECK_MSG(q == p && remaps == 0, "realloc %zu -> %zu within the mapping's pages moved or remapped", a, b);
      else
        CHECK_MSG(remaps == 1 || (mmaps == 1 && remaps >= 2), "mapped realloc %zu -> %zu: %lu mremap, %lu mmap calls",
                  a, b, remaps, mmaps);
    } else {
      /* Back to the bins: a copy of exactly what is kept. */
      CHECK_MSG(copied == full && remaps == 0, "realloc %zu -> %zu to the bins (threshold %zu) copied %zu, %lu mremaps", a, b, t, copied, remaps);
      *mapped = 0;
    }
  } else {
    /* A bin block stays when the new size fits and uses more than half of it (it may stay down to a
     * quarter: four classes); otherwise it moves, to the bins or to a mapping, by one copy (and the
     * new mapping may be made of retained ranges moved into it: up to 8 mremaps, of no user bytes). */
    CHECK(remaps <= 8u * (unsigned long)mapped_for(b, t));
    if (b <= usable && b > usable / 2)
      CHECK_MSG(q == p && copied == 0, "realloc %zu -> %zu inside a %zu-byte block moved", a, b, usable);
    else if (q == p && b <= usable && b > usable / 4)
      CHECK(copied == 0); /* within four classes of the block: it may stay */
    else if (q == p)
      /* Resized in place (arenas/resize.c): the block alone in its span took the class of b, which
       * the bins serve, a class carved one block at a time (above 4 KiB). Nothing copied. */
      CHECK_MSG(copied == 0 && !mapped_for(b, t) && b > 4096 && ta_usable_size(q) >= b &&
                    ta_usable_size(q) <= b + b / 4 + 16,
                "realloc %zu -> %zu of a %zu-byte block stayed: copied %zu, now %zu bytes", a, b, usable, copied,
                ta_usable_size(q));
    else
      CHECK_MSG(copied == full, "realloc %zu -> %zu out of a %zu-byte block copied %zu", a, b, usable, copied);
    if (q != p) *mapped = mapped_for(b, t);
  }
  CHECK(ta_usable_size(q) >= b);
  pat_fill(q, tag, keep, b);
  steps++;
  return q;
}

/* Sizes on both sides of every edge that matters with threshold t. */
static size_t edge_sizes(size_t t, size_t *out) {
  size_t base[] = {1000,          64 * KIB,      t - 1,        t,          t + 1,         640 * KIB,
                   640 * KIB + 1, 896 * KIB,     896 * KIB + 1, MIB - 1,   MIB,           MIB + 1,
                   MIB + 4096,    2 * MIB + 123, 4 * MIB + 3};
  size_t n = 0;
  for (size_t i = 0; i < sizeof base / sizeof base[0]; i++) {
    int dup = 0;
    for (size_t k = 0; k < n; k++) dup |= out[k] == base[i];
    if (!dup) out[n++] = base[i];
  }
  return n;
}

/* Every pair of edge sizes, fresh block each time: malloc under t_alloc, realloc under t_now. */
static void pairs(size_t t_alloc, size_t t_now) {
  size_t sz[32], szb[32];
  size_t na = edge_sizes(t_alloc, sz), nb = edge_sizes(t_now, szb);
  uint32_t tag = (uint32_t)(t_alloc ^ (t_now << 3));
  for (size_t i = 0; i < na; i++) {
    for (size_t j = 0; j < nb; j++) {
      set_threshold(t_alloc);
      unsigned char *p = ta_malloc(sz[i]);
      CHECK(p != NULL);
      int mapped = mapped_for(sz[i], t_alloc);
      pat_fill(p, ++tag, 0, sz[i]);
      set_threshold(t_now);
      p = step(p, sz[i], szb[j], tag, &mapped, t_now);
      CHECK(pat_check(p, tag, 0, szb[j]) == szb[j]);
      ta_free(p);
    }
  }
}

/* One block walked up through the edges and back down, each edge approached from just above and
 * just below as well (steps inside a block or a mapping's pages). */
static void chain(size_t t) {
  set_threshold(t);
  size_t sz[32], n = edge_sizes(t, sz);
  uint32_t tag = 77;
  size_t cur = 100;
  unsigned char *p = ta_malloc(cur);
  int mapped = 0;
  pat_fill(p, tag, 0, cur);
  for (int round = 0; round < 2; round++) {
    for (size_t k = 0; k < 2 * n; k++) {
      size_t next = k < n ? sz[k] : sz[2 * n - 1 - k];
      size_t targets[3] = {next, next + 8, next - 8};
      for (int m = 0; m < 3; m++) {
        p = step(p, cur, targets[m], tag, &mapped, t);
        cur = targets[m];
      }
    }
  }
  CHECK(pat_check(p, tag, 0, cur) == cur);
  ta_free(p);
}

/* A buffer doubled from 64 B to 64 MiB, its last byte written at each step: the bytes realloc copied
 * stay below twice the final size (a vector's amortised bound), whatever the threshold. */
static void doubling(const char *how) {
  const size_t final = 64 * MIB;
  size_t c0 = ta_router_realloc_copied();
  size_t n = 64;
  unsigned char *p = ta_malloc(n);
  CHECK(p != NULL);
  p[0] = 0x5a;
  for (n = 128; n <= final; n *= 2) {
    p = ta_realloc(p, n);
    CHECK(p != NULL);
    CHECK(p[0] == 0x5a);
    CHECK(n < 4096 || p[n / 2 - 1] == (unsigned char)(n / 2));
    p[n - 1] = (unsigned char)n;
  }
  size_t copied = ta_router_realloc_copied() - c0;
  fprintf(stderr, "doubling (%s): %zu bytes copied for a %zu-byte buffer\n", how, copied, final);
  CHECK_MSG(copied < 2 * final, "%zu bytes copied, more than twice the final %zu", copied, final);
  ta_free(p);
}

/* mmap failing (injected) while mapped blocks grow by mremap, which may move them into registry
 * shards that never held a block: entering them there must not need memory (every shard's first
 * table exists with the first block), so every realloc succeeds, contents kept. */
static void remap_without_mmap(void) {
  set_threshold(128 * KIB);
  enum { N = 8 };
  unsigned char *p[N];
  size_t n[N];
  for (int i = 0; i < N; i++) {
    n[i] = 256 * KIB;
    p[i] = ta_malloc(n[i]);
    CHECK(p[i] != NULL);
    pat_fill(p[i], 900u + (uint32_t)i, 0, n[i]);
  }
  ta_os_inject_failure(TA_OS_MMAP, 1L << 40);
  for (int round = 0; round < 6; round++) {
    for (int i = 0; i < N; i++) {
      size_t m = n[i] * 2 - 4096 * (size_t)(i + 1);
      unsigned char *q = ta_realloc(p[i], m);
      CHECK_MSG(q != NULL, "realloc %zu -> %zu by mremap failed with mmap failing", n[i], m);
      CHECK(pat_check(q, 900u + (uint32_t)i, 0, n[i]) == n[i]);
      pat_fill(q, 900u + (uint32_t)i, n[i], m);
      p[i] = q;
      n[i] = m;
      steps++;
    }
  }
  ta_os_inject_failure(TA_OS_MMAP, 0);
  for (int i = 0; i < N; i++) ta_free(p[i]);
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "paths";
  if (strcmp(mode, "paths") == 0) {
    size_t ts[] = {128 * KIB, 64 * KIB, 512 * KIB, 2 * MIB};
    for (size_t i = 0; i < 4; i++) pairs(ts[i], ts[i]);
    for (size_t i = 0; i < 4; i++) chain(ts[i]);
  } else if (strcmp(mode, "switch") == 0) {
    /* The threshold moved between malloc and realloc (ta_mallopt), both ways. */
    pairs(128 * KIB, 512 * KIB);
    pairs(512 * KIB, 128 * KIB);
    pairs(2 * MIB, 128 * KIB);
    pairs(128 * KIB, 2 * MIB);
  } else if (strcmp(mode, "double") == 0) {
    doubling("fresh, adaptive threshold");
    /* A freed 4 MiB mapping raises the adaptive threshold (past the largest class: to 32 MiB,
     * src/config.c): 2 MiB now comes from a (retained) mapping below it, and 128 KiB .. 1 MiB from
     * the bins. */
    ta_free(ta_malloc(4 * MIB));
    CHECK(ta_getopt(TA_OPT_MMAP_THRESHOLD) > (long)(2 * MIB));
    doubling("adaptive threshold risen by a 4 MiB free");
    doubling("adaptive threshold risen by a 4 MiB free, again");
    set_threshold(32 * MIB);
    doubling("threshold fixed at 32 MiB");
    set_threshold(128 * KIB);
    doubling("threshold fixed at 128 KiB");
  } else if (strcmp(mode, "oom") == 0) {
    remap_without_mmap();
  } else {
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
  }
  printf("%s: %lu realloc steps checked\n", mode, steps);
  return 0;
}
