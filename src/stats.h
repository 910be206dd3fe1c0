/* Statistics (src/stats.c): glibc's reporting calls, for src/override.c. The ta_stats_* API is in
 * include/tamalloc.h. */
#ifndef TA_STATS_H
#define TA_STATS_H

#include <stdio.h>

#include "src/common.h"

#pragma GCC visibility push(hidden)

struct mallinfo2;
void ta_stats_malloc_stats(void);
struct mallinfo2 ta_stats_mallinfo2(void);
int ta_stats_malloc_info(int options, FILE *out);

#pragma GCC visibility pop

#endif
