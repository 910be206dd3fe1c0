/* Misuse must end in a clear message and SIGABRT, never in silent corruption or SIGSEGV: free and
 * realloc of pointers tamalloc never handed out, double frees, free_sized with the wrong size, and a
 * corrupted free-list link. And the other way round: user data that looks like allocator metadata,
 * and sized frees with the right size, must not abort.
 * Usage: misuse_test CASE (one case, as meson runs them) or misuse_test (every case). */
#include <dlfcn.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "death.h"

#ifndef TA_TEST_HARDENING
#define TA_TEST_HARDENING 1
#endif

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

static size_t g_size; /* the size a parametrised case works on, set before the fork */

/* ---- pointers tamalloc never handed out ---- */

static char static_data[256] = {1};
static const char rodata[] = "read-only data, not a heap block";

/* A page of someone else's memory, and a pointer to the start of a page whose predecessor is
 * unmapped (an allocator that read a header before the pointer would fault there). */
static char *foreign_page(void) {
  char *m = mmap(NULL, 64 * KIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED);
  return m;
}
static char *after_unmapped(void) {
  char *m = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED);
  CHECK(munmap(m, 4096) == 0);
  return m + 4096;
}

/* A block from glibc's own allocator, whatever malloc is: libc's __libc_malloc, looked up in libc
 * itself (a program linked with tamalloc has tamalloc's __libc_malloc). */
static void *libc_malloc(size_t size) {
  void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
  CHECK(libc != NULL);
  void *(*fn)(size_t) = (void *(*)(size_t))(uintptr_t)dlsym(libc, "__libc_malloc");
  CHECK(fn != NULL);
  return fn(size);
}

static void bad_free(void *p) {
  death_expect_ptr(p);
  TN(free)(hide(p));
}
static void bad_realloc(void *p) {
  death_expect_ptr(p);
  void *q = TN(realloc)(hide(p), 100);
  fprintf(stderr, "realloc returned %p\n", q);
}

static void free_stack(void) {
  char buf[64];
  memset(buf, 0, sizeof buf);
  bad_free(buf + 16);
}
static void free_static(void) { bad_free(static_data + 32); }
static void free_rodata(void) { bad_free((void *)rodata); }
static void free_mmap(void) { bad_free(foreign_page() + 4096 + 64); }
static void free_after_unmapped(void) { bad_free(after_unmapped()); }
static void free_libc_block(void) {
  char *p = libc_malloc(100);
  CHECK(p != NULL);
  bad_free(p);
}
static void free_small_interior(void) {
  char *p = TN(malloc)(100);
  CHECK(p != NULL);
  bad_free(p + 16);
}
static void free_large_interior(void) {
  char *p = TN(malloc)(MIB);
  CHECK(p != NULL);
  bad_free(p + 4096);
}
static void free_small_misaligned(void) {
  char *p = TN(malloc)(100);
  CHECK(p != NULL);
  bad_free(p + 1);
}
static void free_large_misaligned(void) {
  char *p = TN(malloc)(MIB);
  CHECK(p != NULL);
  bad_free(p + 1);
}

static void realloc_stack(void) {
  char buf[64];
  memset(buf, 0, sizeof buf);
  bad_realloc(buf + 16);
}
static void realloc_static(void) { bad_realloc(static_data + 32); }
static void realloc_mmap(void) { bad_realloc(foreign_page() + 4096 + 64); }
static void realloc_after_unmapped(void) { bad_realloc(after_unmapped()); }
static void realloc_small_interior(void) {
  char *p = TN(malloc)(100);
  CHECK(p != NULL);
  bad_realloc(p + 16);
}
static void realloc_large_interior(void) {
  char *p = TN(malloc)(MIB);
  CHECK(p != NULL);
  bad_realloc(p + 4096);
}
static void realloc_misaligned(void) {
  char *p = TN(malloc)(100);
  CHECK(p != NULL);
  bad_realloc(p + 1);
}

/* ---- double frees ---- */

static void double_free(void) {
  char *p = TN(malloc)(g_size);
  CHECK(p != NULL);
  memset(p, 0x5a, g_size);
  TN(free)(hide(p));
  death_expect_ptr(p);
  TN(free)(hide(p));
}

/* Other frees between the two: p, q, r allocated; free p, free q, free p. */
static void double_free_between(void) {
  char *p = TN(malloc)(g_size), *q = TN(malloc)(g_size), *r = TN(malloc)(g_size);
  CHECK(p && q && r);
  TN(free)(hide(p));
  TN(free)(hide(q));
  death_expect_ptr(p);
  TN(free)(hide(p));
  TN(free)(r);
}

/* ---- user data that looks like metadata must not raise a false alarm ---- */

