/* Fatal errors and warnings. Everything here writes with write(2) into stack buffers: it must work
 * when the heap is corrupt, inside a signal handler, and before libc's stdio exists. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static size_t put(char *buf, size_t at, size_t cap, const char *s) {
  while (*s && at + 1 < cap) buf[at++] = *s++;
  return at;
}

static size_t put_hex(char *buf, size_t at, size_t cap, uintptr_t v) {
  char tmp[2 + 2 * sizeof(uintptr_t)];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  at = put(buf, at, cap, "0x");
  while (n > 0 && at + 1 < cap) buf[at++] = tmp[--n];
  return at;
}

static size_t put_dec(char *buf, size_t at, size_t cap, unsigned long v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n > 0 && at + 1 < cap) buf[at++] = tmp[--n];
  return at;
}

static void emit(const char *buf, size_t len) {
  while (len > 0) {
    ssize_t w = write(STDERR_FILENO, buf, len);
    if (w <= 0) return;
    buf += w;
    len -= (size_t)w;
  }
}

static _Noreturn void die(void) {
  abort();
}

void ta_fatal_ptr(const char *func, const char *what, const void *p) {
  char buf[256];
  size_t n = put(buf, 0, sizeof buf, "tamalloc: ");
  n = put(buf, n, sizeof buf, func);
  n = put(buf, n, sizeof buf, "(): ");
  n = put(buf, n, sizeof buf, what);
  n = put(buf, n, sizeof buf, " ");
  n = put_hex(buf, n, sizeof buf, (uintptr_t)p);
  n = put(buf, n, sizeof buf, "\n");
  emit(buf, n);
  die();
}

void ta_fatal(const char *msg) {
  char buf[256];
  size_t n = put(buf, 0, sizeof buf, "tamalloc: ");
  n = put(buf, n, sizeof buf, msg);
  n = put(buf, n, sizeof buf, "\n");
  emit(buf, n);
  die();
}

void ta_fatal_assert(const char *file, int line, const char *expr) {
  char buf[512];
  size_t n = put(buf, 0, sizeof buf, "tamalloc: internal check failed at ");
  n = put(buf, n, sizeof buf, file);
  n = put(buf, n, sizeof buf, ":");
  n = put_dec(buf, n, sizeof buf, (unsigned long)line);
  n = put(buf, n, sizeof buf, ": ");
  n = put(buf, n, sizeof buf, expr);
  n = put(buf, n, sizeof buf, "\n");
  emit(buf, n);
  die();
}

void ta_warn(const char *msg1, const char *msg2, const char *msg3) {
  char buf[512];
  size_t n = put(buf, 0, sizeof buf, "tamalloc: warning: ");
  n = put(buf, n, sizeof buf, msg1 ? msg1 : "");
  n = put(buf, n, sizeof buf, msg2 ? msg2 : "");
  n = put(buf, n, sizeof buf, msg3 ? msg3 : "");
  n = put(buf, n, sizeof buf, "\n");
  emit(buf, n);
}
