#include "measure.h"

#include <dlfcn.h>

#include <cctype>
#include <cstdlib>
#include <chrono>
#include <filesystem>
#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <ATen/Parallel.h>

#include "models/layers.h"
#include "models/linear.h"
#include "util/memory.h"

namespace diffuse::bench {

namespace {

double status_field_mib(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(field) + ":";
  while (std::getline(status, line)) {
    if (line.rfind(prefix, 0) == 0) return std::stod(line.substr(prefix.size())) / 1024.0;  // kB
  }
  return 0;
}

std::string trim(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.erase(0, 1);
  return text;
}

}  // namespace

double time_best(const std::function<void()>& run, int repeats, int warmups) {
  for (int i = 0; i < warmups; ++i) run();
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < std::max(1, repeats); ++i) {
    const auto start = std::chrono::steady_clock::now();
    run();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

double peak_rss_mib() { return status_field_mib("VmHWM"); }
double current_rss_mib() { return status_field_mib("VmRSS"); }

void reset_peak_rss() {
  release_free_memory();  // or tcmalloc's kept blocks count towards the next section's peak
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
}

BlasInfo blas_info() {
  BlasInfo info;
  std::istringstream config(at::show_config());
  std::string line;
  while (std::getline(config, line)) {
    const auto at = line.find("BLAS_INFO=");
    if (at != std::string::npos) info.configured = trim(line.substr(at + 10, line.find(',', at) - at - 10));
  }
  std::ifstream maps("/proc/self/maps");
  std::set<std::string> libraries;
  while (std::getline(maps, line)) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    const std::string name = path.substr(path.rfind('/') + 1);
    if (name.find("blas") != std::string::npos || name.find("mkl") != std::string::npos ||
        name.find("dnnl") != std::string::npos) {
      libraries.insert(path);
    }
  }
  for (const auto& path : libraries) info.loaded += (info.loaded.empty() ? "" : ", ") + path;
  std::error_code error;
  const auto target = std::filesystem::canonical("/usr/lib/x86_64-linux-gnu/libblas.so.3", error);
  info.system = error ? "unknown" : target.string();
  using CoreName = char* (*)();
  if (auto* core_name = reinterpret_cast<CoreName>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"))) {
    info.openblas_core = core_name();
    if (const char* forced = std::getenv("OPENBLAS_CORETYPE")) {
      info.openblas_core += std::string(" (OPENBLAS_CORETYPE=") + forced + " in the environment)";
    }
  }
  return info;
}

std::string allocator_library() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    if (path.find("tcmalloc") != std::string::npos || path.find("jemalloc") != std::string::npos) return path;
  }
  return "glibc malloc";
}

Ceiling measure_ceiling(at::ScalarType dtype) {
  at::NoGradGuard no_grad;
  Ceiling ceiling;
  const auto options = at::TensorOptions().dtype(dtype);
  {
    const int64_t channels = 640, side = 64, batch = 2;
    const auto input = at::randn({batch, channels, side, side}, options);
    const auto weight = at::randn({channels, channels, 3, 3}, options).mul_(0.01);
    const double flops = 2.0 * channels * channels * 9 * batch * side * side;
    // Whichever way oneDNN runs faster is the attainable rate: either memory format, or the kernel
    // reordered once as the engine's own convolutions run it.
    double best = std::numeric_limits<double>::infinity();
    for (const auto format : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
      const auto x = input.contiguous(format);
      const auto w = weight.contiguous(format);
      best = std::min(best, time_best([&] { at::conv2d(x, w, {}, 1, 1); }, 3, 1));
    }
    auto packed = models::conv2d(channels, channels, 3);
    packed->to(dtype);
    packed->weight.set_data(weight);
    if (packed->pack_for_inference()) best = std::min(best, time_best([&] { packed(input); }, 3, 1));
    ceiling.conv_gflops = flops / best / 1e9;
  }
  {
    const int64_t rows = 8192, inner = 1280, cols = 1280;
    const auto a = at::randn({rows, inner}, options);
    const auto b = at::randn({inner, cols}, options);
    // Whichever runs faster: libtorch's product (the BLAS in fp32), or oneDNN's with the weight
    // packed, as the engine's linear layers run it.
    double best = time_best([&] { at::mm(a, b); }, 3, 1);
    models::Linear linear(torch::nn::LinearOptions(inner, cols).bias(false));
    linear->to(dtype);
    if (linear->pack_for_inference()) best = std::min(best, time_best([&] { linear(a); }, 3, 1));
    ceiling.matmul_gflops = 2.0 * rows * inner * cols / best / 1e9;
  }
  return ceiling;
}

double psnr(const at::Tensor& a, const at::Tensor& b) {
  const double mse = (a.to(at::kDouble) - b.to(at::kDouble)).pow(2).mean().item<double>();
  if (mse == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(255.0 * 255.0 / mse);
}

}  // namespace diffuse::bench
