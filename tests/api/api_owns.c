/* ta_owns: 1 exactly for the start of a live block, 0 for anything else (foreign memory, unmapped
 * addresses, pointers inside a block, freed blocks), and it never faults. Through ta_* only. */
#include "blocks.h"

#include <sys/mman.h>

#ifndef TA_TEST_OVERRIDE
#define TA_TEST_OVERRIDE 1 /* meson passes 0 when the standard names are not tamalloc's */
#endif

static const size_t sizes[] = {0, 1, 15, 16, 17, 40, 48, 100, 1000, 4096, 5000, 65536, 100000,
                               TB_ROUTER_LINE - 1, TB_ROUTER_LINE, TB_ROUTER_LINE + 1, TB_MIB,
                               5 * TB_MIB + 3};
#define N_SIZES (sizeof sizes / sizeof sizes[0])

static int stack_probe(void) {
  char local[64];
  memset(local, 0, sizeof local);
  volatile char *vp = local;
  return ta_owns((const void *)vp) + ta_owns((const void *)(vp + 16));
}

static int static_data[256];

/* ta_owns: 1 for the start of a live block, 0 for anything else, without faulting. */
static void test_owns(uint64_t seed) {
  CHECK(ta_owns(NULL) == 0);
  CHECK(stack_probe() == 0);
  CHECK(ta_owns(static_data) == 0);
  CHECK(ta_owns(&static_data[16]) == 0);
  CHECK(ta_owns("a string literal, read-only data") == 0);
  CHECK(ta_owns((const void *)(uintptr_t)&test_owns) == 0);
  static const uintptr_t odd[] = {1, 8, 16, 4096, 0x10000, 0x400000, 0x7ffffffff000ull,
                                  0x7ffffffffff0ull, (uintptr_t)1 << 46, (uintptr_t)1 << 47,
                                  ((uintptr_t)1 << 47) + 0x400000, 0xffff800000000000ull,
                                  UINTPTR_MAX & ~(uintptr_t)15, UINTPTR_MAX};
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
    CHECK_MSG(ta_owns((const void *)odd[i]) == 0, "ta_owns(%#lx) != 0", (unsigned long)odd[i]);

  /* Pointers inside live blocks but not at their start; and the blocks themselves. */
  for (size_t i = 0; i < N_SIZES; i++) {
    size_t n = sizes[i] < 64 ? 64 : sizes[i];
    unsigned char *p = ta_malloc(n);
    CHECK(p != NULL);
    CHECK(ta_owns(p) == 1);
    CHECK_MSG(ta_owns(p + 1) == 0, "ta_owns(p + 1) for a block of %zu", n);
    CHECK_MSG(ta_owns(p + 16) == 0, "ta_owns(p + 16) for a block of %zu", n);
    CHECK_MSG(ta_owns(p + n - 16) == 0, "ta_owns(p + n - 16) for a block of %zu", n);
    if (n >= TB_ROUTER_LINE) {
      CHECK_MSG(ta_owns(p - 16) == 0, "ta_owns(header) for a large block of %zu", n);
      CHECK_MSG(ta_owns(p + 4096) == 0, "ta_owns(p + 4096) for a large block of %zu", n);
    }
    ta_free(p);
    CHECK(ta_owns(p + 16) == 0);
  }

  /* A freed large block's memory is unmapped: probing it must not fault. */
  unsigned char *big = ta_malloc(8 * TB_MIB);
  CHECK(big != NULL);
  ta_free(big);
  for (size_t off = 0; off < 8 * TB_MIB; off += 64 * TB_KIB) CHECK(ta_owns(big + off) == 0);

  /* Memory mapped by someone else, and its unmapped neighbourhood. */
  unsigned char *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED);
  for (size_t off = 0; off < (1 << 20); off += 4096) CHECK(ta_owns(m + off) == 0);
  CHECK(munmap(m, 1 << 20) == 0);
  CHECK(ta_owns(m) == 0);
  CHECK(ta_owns(m + 4096) == 0);

  /* Random 16-byte-aligned addresses anywhere in the user address space. */
  test_rng_t r = {seed};
  for (int i = 0; i < 100000; i++) {
    uintptr_t a = (uintptr_t)(test_rng_next(&r) & ((((uint64_t)1) << 47) - 1) & ~(uint64_t)15);
    CHECK_MSG(ta_owns((const void *)a) == 0, "ta_owns(random %#lx) != 0", (unsigned long)a);
  }

#if !TA_TEST_OVERRIDE
  /* The standard malloc is not tamalloc in this build: its blocks are foreign. */
  void *foreign = malloc(100);
  CHECK(foreign != NULL);
  CHECK(ta_owns(foreign) == 0);
  free(foreign);
#endif
}

/* A freed block is no longer live: 0, for every size and every way of freeing. */
static void test_owns_freed(void) {
  for (size_t i = 0; i < N_SIZES; i++) {
    size_t n = sizes[i];
    void *p = ta_malloc(n);
    CHECK(p != NULL && ta_owns(p) == 1);
    ta_free(p);
    CHECK_MSG(ta_owns(p) == 0, "ta_owns(p) = 1 after ta_free(p), p = ta_malloc(%zu)", n);
    p = ta_malloc(n);
    CHECK(p != NULL);
    ta_free_sized(p, n);
    CHECK_MSG(ta_owns(p) == 0, "ta_owns(p) = 1 after ta_free_sized(p, %zu)", n);
    p = ta_aligned_alloc(64, n);
    CHECK(p != NULL);
    ta_free_aligned_sized(p, 64, n);
    CHECK_MSG(ta_owns(p) == 0, "ta_owns(p) = 1 after ta_free_aligned_sized(p, 64, %zu)", n);
    p = ta_malloc(n);
    CHECK(p != NULL);
    void *q = ta_realloc(p, 3 * n + 300000); /* moves: a bigger class or the mmap path */
    CHECK(q != NULL);
    if (q != p) CHECK_MSG(ta_owns(p) == 0, "ta_owns(old) = 1 after ta_realloc moved a %zu-byte block", n);
    CHECK(ta_realloc(q, 0) == NULL);
    CHECK_MSG(ta_owns(q) == 0, "ta_owns(p) = 1 after ta_realloc(p, 0), p of %zu bytes", 3 * n + 300000);
  }
}

/* Many live blocks, then every other one freed: ta_owns tracks each. */
static void test_owns_many(void) {
  enum { N = 3000 };
  static unsigned char *ps[N];
  for (size_t i = 0; i < N; i++) {
    ps[i] = ta_malloc(i % 7 == 0 ? 200 * TB_KIB : 16 + i % 500);
    CHECK(ps[i] != NULL);
  }
  for (size_t i = 0; i < N; i++) CHECK(ta_owns(ps[i]) == 1);
  for (size_t i = 0; i < N; i += 2) ta_free(ps[i]);
  for (size_t i = 0; i < N; i++)
    CHECK_MSG(ta_owns(ps[i]) == (int)(i % 2), "block %zu: ta_owns %d after freeing the even ones", i,
              ta_owns(ps[i]));
  for (size_t i = 1; i < N; i += 2) ta_free(ps[i]);
}

int main(void) {
  uint64_t seed = test_seed(0x0feedull);
  test_owns(seed);
  test_owns_freed();
  test_owns_many();
  return 0;
}
