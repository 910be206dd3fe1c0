// The C++ front end's contract (src/cxx_new.cc), one case per argument: every operator new and
// delete form is tamalloc's (ta_owns), aligned forms honour their alignment, exhaustion runs the
// new_handler loop then throws bad_alloc (nothrow forms: null), and sized or aligned deletes that
// lie about the block abort with a message naming it. Built twice: linked with the archive, and
// linked without tamalloc and run under LD_PRELOAD (TA_TEST_PRELOAD), where ta_owns is found with
// dlsym.
#include <dlfcn.h>
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <new>

#include "tamalloc.h"

#define CHECK(cond)                                                                                 \
  do {                                                                                              \
    if (!(cond)) {                                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                 \
      std::exit(1);                                                                                 \
    }                                                                                               \
  } while (0)

namespace {

int owns(const void *p) {
#if TA_TEST_PRELOAD
  static auto fn = reinterpret_cast<int (*)(const void *)>(dlsym(RTLD_DEFAULT, "ta_owns"));
  CHECK(fn != nullptr); // LD_PRELOAD is not libtamalloc.so
  return fn(p);
#else
  return ta_owns(p);
#endif
}

// Hides where a pointer came from, so the compiler neither pairs nor elides new and delete.
template <class T> T *hide(T *p) {
  __asm__ volatile("" : "+r"(p));
  return p;
}

void fill(void *p, std::size_t n) { std::memset(p, 0x5a, n); }

const std::size_t sizes[] = {0, 1, 16, 24, 100, 1000, 1024, 1025, 5000, 65536, 100000, 200000, 1u << 20};

// Every operator is tamalloc's, not libstdc++'s (whose would call malloc, and so pass the tests of
// ta_owns below without any front end): the object each one's address lies in.
void check_origin(const char *name, void *fn) {
  Dl_info info;
  CHECK(dladdr(fn, &info) != 0);
  if (info.dli_fname != nullptr && std::strstr(info.dli_fname, "libstdc++") != nullptr) {
    std::fprintf(stderr, "%s is libstdc++'s (%s), not tamalloc's\n", name, info.dli_fname);
    std::exit(1);
  }
}
#define ORIGIN(type, op) check_origin(#op " " #type, reinterpret_cast<void *>(static_cast<type>(&::op)))

void test_origin() {
  using std::align_val_t;
  using std::nothrow_t;
  using std::size_t;
  ORIGIN(void *(*)(size_t), operator new);
  ORIGIN(void *(*)(size_t), operator new[]);
  ORIGIN(void *(*)(size_t, const nothrow_t &) noexcept, operator new);
  ORIGIN(void *(*)(size_t, const nothrow_t &) noexcept, operator new[]);
  ORIGIN(void *(*)(size_t, align_val_t), operator new);
  ORIGIN(void *(*)(size_t, align_val_t), operator new[]);
  ORIGIN(void *(*)(size_t, align_val_t, const nothrow_t &) noexcept, operator new);
  ORIGIN(void *(*)(size_t, align_val_t, const nothrow_t &) noexcept, operator new[]);
  ORIGIN(void (*)(void *) noexcept, operator delete);
  ORIGIN(void (*)(void *) noexcept, operator delete[]);
  ORIGIN(void (*)(void *, const nothrow_t &) noexcept, operator delete);
  ORIGIN(void (*)(void *, const nothrow_t &) noexcept, operator delete[]);
  ORIGIN(void (*)(void *, size_t) noexcept, operator delete);
  ORIGIN(void (*)(void *, size_t) noexcept, operator delete[]);
  ORIGIN(void (*)(void *, align_val_t) noexcept, operator delete);
  ORIGIN(void (*)(void *, align_val_t) noexcept, operator delete[]);
  ORIGIN(void (*)(void *, align_val_t, const nothrow_t &) noexcept, operator delete);
  ORIGIN(void (*)(void *, align_val_t, const nothrow_t &) noexcept, operator delete[]);
  ORIGIN(void (*)(void *, size_t, align_val_t) noexcept, operator delete);
  ORIGIN(void (*)(void *, size_t, align_val_t) noexcept, operator delete[]);
}

// Each new form, its block tamalloc's and writable, freed by each matching delete form.
void test_forms() {
  for (std::size_t n : sizes) {
    void *p = ::operator new(n);
    CHECK(owns(p) == 1 && (uintptr_t)p % __STDCPP_DEFAULT_NEW_ALIGNMENT__ == 0);
    fill(p, n);
    ::operator delete(p);
    p = ::operator new(n);
    fill(p, n);
    ::operator delete(p, n);
    p = ::operator new[](n);
    CHECK(owns(p) == 1);
    fill(p, n);
    ::operator delete[](p);
    p = ::operator new[](n);
    ::operator delete[](p, n);
    p = ::operator new(n, std::nothrow);
    CHECK(p != nullptr && owns(p) == 1);
    fill(p, n);
    ::operator delete(p, std::nothrow);
    p = ::operator new[](n, std::nothrow);
    CHECK(p != nullptr && owns(p) == 1);
    ::operator delete[](p, std::nothrow);
    // Aligned forms with the default alignment and one above it.
    for (std::size_t a : {std::size_t{16}, std::size_t{64}}) {
      std::align_val_t al{a};
      p = ::operator new(n, al);
      CHECK(owns(p) == 1 && (uintptr_t)p % a == 0);
      fill(p, n);
      ::operator delete(p, al);
      p = ::operator new[](n, al);
      CHECK(owns(p) == 1 && (uintptr_t)p % a == 0);
      ::operator delete[](p, al);
      p = ::operator new(n, al, std::nothrow);
      CHECK(p != nullptr && owns(p) == 1 && (uintptr_t)p % a == 0);
      ::operator delete(p, al, std::nothrow);
      p = ::operator new[](n, al, std::nothrow);
      CHECK(p != nullptr && owns(p) == 1 && (uintptr_t)p % a == 0);
      ::operator delete[](p, al, std::nothrow);
      p = ::operator new(n, al);
      ::operator delete(p, n, al);
      p = ::operator new[](n, al);
      ::operator delete[](p, n, al);
    }
  }
  // The expressions, as compilers emit them (sized delete with -fsized-deallocation, C++14 on).
  struct alignas(256) Wide {
    char bytes[300];
  };
  Wide *w = hide(new Wide);
  CHECK(owns(w) == 1 && (uintptr_t)w % 256 == 0);
  delete w;
  Wide *ws = hide(new Wide[7]);
  CHECK(owns(ws) == 1 && (uintptr_t)ws % 256 == 0);
  delete[] ws;
  struct Obj {
    long v[5];
    ~Obj() { v[0] = 0; } // non-trivial: new[] adds a cookie, delete[] passes the sized form its size
  };
  Obj *os = hide(new Obj[9]);
  CHECK(owns(reinterpret_cast<char *>(os) - sizeof(std::size_t)) == 1);
  delete[] os;
  // Null is ignored by every delete.
  ::operator delete(nullptr);
  ::operator delete(nullptr, std::size_t{16});
  ::operator delete[](nullptr, std::size_t{16});
  ::operator delete(nullptr, std::align_val_t{64});
  ::operator delete(nullptr, std::size_t{16}, std::align_val_t{64});
}

// Alignments 16 B .. 64 KiB come from the bins, larger ones from mappings: each honoured.
void test_aligned() {
  for (std::size_t a = 16; a <= (std::size_t{8} << 20); a *= 2) {
    for (std::size_t n : {std::size_t{1}, a / 2 + 1, a, 3 * a + 5}) {
      if (n > (std::size_t{32} << 20)) continue;
      std::align_val_t al{a};
      char *p = static_cast<char *>(::operator new(n, al));
      CHECK((uintptr_t)p % a == 0 && owns(p) == 1);
      fill(p, n);
      ::operator delete(p, n, al);
      p = static_cast<char *>(::operator new[](n, al, std::nothrow));
      CHECK(p != nullptr && (uintptr_t)p % a == 0 && owns(p) == 1);
      fill(p, n);
      ::operator delete[](p, al);
    }
  }
  // Not a power of two: a failed allocation (bad_alloc, or null), as libstdc++'s own operator has it.
  CHECK(::operator new(100, std::align_val_t{48}, std::nothrow) == nullptr);
  CHECK(::operator new[](100, std::align_val_t{0}, std::nothrow) == nullptr);
  bool threw = false;
  try {
    ::operator delete(::operator new(100, std::align_val_t{3}));
  } catch (const std::bad_alloc &) {
    threw = true;
  }
  CHECK(threw);
}

// A size no allocator can give: every try fails, whatever memory is free.
std::size_t impossible = PTRDIFF_MAX;

int handler_calls;
void counting_handler() {
  if (++handler_calls == 3) std::set_new_handler(nullptr); // then the loop throws
}
void throwing_handler() {
  handler_calls++;
  throw std::bad_alloc();
}

// The loop: the handler runs until it uninstalls itself, then bad_alloc; nothrow forms run it too
// and return null; a handler that throws makes them return null.
void test_handler() {
  bool threw = false;
  try {
    ::operator delete(::operator new(impossible));
  } catch (const std::bad_alloc &) {
    threw = true;
  }
  CHECK(threw && handler_calls == 0); // no handler: straight to bad_alloc
  std::set_new_handler(counting_handler);
  threw = false;
  try {
    ::operator delete[](::operator new[](*hide(&impossible)));
  } catch (const std::bad_alloc &) {
    threw = true;
  }
  CHECK(threw && handler_calls == 3);
  handler_calls = 0;
  std::set_new_handler(counting_handler);
  CHECK(::operator new(impossible, std::align_val_t{4096}, std::nothrow) == nullptr);
  CHECK(handler_calls == 3);
  handler_calls = 0;
  std::set_new_handler(throwing_handler);
  CHECK(::operator new(impossible, std::nothrow) == nullptr);
  CHECK(::operator new[](impossible, std::nothrow) == nullptr);
  CHECK(handler_calls == 2);
  std::set_new_handler(nullptr);
}

// Real exhaustion under RLIMIT_AS: nothrow new returns null, the throwing form throws, and a handler
// that frees what the test holds lets the allocation succeed.
struct Node {
  Node *next;
};
Node *held;
int freeing_calls;
void freeing_handler() {
  freeing_calls++;
  while (held != nullptr) {
    Node *n = held;
    held = n->next;
    ::operator delete(n);
  }
  malloc_trim(0); // retained mappings count against RLIMIT_AS too
  std::set_new_handler(nullptr); // nothing more to give: a second failure throws
}

void exhaust(std::size_t block) {
  for (int i = 0; i < 100000; i++) {
    void *p = ::operator new(block, std::nothrow);
    if (p == nullptr) return;
    Node *n = static_cast<Node *>(p);
    n->next = held;
    held = n;
  }
  CHECK(!"RLIMIT_AS never ran out");
}

void test_exhaustion() {
  const std::size_t block = std::size_t{1} << 20;
  struct rlimit lim;
  CHECK(getrlimit(RLIMIT_AS, &lim) == 0);
  long pages = 0;
  FILE *f = std::fopen("/proc/self/statm", "r");
  CHECK(f != nullptr && std::fscanf(f, "%ld", &pages) == 1);
  std::fclose(f);
  struct rlimit low = lim;
  low.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (rlim_t{256} << 20);
  CHECK(setrlimit(RLIMIT_AS, &low) == 0);

  exhaust(block);
  CHECK(held != nullptr); // something fit below the limit
  CHECK(::operator new(block, std::nothrow) == nullptr);
  CHECK(::operator new[](block, std::align_val_t{4096}, std::nothrow) == nullptr);
  bool threw = false;
  try {
    ::operator delete(::operator new(block));
  } catch (const std::bad_alloc &) {
    threw = true;
  }
  CHECK(threw);

  std::set_new_handler(freeing_handler);
  void *p = ::operator new(block); // fails, the handler frees everything, the retry succeeds
  CHECK(p != nullptr && owns(p) == 1 && freeing_calls == 1);
  fill(p, block);
  ::operator delete(p, block);
  CHECK(setrlimit(RLIMIT_AS, &lim) == 0);
}

// new[] freed by delete (and new by delete[]) of a trivially destructible type: no cookie on either
// side, the same block freed; a loop of them stays on one block instead of leaking.
void test_mismatched() {
  void *first = nullptr;
  for (int i = 0; i < 100000; i++) {
    int *a = hide(new int[250]);
    CHECK(owns(a) == 1);
    if (i == 0) first = a;
    CHECK(a == first); // freed: the same block comes straight back
    a[249] = i;
    delete hide(a);
    long *b = hide(new long);
    CHECK(owns(b) == 1);
    delete[] hide(b);
  }
}

// Runs make() then finish(p) in a child; it must die of SIGABRT with stderr one line: want, a space,
// and p as %p prints it.
template <class Make, class Finish> void expect_death(const char *want, Make make, Finish finish) {
  int err[2], ptr[2];
  CHECK(pipe(err) == 0 && pipe(ptr) == 0);
  std::fflush(nullptr);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(err[1], 2);
    close(err[0]);
    close(ptr[0]);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    void *p = hide(make());
    char buf[64];
    int n = std::snprintf(buf, sizeof buf, "%p", p);
    if (write(ptr[1], buf, (std::size_t)n) != n) _exit(3);
    close(ptr[1]);
    finish(hide(p));
    _exit(0); // survived: the parent reports it
  }
  close(err[1]);
  close(ptr[1]);
  char out[512] = {0}, pp[64] = {0};
  std::size_t got = 0, pgot = 0;
  for (ssize_t r; got + 1 < sizeof out && (r = read(err[0], out + got, sizeof out - 1 - got)) > 0;) got += (std::size_t)r;
  for (ssize_t r; pgot + 1 < sizeof pp && (r = read(ptr[0], pp + pgot, sizeof pp - 1 - pgot)) > 0;) pgot += (std::size_t)r;
  close(err[0]);
  close(ptr[0]);
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  char line[256];
  std::snprintf(line, sizeof line, "%s %s\n", want, pp);
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT || std::strcmp(out, line) != 0) {
    std::fprintf(stderr, "expected SIGABRT and \"%s\", got status 0x%x and \"%s\"\n", line, status, out);
    std::exit(1);
  }
}

