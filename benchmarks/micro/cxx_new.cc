// C++ micro benchmarks: operator new and sized delete of 16-512 B objects, on 1 and 2 threads (each
// thread its own objects). Linked without an allocator (micro-cxx: libstdc++'s operators over
// glibc, or any allocator's own operators under LD_PRELOAD) and with tamalloc's archive
// (micro-cxx-tamalloc-static). One op = one new plus its delete.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <new>

namespace {

// new + sized delete of one size: the fast paths when the same block comes straight back.
void bm_cxx_pair(benchmark::State &state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void *p = ::operator new(n);
    benchmark::DoNotOptimize(p);
    ::operator delete(p, n);
  }
  state.SetItemsProcessed(state.iterations());
}

// Objects of the sizes 16..512 B a C++ server's nodes and strings have, 256 live at a time per
// thread: each op deletes the oldest (sized) and news a block of the next size.
void bm_cxx_mixed(benchmark::State &state) {
  enum { LIVE = 256 };
  void *live[LIVE];
  std::size_t size[LIVE];
  std::uint64_t x = 0x9e3779b97f4a7c15ull + static_cast<std::uint64_t>(state.thread_index());
  auto next_size = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return static_cast<std::size_t>(16 + x % 497); // 16 .. 512
  };
  for (int i = 0; i < LIVE; i++) live[i] = ::operator new(size[i] = next_size());
  unsigned k = 0;
  for (auto _ : state) {
    ::operator delete(live[k], size[k]);
    live[k] = ::operator new(size[k] = next_size());
    benchmark::DoNotOptimize(live[k]);
    k = (k + 1) % LIVE;
  }
  for (int i = 0; i < LIVE; i++) ::operator delete(live[i], size[i]);
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK(bm_cxx_pair)->Name("cxx_pair")->Arg(16)->Arg(64)->Arg(256)->Arg(512)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(bm_cxx_mixed)->Name("cxx_mixed")->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK_MAIN();
