/* The per-process secret: a random key, bit 63 set, that free-list links and large-block tags are
 * mixed with (src/secret.c). Part of the platform layer: it includes nothing of the allocator. */
#ifndef TA_SECRET_H
#define TA_SECRET_H

#include "src/common.h"

#pragma GCC visibility push(hidden)

extern uintptr_t ta_secret;
/* Draws the secret (getrandom, else a clock and address mix). Called once, by ta_init_slow, before
 * any block exists. */
void ta_secret_init(void);

#pragma GCC visibility pop

#endif
