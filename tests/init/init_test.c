/* Allocation at awkward moments: before main (a shared library's constructor, then this program's
 * constructor of priority 101), inside pthread_create (glibc callocs each thread's DTV) and on the
 * first touch of a dlopen'd module's thread-locals, from dlerror, and at thread exit when glibc frees
 * what it allocated for the thread.
 * Usage: init_test ctor | tls MODULE_PATH | dlerror */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "init_names.h"
#include "test.h"

#define MIB ((size_t)1 << 20)

/* ---- before main ---- */

extern int ctor_lib_result;
extern char *ctor_lib_block;

static int ctor_result = -1;
static char *ctor_block_std, *ctor_block_ta;

__attribute__((constructor(101))) static void early_ctor(void) {
  int rc = 0;
  for (int i = 0; i < 100 && rc == 0; i++) {
    void *p = TN(malloc)((size_t)i * 97 + 1), *q = ta_malloc((size_t)i * 1013 + 1);
    if (p == NULL || q == NULL) rc = 1;
    TN(free)(hide(p));
    ta_free(hide(q));
  }
  ctor_block_std = TN(malloc)(300000);
  ctor_block_ta = ta_aligned_alloc(4096, 4096);
  if (ctor_block_std == NULL || ctor_block_ta == NULL) rc = 2;
  else {
    memset(ctor_block_std, 's', 300000);
    memset(ctor_block_ta, 't', 4096);
  }
  ctor_result = rc;
}

static void case_ctor(void) {
  CHECK_MSG(ctor_lib_result == 0, "the shared library's constructor failed (code %d)", ctor_lib_result);
  CHECK_MSG(ctor_result == 0, "the priority-101 constructor failed (code %d)", ctor_result);
  CHECK(ta_owns(ctor_lib_block) && ta_owns(ctor_block_std) && ta_owns(ctor_block_ta));
  CHECK(ctor_lib_block[0] == 'a' && ctor_lib_block[99] == 'a');
  CHECK(ctor_block_std[299999] == 's' && ctor_block_ta[4095] == 't');
  TN(free)(ctor_lib_block);
  TN(free)(ctor_block_std);
  ta_free(ctor_block_ta);
  printf("blocks allocated by a library constructor and a priority-101 constructor freed in main\n");
}

/* ---- thread-locals ---- */

#define BIG_TLS (256 * 1024)
static __thread unsigned char big_tls[BIG_TLS];          /* static TLS: part of every thread */
static __thread uint64_t tls_magic = 0x5157a71cull;
static int (*module_touch)(unsigned char mark);

static void *tls_thread(void *arg) {
  uintptr_t id = (uintptr_t)arg;
  if (tls_magic != 0x5157a71cull || big_tls[BIG_TLS - 1] != 0) return (void *)1;
  memset(big_tls, (int)id, BIG_TLS);
  if (module_touch((unsigned char)(id | 1)) != 0) return (void *)2;
  void *p = TN(malloc)(id % 3000 + 1);
  if (p == NULL) return (void *)3;
  TN(free)(hide(p));
  return big_tls[12345] == (unsigned char)id ? NULL : (void *)4;
}

static void case_tls(const char *module) {
  void *h = dlopen(module, RTLD_NOW | RTLD_LOCAL);
  CHECK_MSG(h != NULL, "dlopen(%s): %s", module, dlerror());
  module_touch = (int (*)(unsigned char))dlsym(h, "tls_module_touch");
  CHECK(module_touch != NULL);
  CHECK(module_touch(0xee) == 0);
  long waves = test_scale(40);
  for (long w = 0; w < waves; w++) {
    pthread_t t[8];
    for (uintptr_t i = 0; i < 8; i++) CHECK(pthread_create(&t[i], NULL, tls_thread, (void *)(w * 8 + i)) == 0);
    for (int i = 0; i < 8; i++) {
      void *res;
      CHECK(pthread_join(t[i], &res) == 0);
      CHECK_MSG(res == NULL, "thread-local check failed with code %ld", (long)(intptr_t)res);
    }
  }
  ta_stats_t s;
  ta_stats_get(&s);
  printf("%ld threads with %d KiB of static TLS and dlopen'd dynamic TLS; %zu arenas\n", waves * 8,
         BIG_TLS / 1024, s.arenas);
  CHECK_MSG(s.arenas <= 16, "%zu arenas after thread churn", s.arenas);
  CHECK(dlclose(h) == 0);
}

/* ---- dlerror ---- */

static void *dlerror_thread(void *arg) {
  (void)arg;
  for (int i = 0; i < 200; i++) {
    void *h = dlopen("libtamalloc-test-no-such-library.so.0", RTLD_NOW);
    if (h != NULL) return (void *)1;
    const char *e = dlerror();
    if (e == NULL || strstr(e, "libtamalloc-test-no-such-library") == NULL) return (void *)2;
    if (dlsym(RTLD_DEFAULT, "tamalloc_test_no_such_symbol") != NULL) return (void *)3;
    e = dlerror();
    if (e == NULL || strstr(e, "tamalloc_test_no_such_symbol") == NULL) return (void *)4;
    void *p = TN(malloc)((size_t)i * 11 + 1);
    TN(free)(hide(p));
  }
  /* Leave one message behind: glibc frees it when the thread exits. */
  (void)dlopen("libtamalloc-test-no-such-library.so.1", RTLD_NOW);
  return NULL;
}

static void case_dlerror(void) {
  long waves = test_scale(20);
  for (long w = 0; w < waves; w++) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, dlerror_thread, NULL) == 0);
    for (int i = 0; i < 4; i++) {
      void *res;
      CHECK(pthread_join(t[i], &res) == 0);
      CHECK_MSG(res == NULL, "dlerror thread failed with code %ld", (long)(intptr_t)res);
    }
  }
  CHECK(dlerror_thread(NULL) == NULL);
  printf("%ld threads called dlopen/dlsym on missing names and read dlerror\n", waves * 4);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *c = argc > 1 ? argv[1] : "";
  if (strcmp(c, "ctor") == 0)
    case_ctor();
  else if (strcmp(c, "tls") == 0 && argc == 3)
    case_tls(argv[2]);
  else if (strcmp(c, "dlerror") == 0)
    case_dlerror();
  else {
    fprintf(stderr, "usage: %s ctor | tls MODULE | dlerror\n", argv[0]);
    return 2;
  }
  return 0;
}
