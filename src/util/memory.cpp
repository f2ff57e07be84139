#include "util/memory.h"

#include <dlfcn.h>
#include <malloc.h>

namespace diffuse {

void release_free_memory() {
  // Looked up at run time, so builds without tcmalloc (a GPU machine's libtorch) still link.
  using Release = void (*)();
  if (auto* tcmalloc = reinterpret_cast<Release>(::dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory"))) {
    tcmalloc();
  } else {
    ::malloc_trim(0);
  }
}

}  // namespace diffuse
