/* Loaded with dlopen: its thread-locals are dynamic TLS, which glibc allocates with malloc on a
 * thread's first access and frees after the thread is gone. */
#include <stdint.h>
#include <string.h>

#define MOD_TLS_BYTES (64 * 1024)
static __thread unsigned char mod_tls[MOD_TLS_BYTES];
static __thread uint64_t mod_tls_init = 0x7115f00d;

/* Checks this thread's copy starts as it should, then marks it: 0 when all was as expected. */
__attribute__((visibility("default"))) int tls_module_touch(unsigned char mark) {
  if (mod_tls_init != 0x7115f00d) return 1;
  for (size_t i = 0; i < MOD_TLS_BYTES; i += 512)
    if (mod_tls[i] != 0) return 2;
  memset(mod_tls, mark, MOD_TLS_BYTES);
  return mod_tls[MOD_TLS_BYTES - 1] == mark ? 0 : 3;
}
