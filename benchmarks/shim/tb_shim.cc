// The C++ half of tb.h: every function is a one-line forward to google-benchmark. Keep it that way —
// anything the benchmarks measure belongs in the C files, where every allocator sees the same code.
#include "tb.h"

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <vector>

extern "C" void bench_print_probe(void);  // benchmarks/common/bench.c

namespace {
benchmark::State &st(tb_state *s) { return *reinterpret_cast<benchmark::State *>(s); }
const benchmark::State &st(const tb_state *s) { return *reinterpret_cast<const benchmark::State *>(s); }
benchmark::internal::Benchmark *bm(tb_bench *b) { return reinterpret_cast<benchmark::internal::Benchmark *>(b); }
tb_bench *tb(benchmark::internal::Benchmark *b) { return reinterpret_cast<tb_bench *>(b); }
}  // namespace

extern "C" {

int64_t tb_batch(tb_state *s) {
  benchmark::State &state = st(s);
  // One batch of all the iterations: KeepRunningBatch starts the clock on the first call and, once
  // they are used up, stops it and returns false on the second.
  benchmark::IterationCount n = state.max_iterations > 0 ? state.max_iterations : 1;
  return state.KeepRunningBatch(n) ? static_cast<int64_t>(n) : 0;
}

int tb_keep_running(tb_state *s) { return st(s).KeepRunning() ? 1 : 0; }
int64_t tb_iterations(const tb_state *s) { return static_cast<int64_t>(st(s).iterations()); }
void tb_pause(tb_state *s) { st(s).PauseTiming(); }
void tb_resume(tb_state *s) { st(s).ResumeTiming(); }
int64_t tb_range(const tb_state *s, int i) { return st(s).range(static_cast<std::size_t>(i)); }
int tb_thread_index(const tb_state *s) { return st(s).thread_index(); }
int tb_threads(const tb_state *s) { return st(s).threads(); }
void tb_set_items_processed(tb_state *s, int64_t items) { st(s).SetItemsProcessed(items); }
void tb_set_bytes_processed(tb_state *s, int64_t bytes) { st(s).SetBytesProcessed(bytes); }

void tb_set_counter(tb_state *s, const char *name, double value, int flags) {
  int f = benchmark::Counter::kDefaults;
  if (flags & TB_COUNTER_RATE) f |= benchmark::Counter::kIsRate;
  if (flags & TB_COUNTER_AVG_THREADS) f |= benchmark::Counter::kAvgThreads;
  if (flags & TB_COUNTER_PER_ITERATION) f |= benchmark::Counter::kAvgIterations;
  st(s).counters[name] = benchmark::Counter(value, static_cast<benchmark::Counter::Flags>(f));
}

void tb_skip_with_error(tb_state *s, const char *msg) { st(s).SkipWithError(msg); }
void tb_set_label(tb_state *s, const char *label) { st(s).SetLabel(label); }

tb_bench *tb_register(const char *name, tb_fn *fn, void *user) {
  return tb(benchmark::RegisterBenchmark(name, [fn, user](benchmark::State &state) {
    fn(reinterpret_cast<tb_state *>(&state), user);
  }));
}

tb_bench *tb_bench_arg(tb_bench *b, int64_t x) { return tb(bm(b)->Arg(x)); }
tb_bench *tb_bench_args(tb_bench *b, const int64_t *xs, int n) {
  return tb(bm(b)->Args(std::vector<int64_t>(xs, xs + n)));
}
tb_bench *tb_bench_range(tb_bench *b, int64_t lo, int64_t hi) { return tb(bm(b)->Range(lo, hi)); }
tb_bench *tb_bench_range_multiplier(tb_bench *b, int m) { return tb(bm(b)->RangeMultiplier(m)); }
tb_bench *tb_bench_arg_name(tb_bench *b, const char *name) { return tb(bm(b)->ArgName(name)); }
tb_bench *tb_bench_threads(tb_bench *b, int n) { return tb(bm(b)->Threads(n)); }
tb_bench *tb_bench_thread_range(tb_bench *b, int lo, int hi) { return tb(bm(b)->ThreadRange(lo, hi)); }
tb_bench *tb_bench_real_time(tb_bench *b) { return tb(bm(b)->UseRealTime()); }
tb_bench *tb_bench_min_time(tb_bench *b, double seconds) { return tb(bm(b)->MinTime(seconds)); }
tb_bench *tb_bench_unit_ns(tb_bench *b) { return tb(bm(b)->Unit(benchmark::kNanosecond)); }

int tb_main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (std::strcmp(argv[i], "--which") == 0) {
      bench_print_probe();
      return 0;
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 64;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // extern "C"
