/* A class that comes back takes the units its own retired spans left dirty, not the lowest free
 * ones. 16 spans are filled, 8 of 32 KiB blocks (one OS page of each block touched) and then 8 of
 * 16 KiB blocks (every page written), and all of them are freed: 14 spans retire, dirty, the B ones
 * lowest. The 16 KiB blocks are allocated and written again. Taken from the lowest free units, their
 * 7 new spans land on the 32 KiB class's units and fault in 14 more pages each (~392 KiB); taken
 * where their own class was, they fault in nothing. The decay (TAMALLOC_DECAY_MS, set long by
 * meson.build) purges nothing meanwhile. RSS read from /proc/self/statm, without allocating: the
 * anonymous part (resident less file-backed), since the first run of a code path faults in up to 16
 * pages of the program's text at once (the kernel's fault-around), as much as is measured here. */
#include "tamalloc.h"
#include "trim_util.h"

/* Resident anonymous memory in bytes: statm's second field less its third (resident file pages). */
static size_t rss_anon_bytes(void) {
  read_file("/proc/self/statm");
  char *p = trim_buf;
  strtoull(p, &p, 10); /* size */
  unsigned long long resident = strtoull(p, &p, 10), shared = strtoull(p, &p, 10);
  CHECK(resident >= shared && shared > 0);
  return (size_t)(resident - shared) * (size_t)sysconf(_SC_PAGESIZE);
}

enum {
  SPANS = 8,                  /* spans of each class */
  B_SIZE = 32768, B_PER = 2,  /* the other class: blocks per 64 KiB span */
  A_SIZE = 16384, A_PER = 4,  /* the class that comes back */
};

static char *a[SPANS * A_PER], *b[SPANS * B_PER];

static void fill_a(void) {
  for (int i = 0; i < SPANS * A_PER; i++) {
    a[i] = ta_malloc(A_SIZE);
    CHECK(a[i] != NULL);
    memset(a[i], 0x5a, A_SIZE);
  }
}

int main(void) {
  ta_free(ta_malloc(1));
  for (int i = 0; i < SPANS * B_PER; i++) {
    b[i] = ta_malloc(B_SIZE);
    CHECK(b[i] != NULL);
    b[i][0] = 1;
  }
  fill_a();
  for (int i = 0; i < SPANS * B_PER; i++) ta_free(b[i]);
  for (int i = 0; i < SPANS * A_PER; i++) ta_free(a[i]);
  size_t before = rss_anon_bytes();
  fill_a();
  size_t after = rss_anon_bytes();
  long grew = ((long)after - (long)before) / 1024;
  long limit = 128; /* KiB: the spans' worth of new pages is 392 */
  printf("%d KiB blocks in %d spans again, after %d spans of %d KiB blocks retired below them: anonymous rss %+ld KiB "
         "(limit %+ld KiB)\n",
         A_SIZE / 1024, SPANS, SPANS, B_SIZE / 1024, grew, limit);
  CHECK(grew <= limit);
  for (int i = 0; i < SPANS * A_PER; i++) ta_free(a[i]);
  return 0;
}
