/* Entry point of the micro-benchmark binary: registers every family, then runs google-benchmark. */
#include "micro.h"

int main(int argc, char **argv) {
  mb_register_single();
  mb_register_batch();
  mb_register_threads();
  return tb_main(argc, argv);
}