void test_death() {
  const char *size_msg = "tamalloc: operator delete(): size does not match the block";
  // Sizes larger than the block, in the bins and on mappings (smaller ones are taken: a delete of a
  // new[]'d array of a trivially destructible type passes the element's size, test_mismatched).
  static const std::size_t lies[][2] = {{64, 1000}, {64, 80}, {0, 17}, {4096, 5000}, {100000, 200000},
                                        {1u << 20, 2u << 20}, {1u << 20, (1u << 20) + 8192}};
  for (const auto &l : lies) {
    std::size_t made = l[0], told = l[1];
    expect_death(size_msg, [&] { return ::operator new(made); }, [&](void *p) { ::operator delete(p, told); });
    expect_death(size_msg, [&] { return ::operator new[](made); }, [&](void *p) { ::operator delete[](p, told); });
    expect_death(size_msg, [&] { return ::operator new(made, std::align_val_t{256}); },
                 [&](void *p) { ::operator delete(p, told + 300, std::align_val_t{256}); });
  }
  // An aligned delete whose alignment the block does not have, or that is no alignment at all.
  expect_death("tamalloc: operator delete(): alignment does not match the block",
               [] { return static_cast<char *>(::operator new(4096, std::align_val_t{64})) + 64; },
               [](void *p) { ::operator delete(p, std::align_val_t{128}); });
  expect_death("tamalloc: operator delete(): alignment is not a power of two, block",
               [] { return ::operator new(100, std::align_val_t{64}); },
               [](void *p) { ::operator delete(p, std::align_val_t{48}); });
  // Not a block at all, and a double delete: free's checks (the double free is caught inside the
  // arena's free, which names free()).
  expect_death("tamalloc: operator delete(): invalid pointer",
               [] { return static_cast<char *>(::operator new(64)) + 16; },
               [](void *p) { ::operator delete(p, std::size_t{48}); });
  if (TA_TEST_HARDENING) // the double-free check is part of the hardening (-Dhardening)
    expect_death("tamalloc: free(): double free", [] {
      void *p = ::operator new(64);
      ::operator delete(hide(p), std::size_t{64});
      return p; }, [](void *p) { ::operator delete(p, std::size_t{64}); });
}

// The secure variant (linked with libtamalloc-secure): new[] gets the canary malloc gets, so a
// one-byte overflow is caught at delete[].
void test_secure_overflow() {
  expect_death("tamalloc: free(): buffer overflow at", [] { return static_cast<void *>(new char[16]); },
               [](void *p) {
                 static_cast<char *>(hide(p))[16] = 1;
                 delete[] static_cast<char *>(p);
               });
}

}  // namespace

int main(int argc, char **argv) {
  const char *c = argc > 1 ? argv[1] : "";
  if (!std::strcmp(c, "origin")) test_origin();
  else if (!std::strcmp(c, "forms")) test_forms();
  else if (!std::strcmp(c, "aligned")) test_aligned();
  else if (!std::strcmp(c, "handler")) test_handler();
  else if (!std::strcmp(c, "exhaustion")) test_exhaustion();
  else if (!std::strcmp(c, "mismatched")) test_mismatched();
  else if (!std::strcmp(c, "death")) test_death();
  else if (!std::strcmp(c, "secure_overflow")) test_secure_overflow();
  else {
    std::fprintf(stderr, "unknown case '%s'\n", c);
    return 2;
  }
  return 0;
}