typedef struct {
  uint64_t *p;
  size_t n; /* bytes */
} blk_t;

/* The word a free block's link would hold for `target`: with hardening, links are encoded with a
 * per-process key. Learn it the way an attacker with a use-after-free read would (free y, then x, of
 * one class: x's first word encodes y), so the data below also imitates encoded links. */
static uintptr_t learn_link_key(void) {
  uintptr_t key = 0;
  for (int tries = 0; tries < 8; tries++) {
    char *x = TN(malloc)(48), *y = TN(malloc)(48);
    CHECK(x && y);
    TN(free)(hide(y));
    TN(free)(hide(x));
    uintptr_t w;
    memcpy(&w, hide(x), sizeof w);
    key = w ^ (uintptr_t)y;
    if (!TA_TEST_HARDENING || (key >> 47) != 0) break;
  }
  return key;
}

static void fill_words(blk_t *b, uint64_t (*word)(blk_t *b, size_t i, void *ctx), void *ctx) {
  for (size_t i = 0; i < b->n / 8; i++) b->p[i] = word(b, i, ctx);
}

typedef struct {
  blk_t *all;
  size_t count;
  uintptr_t key;
  test_rng_t rng;
} pat_ctx_t;

static uint64_t w_zero(blk_t *b, size_t i, void *c) { (void)b, (void)i, (void)c; return 0; }
static uint64_t w_ones(blk_t *b, size_t i, void *c) { (void)b, (void)i, (void)c; return ~(uint64_t)0; }
static uint64_t w_self(blk_t *b, size_t i, void *c) { (void)i, (void)c; return (uintptr_t)b->p; }
static uint64_t w_self_enc(blk_t *b, size_t i, void *c) {
  (void)i;
  return (uintptr_t)b->p ^ ((pat_ctx_t *)c)->key;
}
static uint64_t w_null_enc(blk_t *b, size_t i, void *c) { (void)b, (void)i; return ((pat_ctx_t *)c)->key; }
/* Pointers to the blocks allocated just before and after (the same page, mostly), plain and encoded. */
static uint64_t w_neighbour(blk_t *b, size_t i, void *c) {
  pat_ctx_t *x = c;
  size_t me = (size_t)(b - x->all);
  size_t other = (i & 1) ? (me + 1) % x->count : (me + x->count - 1) % x->count;
  return (uintptr_t)x->all[other].p;
}
static uint64_t w_neighbour_enc(blk_t *b, size_t i, void *c) {
  return w_neighbour(b, i, c) ^ ((pat_ctx_t *)c)->key;
}
static uint64_t w_random(blk_t *b, size_t i, void *c) {
  (void)b, (void)i;
  return test_rng_next(&((pat_ctx_t *)c)->rng);
}
/* Random words with the key's top bits: every one passes the cheap "could be a link" test. */
static uint64_t w_random_enc(blk_t *b, size_t i, void *c) {
  (void)b, (void)i;
  pat_ctx_t *x = c;
  return (test_rng_next(&x->rng) & (((uint64_t)1 << 47) - 16)) ^ x->key;
}

static void no_false_alarm(void) {
  static const size_t sizes[] = {16, 32, 48, 64, 128, 256, 1000, 4096, 20000};
  static uint64_t (*const patterns[])(blk_t *, size_t, void *) = {
      w_zero, w_ones, w_self, w_self_enc, w_null_enc, w_neighbour, w_neighbour_enc, w_random, w_random_enc};
  const size_t npat = sizeof patterns / sizeof patterns[0];
  pat_ctx_t ctx = {.key = learn_link_key(), .rng = {test_seed(0x6d69737573650001ull)}};
  /* With hardening the learned key has its top bits set; then the *_enc patterns below look like
   * links to the allocator's cheap test and every one of those frees takes the slow check. */
  printf("link key %s\n", (ctx.key >> 47) != 0 ? "learned: encoded-link patterns included"
                                               : "is 0 (no hardening): plain pointers only");
  size_t cap = 40000;
  blk_t *all = calloc(cap, sizeof *all);
  CHECK(all != NULL);
  uint64_t random_words = 0;
  for (int round = 0; round < 3; round++) {
    for (size_t pi = 0; pi < npat; pi++) {
      for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t count = sizes[si] >= 4096 ? 200 : 4000;
        if (patterns[pi] == w_random) count = 1000000 / 4 / (sizes[si] / 8) + 16;
        if (count > cap) count = cap;
        for (size_t k = 0; k < count; k++) {
          all[k].n = sizes[si];
          all[k].p = TN(malloc)(sizes[si]);
          CHECK(all[k].p != NULL);
        }
        ctx.all = all;
        ctx.count = count;
        for (size_t k = 0; k < count; k++) {
          fill_words(&all[k], patterns[pi], &ctx);
          if (patterns[pi] == w_random) random_words += sizes[si] / 8;
        }
        /* Free in a shuffled order, so blocks are freed next to free and live neighbours alike. */
        for (size_t k = count; k > 1; k--) {
          size_t j = test_rng_below(&ctx.rng, k);
          blk_t t = all[k - 1];
          all[k - 1] = all[j];
          all[j] = t;
        }
        for (size_t k = 0; k < count; k++) TN(free)(all[k].p);
      }
    }
  }
  free(all);
  CHECK_MSG(random_words >= 1000000, "only %llu random words", (unsigned long long)random_words);
}

