/* What arenas/arena.c and arenas/bind.c (thread binding) share inside the arena layer. Nothing
 * outside arenas/ includes this. */
#ifndef TA_BIND_H
#define TA_BIND_H

#include "arenas/arena.h"

#pragma GCC visibility push(hidden)

extern ta_lock_t ta_pool_lock;    /* the pool (bind.c) and the list of all arenas (arena.c) */
extern ta_arena_t *ta_all_arenas; /* ta_pool_lock: every arena, newest first; links never change */
/* ta_pool_lock held: a fresh arena in `state`, or NULL without memory (arena.c). */
ta_arena_t *ta_arena_new(uint8_t state);
/* fork: the bump allocator's lock in `phase`; in the child, false if the chunk was dropped. */
bool ta_arena_meta_fork(ta_fork_phase_t phase);
/* The malloc slow path of a thread whose TLS points at ta_arena_empty (bind.c). */
void *ta_bind_malloc(size_t cls);

#pragma GCC visibility pop

#endif
