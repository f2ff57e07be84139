#pragma once

namespace diffuse {

// CPU threads for everything that computes: libtorch's intra-op pool and, when the BLAS behind it
// is OpenBLAS, OpenBLAS's own pool. libtorch's Debian build calls a generic BLAS, so
// at::set_num_threads alone leaves OpenBLAS starting one thread per core: "--threads 1" then ran
// fp32 matrix products on two threads, beside whatever else the machine was doing.
void set_cpu_threads(int threads);

}  // namespace diffuse