/* ---- free_sized / free_aligned_sized ---- */

static void sized_small_bigger(void) {
  char *p = TN(malloc)(100);
  CHECK(p != NULL);
  death_expect_ptr(p);
  TN(free_sized)(hide(p), 5000);
}
static void sized_small_smaller(void) {
  char *p = TN(malloc)(5000);
  CHECK(p != NULL);
  death_expect_ptr(p);
  TN(free_sized)(hide(p), 100);
}
static void sized_large_bigger(void) {
  char *p = TN(malloc)(MIB);
  CHECK(p != NULL);
  death_expect_ptr(p);
  TN(free_sized)(hide(p), 4 * MIB);
}
static void sized_large_smaller(void) {
  char *p = TN(malloc)(MIB);
  CHECK(p != NULL);
  death_expect_ptr(p);
  TN(free_sized)(hide(p), 300 * KIB);
}
static void aligned_sized_bigger(void) {
  char *p = TN(aligned_alloc)(4096, 100);
  CHECK(p != NULL);
  death_expect_ptr(p);
  TN(free_aligned_sized)(hide(p), 4096, MIB);
}
static void aligned_sized_large_smaller(void) {
  char *p = TN(aligned_alloc)(64 * KIB, 2 * MIB);
  CHECK(p != NULL);
  death_expect_ptr(p);
  TN(free_aligned_sized)(hide(p), 64 * KIB, 200 * KIB);
}

/* The right size never aborts: plain, calloc'd, realloc'd and aligned blocks on both paths. */
static void sized_match(void) {
  static const size_t sizes[] = {0, 1, 15, 16, 17, 48, 100, 127, 128, 129, 1000, 1024, 4095, 5000,
                                 20000, 65536, 100000, 131071, 131072, 131073, 300 * KIB, MIB,
                                 3 * MIB + 5};
  static const size_t aligns[] = {16, 32, 64, 256, 4096, 64 * KIB, 2 * MIB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    void *p = TN(malloc)(n);
    CHECK(p != NULL);
    memset(p, 1, n);
    TN(free_sized)(hide(p), n);
    p = TN(calloc)(1, n);
    CHECK(p != NULL);
    TN(free_sized)(hide(p), n);
    for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
      size_t m = (n + aligns[a] - 1) / aligns[a] * aligns[a]; /* C11 wants a multiple */
      p = TN(aligned_alloc)(aligns[a], m);
      CHECK(p != NULL);
      TN(free_aligned_sized)(hide(p), aligns[a], m);
    }
    for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; j++) {
      p = TN(malloc)(n);
      CHECK(p != NULL);
      size_t m = sizes[j] ? sizes[j] : 1; /* realloc to 0 frees */
      void *q = TN(realloc)(p, m);
      CHECK(q != NULL);
      TN(free_sized)(hide(q), m);
    }
  }
}

/* ---- corrupted free-list links (hardened builds) ---- */

static void *other_thread_block(void *arg) {
  (void)arg;
  return TN(malloc)(64);
}

/* Two neighbouring blocks a, b of one class; free b then a, so a heads the free list and links to b;
 * overwrite a's link with `wild` (as a use-after-free write would), then allocate twice. */
