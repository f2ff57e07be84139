// What the benchmark reads off the machine: wall time, peak resident memory, which BLAS libtorch
// calls, and the machine's ceiling (the rate of a large convolution and matrix product through
// libtorch itself, so every other figure can be read as a fraction of what is attainable).
#pragma once
#include <functional>
#include <string>

#include <ATen/ATen.h>

namespace diffuse::bench {

// Seconds `run` takes: the best of `repeats` runs, after `warmups` untimed ones.
double time_best(const std::function<void()>& run, int repeats = 1, int warmups = 0);

// Peak resident memory (VmHWM) since the last reset, in MiB. The reset writes "5" to
// /proc/self/clear_refs (Linux >= 4.0); without it the peak is since process start.
double peak_rss_mib();
double current_rss_mib();
void reset_peak_rss();

struct BlasInfo {
  std::string configured;  // BLAS_INFO from libtorch's build config
  std::string loaded;      // the libblas / openblas / mkl shared objects mapped into this process
  std::string system;      // where the system's libblas.so.3 alternative points
  // The kernels OpenBLAS runs (openblas_get_corename), if it is loaded, and why: OPENBLAS_CORETYPE
  // in the environment overrides its detection (one sandbox here sets Haswell, AVX2 only, on an
  // AVX-512 CPU OpenBLAS itself would run as Cooperlake: fp32 products at half speed).
  std::string openblas_core;
};
BlasInfo blas_info();
// The malloc in use: a tcmalloc or jemalloc shared object mapped into this process, else glibc's.
std::string allocator_library();

struct Ceiling {
  double conv_gflops = 0;    // 3x3 convolution, 640 channels, 2x64x64 (the UNet's widest work)
  double matmul_gflops = 0;  // 8192x1280 by 1280x1280: libtorch's or packed oneDNN's, the faster
};
Ceiling measure_ceiling(at::ScalarType dtype);

// PSNR in dB of two uint8 images of the same shape (infinity when identical).
double psnr(const at::Tensor& a, const at::Tensor& b);

}  // namespace diffuse::bench
