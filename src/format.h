/* Text output without malloc or stdio: reports are built in a fixed buffer that is either flushed to
 * a sink when full (a file descriptor, a FILE) or cut short while still counting the length it would
 * have had (ta_stats_json's snprintf-like contract). src/format.c. */
#ifndef TA_FORMAT_H
#define TA_FORMAT_H

#include "src/common.h"

#pragma GCC visibility push(hidden)

typedef struct ta_out_s {
  char *buf;       /* where text goes */
  size_t cap;      /* bytes in buf */
  size_t used;     /* bytes of buf holding text not yet flushed */
  size_t total;    /* bytes produced so far, flushed or dropped */
  void (*flush)(void *ctx, const char *text, size_t len); /* NULL: keep what fits, drop the rest */
  void *ctx;       /* for flush */
} ta_out_t;

void ta_out_str(ta_out_t *o, const char *s);
void ta_out_u(ta_out_t *o, unsigned long long v);
void ta_out_i(ta_out_t *o, long long v);
void ta_out_hex(ta_out_t *o, uintptr_t v);
/* A fraction in [0, 1] with three decimals. */
void ta_out_frac(ta_out_t *o, double v);
/* Pass what is buffered to the sink (no-op without one); NUL-terminates a sinkless buffer. */
void ta_out_finish(ta_out_t *o);
/* A sink writing to a file descriptor with the write system call; never a cancellation point. */
void ta_out_fd_flush(void *fd_as_ptr, const char *text, size_t len);

#pragma GCC visibility pop
#endif
