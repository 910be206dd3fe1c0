// pairs_loop.c for C++: `cxx_pairs_loop SIZE N` runs a warm-up, then N operator new(SIZE) + sized
// operator delete pairs. Linked with nothing special; the allocator is LD_PRELOADed (its own C++
// operators, or libstdc++'s over its malloc). Instructions per pair by callgrind as in
// callgrind-pairs.sh: (Ir(N2) - Ir(N1)) / (N2 - N1); README "C++" has the command.
#include <cstdio>
#include <cstdlib>
#include <new>

// The compiler must not pair the new with the delete and drop both.
static inline void *escape(void *p) {
  __asm__ volatile("" : "+r"(p) : : "memory");
  return p;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s SIZE N\n", argv[0]);
    return 64;
  }
  std::size_t size = std::strtoul(argv[1], nullptr, 0);
  long n = std::strtol(argv[2], nullptr, 0);
  for (int i = 0; i < 10000; i++) ::operator delete(escape(::operator new(size)), size); // warm-up
  for (long i = 0; i < n; i++) ::operator delete(escape(::operator new(size)), size);
  return 0;
}