static void corrupt_link(uintptr_t (*make_wild)(char *a, char *b)) {
  char *a = TN(malloc)(64), *b = TN(malloc)(64);
  CHECK(a && b);
  for (int i = 0; i < 100 && (b != a + 64 || ((uintptr_t)b & 0xffff) == 0); i++) {
    a = b;
    b = TN(malloc)(64);
    CHECK(b != NULL);
  }
  uintptr_t wild = make_wild(a, b);
  TN(free)(hide(b));
  TN(free)(hide(a));
  memcpy(hide(a), &wild, sizeof wild);
  void *x = TN(malloc)(64);
  void *y = TN(malloc)(64);
  fprintf(stderr, "no abort: the corrupted list handed out %p and %p (wild link %p)\n", x, y,
          (void *)wild);
}
static uintptr_t wild_stack(char *a, char *b) {
  (void)a, (void)b;
  char local[64];
  return (uintptr_t)hide(local);
}
static uintptr_t wild_other_segment(char *a, char *b) {
  (void)a, (void)b;
  pthread_t t;
  void *blk = NULL;
  CHECK(pthread_create(&t, NULL, other_thread_block, NULL) == 0);
  CHECK(pthread_join(t, &blk) == 0);
  CHECK(blk != NULL);
  if (((uintptr_t)blk >> 22) == ((uintptr_t)a >> 22)) {
    /* The other thread adopted an arena whose segment holds a too (meson test --setup mt has a
     * thread of its own): a large block lies outside every segment of a's. */
    blk = TN(malloc)(1 << 20);
    CHECK(blk != NULL && ((uintptr_t)blk >> 22) != ((uintptr_t)a >> 22));
  }
  return (uintptr_t)blk;
}
static uintptr_t wild_same_page(char *a, char *b) {
  (void)b;
  return (uintptr_t)(a - 64 * 4);
}
static void corrupt_stack(void) { corrupt_link(wild_stack); }
static void corrupt_other_segment(void) { corrupt_link(wild_other_segment); }
static void corrupt_same_page(void) { corrupt_link(wild_same_page); }

/* ---- forged links that stay inside the segment (hardened builds) ----
 * The secret is unknown to the test: it reads a freed block's first word, which encodes the next
 * block (link = next ^ secret), and xors in `next ^ target`, which makes it encode `target`. */

#if TA_TEST_STD_NAMES
#define TRIM_NOW() malloc_trim(0)
#define USABLE_SIZE(p) malloc_usable_size(p)
#else
#define TRIM_NOW() ta_trim(0)
#define USABLE_SIZE(p) ta_usable_size(p)
#endif

static uintptr_t read_word(const void *p) {
  uintptr_t w;
  memcpy(&w, hide((void *)p), sizeof w);
  return w;
}
static void write_word(void *p, uintptr_t w) { memcpy(hide(p), &w, sizeof w); }
/* The encoded link word at `holder` (which links to `next`), forged to link to `target`. */
static void forge_link(void *holder, const void *next, const void *target) {
  write_word(holder, read_word(holder) ^ (uintptr_t)next ^ (uintptr_t)target);
}
static bool same_segment(const void *a, const void *b) {
  return ((uintptr_t)a >> 22) == ((uintptr_t)b >> 22);
}

/* Two neighbouring 64-byte blocks a < b, freed b then a: a heads the list and links to b. */
static void two_free_blocks(char **pa, char **pb) {
  char *a = TN(malloc)(64), *b = TN(malloc)(64);
  CHECK(a && b);
  for (int i = 0; i < 100 && b != a + 64; i++) {
    a = b;
    b = TN(malloc)(64);
    CHECK(b != NULL);
  }
  CHECK(b == a + 64);
  TN(free)(hide(b));
  TN(free)(hide(a));
  *pa = a;
  *pb = b;
}

/* A link into another page of the segment: inside a live 60,000-byte block. */
static void corrupt_other_page(void) {
  char *big = TN(malloc)(60000);
  CHECK(big != NULL);
  memset(big, 0x11, 60000);
  char *a, *b;
  two_free_blocks(&a, &b);
  CHECK(same_segment(a, big));
  /* The target's first word links on to b, so a list that accepted the target would go on. */
  write_word(big + 64, read_word(a));
  forge_link(a, b, big + 64);
  death_expect_ptr(a);
  void *x = TN(malloc)(64);
  void *y = TN(malloc)(64);
  fprintf(stderr, "no abort: handed out %p and %p, inside the live block %p\n", x, y, (void *)big);
}

/* A link to a misaligned address in the same page: the middle of block b. */
static void corrupt_misaligned(void) {
  char *a, *b;
  two_free_blocks(&a, &b);
  write_word(b + 16, read_word(a) ^ (uintptr_t)b); /* the encoding of NULL: the list would end */
  forge_link(a, b, b + 16);
  death_expect_ptr(a);
  void *x = TN(malloc)(64);
  void *y = TN(malloc)(64);
  fprintf(stderr, "no abort: handed out %p and %p\n", x, y);
}

/* The in-page purge of malloc_trim follows the list of a page that still has a live block. */
static void corrupt_trim(void) {
  char *big = TN(malloc)(60000), *live = TN(malloc)(64);
  CHECK(big && live);
  char *a, *b;
  two_free_blocks(&a, &b);
  CHECK(same_segment(a, big));
  forge_link(a, b, big + 4 * KIB);
  death_expect_ptr(a);
  TRIM_NOW();
  fprintf(stderr, "no abort: malloc_trim followed the forged link\n");
}

