/* Text output without malloc or stdio (contract in format.h). */
#include "src/format.h"

#include <sys/syscall.h>
#include <unistd.h>

static void out_char(ta_out_t *o, char c) {
  if (o->used + 1 >= o->cap) {
    if (o->flush) {
      o->flush(o->ctx, o->buf, o->used);
      o->used = 0;
    } else {
      o->total++;
      return;
    }
  }
  o->buf[o->used++] = c;
  o->total++;
}

void ta_out_str(ta_out_t *o, const char *s) {
  while (*s) out_char(o, *s++);
}

void ta_out_u(ta_out_t *o, unsigned long long v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n > 0) out_char(o, tmp[--n]);
}

void ta_out_i(ta_out_t *o, long long v) {
  if (v < 0) {
    out_char(o, '-');
    ta_out_u(o, (unsigned long long)(-(v + 1)) + 1);
  } else {
    ta_out_u(o, (unsigned long long)v);
  }
}

void ta_out_hex(ta_out_t *o, uintptr_t v) {
  char tmp[2 * sizeof v];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  ta_out_str(o, "0x");
  while (n > 0) out_char(o, tmp[--n]);
}

void ta_out_frac(ta_out_t *o, double v) {
  if (!(v >= 0)) v = 0;
  if (v > 1) v = 1;
  unsigned long long milli = (unsigned long long)(v * 1000.0 + 0.5);
  ta_out_u(o, milli / 1000);
  out_char(o, '.');
  out_char(o, (char)('0' + milli / 100 % 10));
  out_char(o, (char)('0' + milli / 10 % 10));
  out_char(o, (char)('0' + milli % 10));
}

void ta_out_finish(ta_out_t *o) {
  if (o->flush) {
    if (o->used) o->flush(o->ctx, o->buf, o->used);
    o->used = 0;
  } else if (o->cap > 0) {
    o->buf[o->used < o->cap ? o->used : o->cap - 1] = '\0';
  }
}

/* The raw system call, not glibc's write(): that one is a cancellation point, and no allocator entry
 * point may end a thread with a pending cancel request (mid-report, holding locks, or instead of the
 * abort a fatal error promises). */
void ta_out_fd_flush(void *fd_as_ptr, const char *text, size_t len) {
  int fd = (int)(intptr_t)fd_as_ptr;
  while (len > 0) {
    long w = syscall(SYS_write, fd, text, len);
    if (w <= 0) return;
    text += w;
    len -= (size_t)w;
  }
}
