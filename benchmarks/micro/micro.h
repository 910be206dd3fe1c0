/* The micro benchmarks: one binary per allocator, written in C against the tb shim. Each file
 * registers one family; main.c calls every mb_register_* and hands over to tb_main. */
#ifndef MICRO_H
#define MICRO_H

#include "../common/bench.h"
#include "../shim/tb.h"

void mb_register_single(void);  /* single.c: pairs per size, calloc, realloc, aligned, router edge */
void mb_register_batch(void);   /* batch.c: allocate N, free in LIFO / FIFO / random order */
void mb_register_threads(void); /* threads.c: cross-thread free, churn and large blocks at 1..8 threads */

#endif
