#pragma once
// Compiling a stretch of code for one instruction set. The program as a whole targets baseline
// x86-64; the fused kernels are written once as templates over an instruction-set struct
// (simd_avx2.h, simd_avx512.h) and compiled once per instruction set between
// DIFFUSE_TARGET_BEGIN(...) and DIFFUSE_TARGET_END, so every function (templates and lambdas
// included) defined there may use that set. Callers check the CPU class (kernel_options().cpu)
// first. Include standard headers before a region: their inline functions would otherwise be
// compiled for the region's instruction set and could be shared with code that runs without it.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DIFFUSE_X86_KERNELS 1

#define DIFFUSE_AVX2_TARGET "avx2,fma"
#define DIFFUSE_AVX512_TARGET "avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16"

#define DIFFUSE_PRAGMA(text) _Pragma(#text)
#if defined(__clang__)
#define DIFFUSE_TARGET_BEGIN(isa) \
  DIFFUSE_PRAGMA(clang attribute push(__attribute__((target(isa))), apply_to = function))
#define DIFFUSE_TARGET_END _Pragma("clang attribute pop")
#else
#define DIFFUSE_TARGET_BEGIN(isa) _Pragma("GCC push_options") DIFFUSE_PRAGMA(GCC target(isa))
#define DIFFUSE_TARGET_END _Pragma("GCC pop_options")
#endif

#endif
