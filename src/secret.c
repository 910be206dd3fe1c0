/* The per-process secret (contract in secret.h). */
#include "src/secret.h"

#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

uintptr_t ta_secret;

void ta_secret_init(void) {
  uint64_t v = 0;
  if (syscall(SYS_getrandom, &v, sizeof v, 1 /* GRND_NONBLOCK */) != (long)sizeof v) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    v = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&v ^
        ((uint64_t)getpid() << 32);
  }
  /* Bit 63 set: the encoding of NULL (the secret itself) is never a user-space address, so a word
   * of zeros never decodes to a plausible link. */
  ta_secret = (uintptr_t)(v | ((uint64_t)1 << 63));
}