/* The double-free search (a freed block whose first word looks like a link) walks the page's list. */
static void corrupt_search(void) {
  char *big = TN(malloc)(60000);
  char *c = TN(malloc)(64);
  CHECK(big && c);
  char *a, *b;
  two_free_blocks(&a, &b);
  CHECK(same_segment(a, big));
  uintptr_t link = read_word(a); /* encodes b: a plausible link word */
  forge_link(a, b, big + 4 * KIB);
  write_word(c, link);
  death_expect_ptr(a);
  TN(free)(hide(c));
  fprintf(stderr, "no abort: the search followed the forged link\n");
}

static void *free_arg(void *p) {
  TN(free)(p);
  return NULL;
}
/* p freed by a thread of its own (a remote free), joined before returning. */
static void free_on_thread(void *p) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, free_arg, p) == 0);
  CHECK(pthread_join(t, NULL) == 0);
}
static void *malloc_arg(void *size) { return TN(malloc)((size_t)(uintptr_t)size); }
static void *malloc_on_thread(size_t size) {
  pthread_t t;
  void *p = NULL;
  CHECK(pthread_create(&t, NULL, malloc_arg, (void *)(uintptr_t)size) == 0);
  CHECK(pthread_join(t, &p) == 0);
  CHECK(p != NULL);
  return p;
}

/* A page's xfree list: another thread frees y, then x (both live blocks of one page of ours). */
static void corrupt_collect(void) {
  char *big = TN(malloc)(60000);
  char *x = TN(malloc)(64), *y = TN(malloc)(64);
  CHECK(big && x && y && same_segment(x, big) && same_segment(x, y));
  free_on_thread(y);
  free_on_thread(x);
  forge_link(x, y, big + 128);
  death_expect_ptr(x);
  TRIM_NOW(); /* collects the remote frees */
  void *p = TN(malloc)(64), *q = TN(malloc)(64);
  fprintf(stderr, "no abort: handed out %p and %p\n", p, q);
}

/* 16 KiB blocks: four to a one-unit span, so a page is parked (all its blocks out) after four
 * allocations and the fifth starts the next page. */
#define PARK_SIZE (16 * KIB)
#define PARK_BLOCKS 4
/* n pages of PARK_SIZE blocks parked full, their blocks in blk[page * PARK_BLOCKS + i]. */
static void park_pages(char **blk, int n) {
  for (int i = 0; i < n * PARK_BLOCKS; i++) {
    blk[i] = TN(malloc)(PARK_SIZE);
    CHECK(blk[i] != NULL);
  }
  char *next = TN(malloc)(PARK_SIZE); /* parks the last page */
  CHECK(next != NULL);
  for (int p = 0; p < n; p++)
    for (int i = 1; i < PARK_BLOCKS; i++)
      CHECK(blk[p * PARK_BLOCKS + i] == blk[p * PARK_BLOCKS] + i * PARK_SIZE);
}

/* The arena's xfree list (first remote frees into parked pages): a link to another arena's block. */
static void corrupt_drain(void) {
  char *blk[2 * PARK_BLOCKS];
  park_pages(blk, 2);
  free_on_thread(blk[0]);           /* the arena's list: blk[0] */
  free_on_thread(blk[PARK_BLOCKS]); /* blk[4] -> blk[0] */
  char *foreign = malloc_on_thread(PARK_SIZE);
  forge_link(blk[PARK_BLOCKS], blk[0], foreign);
  death_expect_ptr(blk[PARK_BLOCKS]);
  TRIM_NOW(); /* drains the list */
  void *p = TN(malloc)(PARK_SIZE);
  fprintf(stderr, "no abort: the drain took %p in (got %p)\n", (void *)foreign, p);
}

/* ---- double frees across threads (join between steps) ---- */

/* Another thread frees p (64 bytes, its page in a bin), then the owner frees it. */
static void df_remote_owner(void) {
  char *p = TN(malloc)(64), *q = TN(malloc)(64);
  CHECK(p && q);
  free_on_thread(p);
  death_expect_ptr(p);
  TN(free)(hide(p));
}
/* The same with p's page parked full: the remote free went to the arena's list. */
static void df_remote_owner_parked(void) {
  char *blk[PARK_BLOCKS];
  park_pages(blk, 1);
  free_on_thread(blk[1]);
  death_expect_ptr(blk[1]);
  TN(free)(hide(blk[1]));
}
/* Two remote frees of one block, its page in a bin. */
static void df_remote_remote(void) {
  char *p = TN(malloc)(64), *q = TN(malloc)(64);
  CHECK(p && q);
  free_on_thread(p);
  death_expect_ptr(p);
  free_on_thread(p);
  TRIM_NOW();
  void *x = TN(malloc)(64), *y = TN(malloc)(64);
  fprintf(stderr, "no abort: handed out %p and %p\n", x, y);
}
/* Two remote frees of one block of a parked page: the arena's list, then the page's xfree word. */
static void df_remote_remote_parked(void) {
  char *blk[PARK_BLOCKS];
  park_pages(blk, 1);
  free_on_thread(blk[1]);
  free_on_thread(blk[1]);
  death_expect_ptr(blk[1]);
  TRIM_NOW();
  void *x = TN(malloc)(PARK_SIZE), *y = TN(malloc)(PARK_SIZE);
  fprintf(stderr, "no abort: handed out %p and %p\n", x, y);
}

