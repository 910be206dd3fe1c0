/* The whole-heap validator behind ta_validate (include/tamalloc.h): every segment, page and free list
 * of the arenas the calling thread may read without racing their owner. arenas/validate.c. */
#ifndef TA_VALIDATE_H
#define TA_VALIDATE_H

#include "arenas/arena.h"

#pragma GCC visibility push(hidden)

/* Checks one arena, as its owner (its thread, or a holder of the pool or shared lock for an arena in
 * the pool or the shared one); claims its trimming flag and takes its seg_lock. On an inconsistency prints
 * "tamalloc: heap check failed: WHAT at 0x…" and aborts. */
void ta_validate_arena(ta_arena_t *arena);

#pragma GCC visibility pop

#endif
