#include "util/threads.h"

#include <dlfcn.h>

#include <ATen/Parallel.h>

namespace diffuse {

void set_cpu_threads(int threads) {
  at::set_num_threads(threads);
  // Looked up at run time: the BLAS is whatever libblas.so.3 the system points to.
  using SetThreads = void (*)(int);
  if (auto* openblas = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    openblas(threads);
  }
}

}  // namespace diffuse
