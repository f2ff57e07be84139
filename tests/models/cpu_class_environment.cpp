// The model tests also run with the CPU class lowered (DIFFUSE_CPU; tests/CMakeLists.txt): libtorch's
// and oneDNN's dispatch follow it as they do in `diffuse` itself, set before any test touches a tensor
// (both libraries read their variable once).
#include "models/kernel_options.h"

namespace {

[[maybe_unused]] const bool kLibrariesFollowTheCpuClass = (diffuse::models::limit_libraries_to_cpu_class(), true);

}  // namespace