/* Two remote frees of one block with another block's free between them (p, q, p: each by a thread
 * of its own), its page in a bin: the second free cannot see p (q heads the list), and it links p to
 * q, so the page's xfree list loops back to p. The owner finds the loop when it takes the list in,
 * and names p: with the malloc_trim below, or with the mallocs after it (its slow path, which
 * collects the page once the page's own list runs dry). */
static void df_remote_between_body(bool trim) {
  char *p = TN(malloc)(64), *q = TN(malloc)(64);
  CHECK(p && q);
  free_on_thread(p);
  free_on_thread(q);
  death_expect_ptr(p);
  free_on_thread(p);
  if (trim) TRIM_NOW();
  void *got[4096];
  for (int i = 0; i < 4096; i++) got[i] = TN(malloc)(64);
  fprintf(stderr, "no abort: handed out %p and %p\n", got[0], got[4095]);
}
static void df_remote_between(void) { df_remote_between_body(true); }
static void df_remote_between_malloc(void) { df_remote_between_body(false); }

/* The same loop on a parked page of an arena whose owner is alive but idle: a collector finds it
 * (malloc_trim stands in for the owner of every arena). The owner parks a page of four blocks and
 * waits; this thread frees blk[1] (onto the arena's list), blk[2], blk[3] and blk[2] again (the
 * page's list, looping back to blk[2]). */
static char *g_parked[PARK_BLOCKS];
static sem_t g_parked_ready, g_parked_done;
static void *park_and_wait(void *arg) {
  (void)arg;
  park_pages(g_parked, 1);
  sem_post(&g_parked_ready);
  sem_wait(&g_parked_done);
  return NULL;
}
static void df_remote_between_collector(void) {
  CHECK(sem_init(&g_parked_ready, 0, 0) == 0 && sem_init(&g_parked_done, 0, 0) == 0);
  pthread_t owner;
  CHECK(pthread_create(&owner, NULL, park_and_wait, NULL) == 0);
  sem_wait(&g_parked_ready);
  TN(free)(g_parked[1]);
  TN(free)(g_parked[2]);
  TN(free)(g_parked[3]);
  death_expect_ptr(g_parked[2]);
  TN(free)(hide(g_parked[2]));
  TRIM_NOW();
  fprintf(stderr, "no abort after the collector's pass\n");
  sem_post(&g_parked_done);
  pthread_join(owner, NULL);
}

/* ---- large block headers ---- */

/* A 1 MiB block next to another, its header changed by a stray write: map_size (free would unmap
 * the neighbour too) or map_offset (free would unmap from the wrong place). */
static char *g_neighbour;
static char *large_corrupted(bool offset) {
  char *p = TN(malloc)(MIB);
  g_neighbour = TN(malloc)(MIB);
  CHECK(p && g_neighbour);
  memset(g_neighbour, 0x22, MIB);
  char *hdr = hide(p - 16);
  if (offset) {
    uint32_t off;
    memcpy(&off, hdr + 8, sizeof off);
    off += 4096;
    memcpy(hdr + 8, &off, sizeof off);
  } else {
    size_t size;
    memcpy(&size, hdr, sizeof size);
    size += MIB + 4096;
    memcpy(hdr, &size, sizeof size);
  }
  death_expect_ptr(p);
  return p;
}
static void neighbour_alive(void) {
  fprintf(stderr, "no abort; neighbour byte %d\n", ((volatile char *)g_neighbour)[MIB - 1]);
}
static void large_hdr_size(void) {
  TN(free)(hide(large_corrupted(false)));
  neighbour_alive();
}
static void large_hdr_offset(void) {
  TN(free)(hide(large_corrupted(true)));
  neighbour_alive();
}
static void large_hdr_realloc(void) {
  void *q = TN(realloc)(hide(large_corrupted(false)), 3 * MIB);
  fprintf(stderr, "realloc returned %p\n", q);
  neighbour_alive();
}
static void large_hdr_usable(void) {
  size_t n = USABLE_SIZE(hide(large_corrupted(false)));
  fprintf(stderr, "usable size %zu\n", n);
}
static void large_hdr_free_sized(void) {
  TN(free_sized)(hide(large_corrupted(false)), MIB);
  neighbour_alive();
}

