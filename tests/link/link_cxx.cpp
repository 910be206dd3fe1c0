// C++ against the archive: operator new/delete come from libstdc++, which calls malloc; with tamalloc
// linked whole, every allocation they make (arrays, long strings, vectors, aligned new) is tamalloc's.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "tamalloc.h"

#define CHECK(cond)                                                                                 \
  do {                                                                                              \
    if (!(cond)) {                                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                 \
      std::exit(1);                                                                                 \
    }                                                                                               \
  } while (0)

struct alignas(128) Wide {
  unsigned char bytes[300];
};

int main() {
  int *a = new int[100];
  CHECK(ta_owns(a) == 1);
  for (int i = 0; i < 100; i++) a[i] = i;
  delete[] a;

  std::string s(1000, 'x');
  s += " and a long tail so the string is far beyond the small-string buffer";
  CHECK(ta_owns(s.data()) == 1);

  std::vector<int> v;
  for (int i = 0; i < 100000; i++) v.push_back(i);
  CHECK(ta_owns(v.data()) == 1);
  CHECK(v[99999] == 99999);

  std::vector<char> big(1 << 20, 'b'); // on the mmap path
  CHECK(ta_owns(big.data()) == 1);

  auto u = std::make_unique<double[]>(5000);
  CHECK(ta_owns(u.get()) == 1);
  auto sp = std::make_shared<std::string>(500, 'q');
  CHECK(ta_owns(sp->data()) == 1);

  Wide *w = new Wide; // aligned new (alignment above the default)
  CHECK(reinterpret_cast<uintptr_t>(w) % 128 == 0);
  CHECK(ta_owns(w) == 1);
  delete w;
  void *raw = ::operator new(1000, std::align_val_t(4096));
  CHECK(reinterpret_cast<uintptr_t>(raw) % 4096 == 0);
  CHECK(ta_owns(raw) == 1);
  ::operator delete(raw, std::align_val_t(4096));

  std::ostringstream out;
  for (int i = 0; i < 1000; i++) out << i << ' ';
  std::string text = out.str();
  CHECK(ta_owns(text.data()) == 1);

  try {
    std::vector<char> fail(static_cast<size_t>(-1) / 2);
    CHECK(!"a vector of half the address space was allocated");
  } catch (const std::bad_alloc &) {
  } catch (const std::length_error &) {
  }
  return 0;
}
