/* The large path's statics are zero-initialised (src/large.c: its locks get their state at the first
 * large block), so a process carries none of them in its binary nor resident before it uses them:
 *  - `data`: this program's .data (all of tamalloc's initialised statics, and the test's) is under
 *    16 KiB; with the registry's and cache's locks statically initialised it was 143 KiB.
 *  - `fork`: a process that forks before its first large block: parent and child each make, resize
 *    and free large blocks afterwards, and a bad free in the child is still named (the lookups
 *    before and after the locks' start-up).
 * ta_* names only, so it runs in sanitizer builds too. */
#include <elf.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "large_util.h"

/* Bytes of this executable's .data section, read from its ELF section headers (no allocation). */
static size_t data_bytes(void) {
  int fd = open("/proc/self/exe", O_RDONLY);
  CHECK(fd >= 0);
  Elf64_Ehdr eh;
  CHECK(pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh);
  CHECK(memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 && eh.e_shentsize == sizeof(Elf64_Shdr));
  Elf64_Shdr names;
  CHECK(pread(fd, &names, sizeof names, (off_t)(eh.e_shoff + (size_t)eh.e_shstrndx * sizeof names)) ==
        (ssize_t)sizeof names);
  size_t found = SIZE_MAX;
  for (unsigned i = 0; i < eh.e_shnum; i++) {
    Elf64_Shdr sh;
    CHECK(pread(fd, &sh, sizeof sh, (off_t)(eh.e_shoff + (size_t)i * sizeof sh)) == (ssize_t)sizeof sh);
    char name[8] = {0};
    if (pread(fd, name, sizeof name - 1, (off_t)(names.sh_offset + sh.sh_name)) <= 0) continue;
    if (strcmp(name, ".data") == 0) found = sh.sh_size;
  }
  close(fd);
  CHECK_MSG(found != SIZE_MAX, "no .data section in /proc/self/exe");
  return found;
}

static void data(void) {
  size_t n = data_bytes();
  fprintf(stderr, "data: .data is %zu bytes\n", n);
  CHECK_MSG(n < 16 * KIB, ".data is %zu bytes: a large static table is initialised (not zero, not in .bss)", n);
  printf("data: %zu bytes\n", n);
}

/* Large blocks made, grown, shrunk and freed; contents checked. */
static void use_large(uint32_t tag) {
  unsigned char *p = ta_malloc(3 * MIB);
  CHECK(p != NULL);
  pat_fill(p, tag, 0, 3 * MIB);
  p = ta_realloc(p, 7 * MIB);
  CHECK(p != NULL && pat_check(p, tag, 0, 3 * MIB) == 3 * MIB);
  p = ta_realloc(p, 2 * MIB);
  CHECK(p != NULL && pat_check(p, tag, 0, 2 * MIB) == 2 * MIB);
  CHECK(ta_owns(p) == 1);
  ta_free(p);
}

static void fork_first(void) {
  static unsigned char stack_like[64];
  CHECK(ta_owns(stack_like + 16) == 0); /* before any large block: not ours, no lock taken */
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    use_large(7);
    CHECK(ta_owns(stack_like + 16) == 0);
    _exit(0);
  }
  use_large(8);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child that forked before any large block failed (%#x)", st);
  /* And a fork after the start-up, the locks valid, taken and released around it. */
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    use_large(9);
    _exit(0);
  }
  use_large(10);
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  printf("fork: large blocks on both sides, before and after the start-up\n");
}

int main(int argc, char **argv) {
  return TEST_RUN_MODES(argc, argv, {"data", data}, {"fork", fork_first});
}
