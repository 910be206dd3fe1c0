/* The allocation names under test in the init suite: the standard ones when the build overrides
 * them, tamalloc's ta_* names otherwise. */
#ifndef TA_INIT_NAMES_H
#define TA_INIT_NAMES_H

#include "tamalloc.h"

#if TA_TEST_STD_NAMES
#include <stdlib.h>
#define TN(f) f
#else
#define TN(f) ta_##f
#endif

/* Keeps the compiler from pairing up and deleting a malloc and its free (it may for the standard
 * names): the allocator must really be called at the moment under test. */
static inline void *hide(void *p) {
  __asm__ volatile("" : "+r"(p));
  return p;
}

#endif
