/* tb: a C face for google-benchmark, so the micro benchmarks can be written in C. It owns nothing but
 * the translation: a tb_state is the library's benchmark::State, a tb_bench its Benchmark. Write a
 * benchmark as
 *
 *   static void bm_pair(tb_state *s, void *user) {
 *     size_t n = (size_t)tb_range(s, 0);
 *     for (int64_t k; (k = tb_batch(s)) > 0;)     // the timed region; k iterations to run
 *       for (int64_t i = 0; i < k; i++) free(tb_escape(malloc(n)));
 *     tb_set_items_processed(s, tb_iterations(s));
 *   }
 *
 * register it from main with tb_register (plus tb_bench_* to set arguments and threads) and end main
 * with `return tb_main(argc, argv);`. */
#ifndef TB_H
#define TB_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tb_state_s tb_state; /* really benchmark::State, valid during one benchmark call */
typedef struct tb_bench_s tb_bench; /* really benchmark::internal::Benchmark, owned by the library */
typedef void tb_fn(tb_state *s, void *user);

/* --- inside a benchmark ------------------------------------------------------------------------ */

/* The timed loop in batches: starts timing on the first call and returns how many iterations to run;
 * returns 0 (and stops timing) once they are done. Use as `for (k; (k = tb_batch(s)) > 0;)`. */
int64_t tb_batch(tb_state *s);
/* The timed loop one iteration at a time: `while (tb_keep_running(s))`. Costs a call per iteration. */
int tb_keep_running(tb_state *s);
/* Iterations run so far (all of them once the loop has ended). */
int64_t tb_iterations(const tb_state *s);

/* Stop and restart the clock inside the loop (expensive: a few hundred ns; use around batches). */
void tb_pause(tb_state *s);
void tb_resume(tb_state *s);

/* Argument `i` set with tb_bench_arg / tb_bench_range / tb_bench_args. */
int64_t tb_range(const tb_state *s, int i);
/* This thread's index in [0, tb_threads(s)) and the number of threads running the benchmark. */
int tb_thread_index(const tb_state *s);
int tb_threads(const tb_state *s);

/* Throughput counters: reported per second, summed over threads. */
void tb_set_items_processed(tb_state *s, int64_t items);
void tb_set_bytes_processed(tb_state *s, int64_t bytes);
/* A named counter; flags from tb_counter_flags. */
enum tb_counter_flags {
  TB_COUNTER_PLAIN = 0,
  TB_COUNTER_RATE = 1,        /* divided by the elapsed time */
  TB_COUNTER_AVG_THREADS = 2, /* divided by the number of threads */
  TB_COUNTER_PER_ITERATION = 4 /* divided by the number of iterations */
};
void tb_set_counter(tb_state *s, const char *name, double value, int flags);
/* Marks the run failed with msg; the loop then runs no iterations. */
void tb_skip_with_error(tb_state *s, const char *msg);
/* Shows `label` beside the result. */
void tb_set_label(tb_state *s, const char *label);

/* Keeps the compiler from deleting a computation whose result is unused; returns p. */
static inline void *tb_escape(void *p) {
  __asm__ volatile("" : : "g"(p) : "memory");
  return p;
}

/* --- registration (before tb_main) ------------------------------------------------------------- */

/* Registers fn under name (copied); `user` is passed to every call. */
tb_bench *tb_register(const char *name, tb_fn *fn, void *user);
/* Each returns b, so calls chain: tb_bench_threads(tb_bench_arg(b, 8), 2). */
tb_bench *tb_bench_arg(tb_bench *b, int64_t x);                     /* one run with range(0) = x */
tb_bench *tb_bench_args(tb_bench *b, const int64_t *xs, int n);     /* one run with range(i) = xs[i] */
tb_bench *tb_bench_range(tb_bench *b, int64_t lo, int64_t hi);      /* lo, lo*m, ..., hi */
tb_bench *tb_bench_range_multiplier(tb_bench *b, int m);            /* m for tb_bench_range; default 8 */
tb_bench *tb_bench_arg_name(tb_bench *b, const char *name);         /* shows "name:x" in the run's name */
tb_bench *tb_bench_threads(tb_bench *b, int n);                     /* one run in n threads */
tb_bench *tb_bench_thread_range(tb_bench *b, int lo, int hi);       /* runs in lo, 2lo, ..., hi threads */
tb_bench *tb_bench_real_time(tb_bench *b);                          /* time by the wall clock */
tb_bench *tb_bench_min_time(tb_bench *b, double seconds);
tb_bench *tb_bench_unit_ns(tb_bench *b);                            /* report in nanoseconds */

/* --- running ----------------------------------------------------------------------------------- */

/* Parses the google-benchmark flags (--benchmark_filter, --benchmark_format=json, ...), runs what
 * matches, and returns the exit status for main. An unknown flag is an error (status 64). `--which`
 * prints which object provides malloc and exits, as the workloads do. */
int tb_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