/* ---- a segment given back to the OS ---- */

/* A thread's arena (mmap segments) fills a second segment, frees everything and exits; malloc_trim
 * releases the empty segments. */
static void *fill_and_free(void *out) {
  enum { N = 300 };
  char *blk[N];
  for (int i = 0; i < N; i++) {
    blk[i] = TN(malloc)(30 * KIB);
    CHECK(blk[i] != NULL);
  }
  *(char **)out = blk[N - 1];
  for (int i = 0; i < N; i++) TN(free)(blk[i]);
  return NULL;
}
static char *released_segment_pointer(void) {
  pthread_t t;
  char *last = NULL;
  CHECK(pthread_create(&t, NULL, fill_and_free, &last) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  return (char *)(((uintptr_t)last & ~(uintptr_t)(4 * MIB - 1)) + 64 * KIB);
}
/* A free into a segment that malloc_trim released is an invalid pointer (while the segment was
 * live, the start of its unit 1, a retired span's first block, was named a double free). */
static void free_released_segment(void) {
  char *p = released_segment_pointer();
  TRIM_NOW();
  bad_free(p);
}

/* The same, racing: a thread frees into the segment while malloc_trim releases it. The pointer is
 * in the header unit, which holds no block whether the segment is live or gone, so the message is the
 * same either way; the free must never fault. It cannot fail deterministically: a fault needs the
 * free to read the map before the release and the header after it (see ta_seg_release). */
static _Atomic int race_go;
static void *racing_free(void *p) {
  while (!atomic_load(&race_go)) {
  }
  bad_free(p);
  return NULL;
}
static void free_racing_release(void) {
  char *p = released_segment_pointer() - 64 * KIB + 16;
  pthread_t t;
  CHECK(pthread_create(&t, NULL, racing_free, p) == 0);
  atomic_store(&race_go, 1);
  TRIM_NOW();
  CHECK(pthread_join(t, NULL) == 0);
}

/* ---- the table ---- */

typedef struct {
  const char *name;
  void (*body)(void);
  death_mode_t mode;
  const char *want;
  size_t size;  /* g_size for the body */
  bool hardened; /* meaningful only with hardening */
} case_t;

#define INVALID_FREE "tamalloc: free(): invalid pointer "
#define INVALID_REALLOC "tamalloc: realloc(): invalid pointer "
#define DOUBLE_FREE "tamalloc: free(): double free "
#define CORRUPT "tamalloc: malloc(): corrupted free list at "
#define BAD_HEADER(func) "tamalloc: " func "(): corrupted large block header at "
/* Blocks from the bins are checked for a double free only with hardening; mapped ones always. */
#define DF(sz) {"double_free_" #sz, double_free, DEATH_LINE, DOUBLE_FREE, sz, sz < 131072}, \
               {"double_free_between_" #sz, double_free_between, DEATH_LINE, DOUBLE_FREE, sz, sz < 131072}

static const case_t cases[] = {
    {"free_stack", free_stack, DEATH_LINE, INVALID_FREE, 0, false},
    {"free_static", free_static, DEATH_LINE, INVALID_FREE, 0, false},
    {"free_rodata", free_rodata, DEATH_LINE, INVALID_FREE, 0, false},
    {"free_mmap", free_mmap, DEATH_LINE, INVALID_FREE, 0, false},
    {"free_after_unmapped", free_after_unmapped, DEATH_LINE, INVALID_FREE, 0, false},
    {"free_libc_block", free_libc_block, DEATH_LINE, INVALID_FREE, 0, false},
    {"free_small_interior", free_small_interior, DEATH_LINE, INVALID_FREE, 0, false},
    {"free_large_interior", free_large_interior, DEATH_LINE, INVALID_FREE, 0, false},
    {"free_small_misaligned", free_small_misaligned, DEATH_LINE, INVALID_FREE, 0, false},
    {"free_large_misaligned", free_large_misaligned, DEATH_LINE, INVALID_FREE, 0, false},
    {"realloc_stack", realloc_stack, DEATH_LINE, INVALID_REALLOC, 0, false},
    {"realloc_static", realloc_static, DEATH_LINE, INVALID_REALLOC, 0, false},
    {"realloc_mmap", realloc_mmap, DEATH_LINE, INVALID_REALLOC, 0, false},
    {"realloc_after_unmapped", realloc_after_unmapped, DEATH_LINE, INVALID_REALLOC, 0, false},
    {"realloc_small_interior", realloc_small_interior, DEATH_LINE, INVALID_REALLOC, 0, false},
    {"realloc_large_interior", realloc_large_interior, DEATH_LINE, INVALID_REALLOC, 0, false},
    {"realloc_misaligned", realloc_misaligned, DEATH_LINE, INVALID_REALLOC, 0, false},
    DF(16), DF(48), DF(1000), DF(20000), DF(100000), DF(131072), DF(1048576),
    {"no_false_alarm", no_false_alarm, DEATH_NONE, NULL, 0, false},
    {"sized_small_bigger", sized_small_bigger, DEATH_PREFIX, "tamalloc: free_sized(): ", 0, false},
    {"sized_small_smaller", sized_small_smaller, DEATH_PREFIX, "tamalloc: free_sized(): ", 0, false},
    {"sized_large_bigger", sized_large_bigger, DEATH_PREFIX, "tamalloc: free_sized(): ", 0, false},
    {"sized_large_smaller", sized_large_smaller, DEATH_PREFIX, "tamalloc: free_sized(): ", 0, false},
    {"aligned_sized_bigger", aligned_sized_bigger, DEATH_PREFIX, "tamalloc: free_aligned_sized(): ", 0, false},
    {"aligned_sized_large_smaller", aligned_sized_large_smaller, DEATH_PREFIX,
     "tamalloc: free_aligned_sized(): ", 0, false},
    {"sized_match", sized_match, DEATH_NONE, NULL, 0, false},
    {"corrupt_stack", corrupt_stack, DEATH_CONTAINS, "corrupted free list", 0, true},
    {"corrupt_other_segment", corrupt_other_segment, DEATH_CONTAINS, "corrupted free list", 0, true},
    {"corrupt_same_page", corrupt_same_page, DEATH_CONTAINS, "corrupted free list", 0, true},
    {"corrupt_other_page", corrupt_other_page, DEATH_LINE, CORRUPT, 0, true},
    {"corrupt_misaligned", corrupt_misaligned, DEATH_LINE, CORRUPT, 0, true},
    {"corrupt_trim", corrupt_trim, DEATH_LINE, CORRUPT, 0, true},
    {"corrupt_search", corrupt_search, DEATH_LINE, CORRUPT, 0, true},
    {"corrupt_collect", corrupt_collect, DEATH_LINE, CORRUPT, 0, true},
    {"corrupt_drain", corrupt_drain, DEATH_LINE, CORRUPT, 0, true},
    {"df_remote_owner", df_remote_owner, DEATH_LINE, DOUBLE_FREE, 0, true},
    {"df_remote_owner_parked", df_remote_owner_parked, DEATH_LINE, DOUBLE_FREE, 0, true},
    {"df_remote_remote", df_remote_remote, DEATH_LINE, DOUBLE_FREE, 0, true},
    {"df_remote_remote_parked", df_remote_remote_parked, DEATH_LINE, DOUBLE_FREE, 0, true},
    {"df_remote_between", df_remote_between, DEATH_LINE, DOUBLE_FREE, 0, true},
    {"df_remote_between_malloc", df_remote_between_malloc, DEATH_LINE, DOUBLE_FREE, 0, true},
    {"df_remote_between_collector", df_remote_between_collector, DEATH_LINE, DOUBLE_FREE, 0, true},
    {"large_hdr_size", large_hdr_size, DEATH_LINE, BAD_HEADER("free"), 0, false},
    {"large_hdr_offset", large_hdr_offset, DEATH_LINE, BAD_HEADER("free"), 0, false},
    {"large_hdr_realloc", large_hdr_realloc, DEATH_LINE, BAD_HEADER("realloc"), 0, false},
    {"large_hdr_usable", large_hdr_usable, DEATH_LINE, BAD_HEADER("malloc_usable_size"), 0, false},
    {"large_hdr_free_sized", large_hdr_free_sized, DEATH_LINE, BAD_HEADER("free_sized"), 0, false},
    {"free_released_segment", free_released_segment, DEATH_LINE, INVALID_FREE, 0, false},
    {"free_racing_release", free_racing_release, DEATH_LINE, INVALID_FREE, 0, false},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static int run_case(const case_t *c, bool alone) {
  if (c->hardened && !TA_TEST_HARDENING) {
    printf("skip %s: this build has hardening off\n", c->name);
    return alone ? 77 : 0;
  }
  g_size = c->size;
  return death_run(c->name, c->body, c->mode, c->want);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  printf("names under test: %s, %s\n", TN_STR(free), TN_STR(realloc));
  if (argc > 1) {
    for (size_t i = 0; i < N_CASES; i++)
      if (strcmp(argv[1], cases[i].name) == 0) return run_case(&cases[i], true);
    fprintf(stderr, "unknown case %s\n", argv[1]);
    return 2;
  }
  int failed = 0;
  for (size_t i = 0; i < N_CASES; i++) failed += run_case(&cases[i], false);
  printf("%d of %zu cases failed\n", failed, N_CASES);
  return failed ? 1 : 0;
}
