/* Fatal errors and warnings. Messages are built with format.c into stack buffers and written with
 * write(2): this must work when the heap is corrupt, inside a signal handler, and before stdio exists. */
#include <stdlib.h>

#include "common.h"
#include "format.h"

#define TA_STDERR ((void *)(intptr_t)2)

static _Noreturn void die(ta_out_t *o) {
  ta_out_finish(o);
  abort();
}

void ta_fatal_ptr(const char *func, const char *what, const void *p) {
  char buf[256];
  ta_out_t o = {.buf = buf, .cap = sizeof buf, .flush = ta_out_fd_flush, .ctx = TA_STDERR};
  ta_out_str(&o, "tamalloc: ");
  ta_out_str(&o, func);
  ta_out_str(&o, "(): ");
  ta_out_str(&o, what);
  ta_out_str(&o, " ");
  ta_out_hex(&o, (uintptr_t)p);
  ta_out_str(&o, "\n");
  die(&o);
}

void ta_fatal(const char *msg) {
  char buf[256];
  ta_out_t o = {.buf = buf, .cap = sizeof buf, .flush = ta_out_fd_flush, .ctx = TA_STDERR};
  ta_out_str(&o, "tamalloc: ");
  ta_out_str(&o, msg);
  ta_out_str(&o, "\n");
  die(&o);
}

void ta_fatal_assert(const char *file, int line, const char *expr) {
  char buf[512];
  ta_out_t o = {.buf = buf, .cap = sizeof buf, .flush = ta_out_fd_flush, .ctx = TA_STDERR};
  ta_out_str(&o, "tamalloc: internal check failed at ");
  ta_out_str(&o, file);
  ta_out_str(&o, ":");
  ta_out_i(&o, line);
  ta_out_str(&o, ": ");
  ta_out_str(&o, expr);
  ta_out_str(&o, "\n");
  die(&o);
}

void ta_warn(const char *msg1, const char *msg2, const char *msg3) {
  char buf[512];
  ta_out_t o = {.buf = buf, .cap = sizeof buf, .flush = ta_out_fd_flush, .ctx = TA_STDERR};
  ta_out_str(&o, "tamalloc: warning: ");
  ta_out_str(&o, msg1 ? msg1 : "");
  ta_out_str(&o, msg2 ? msg2 : "");
  ta_out_str(&o, msg3 ? msg3 : "");
  ta_out_str(&o, "\n");
  ta_out_finish(&o);
}
