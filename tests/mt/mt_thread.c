/* Preloaded by `meson test --setup mt`: a second thread that exists for the whole life of every test
 * process (started from a constructor, before main), so each suite also runs with a multithreaded
 * main, as glibc runs its own malloc tests. It allocates a little when it starts and then sleeps. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static void *sleeper(void *arg) {
  (void)arg;
  void *p = malloc(64);
  free(p);
  for (;;) pause();
  return NULL;
}

__attribute__((constructor)) static void start_second_thread(void) {
  pthread_t t;
  if (pthread_create(&t, NULL, sleeper, NULL) == 0) pthread_detach(t);
}
