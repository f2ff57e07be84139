#include "models/kernel_options.h"

#include <cstdlib>
#include <cstring>

namespace diffuse::models {

namespace {

bool environment_says(const char* variable, const char* value) {
  const char* choice = std::getenv(variable);
  return choice != nullptr && std::strcmp(choice, value) == 0;
}

KernelOptions& current() {
  static KernelOptions options = KernelOptions::from_environment();
  return options;
}

}  // namespace

KernelOptions KernelOptions::from_environment() {
  KernelOptions options;
  if (environment_says("DIFFUSE_ATTENTION", "blocked")) options.attention = AttentionKernel::Blocked;
  if (environment_says("DIFFUSE_ATTENTION", "chunked")) options.attention = AttentionKernel::Chunked;
  options.fused_norms = !environment_says("DIFFUSE_FUSED", "off");
  options.packed_convolutions = !environment_says("DIFFUSE_CONV", "plain");
  options.packed_linear_layers = !environment_says("DIFFUSE_LINEAR", "plain");
  return options;
}

const KernelOptions& kernel_options() { return current(); }
void set_kernel_options(const KernelOptions& options) { current() = options; }

}  // namespace diffuse::models
