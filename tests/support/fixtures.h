#pragma once
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <string>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

namespace diffuse::test {

// ../shared (DIFFUSE_SHARED_DIR, which ctest sets, or the configured default).
std::filesystem::path shared_dir();
std::filesystem::path fixtures_dir();
// The few-step models (LCM, guidance-free runs, TAESD) and their reference outputs.
inline std::filesystem::path fast_fixture_dir() { return fixtures_dir() / "tiny-fast"; }

// The names of a tensor map, sorted.
std::set<std::string> tensor_names(const std::map<std::string, at::Tensor>& tensors);

// Python-flavoured JSON (NaN, Infinity) as the fixtures hold it.
nlohmann::json read_json(const std::filesystem::path& path);

// A reference tensor: raw little-endian float32 `.bin` with a `.json` sidecar giving its shape.
at::Tensor read_reference(const std::filesystem::path& bin_path);

// max|actual - expected| / max|expected|: the tolerance unit every golden test states.
double relative_max_error(const at::Tensor& actual, const at::Tensor& expected);
// What one component's fp32 output (text encoder, UNet step, VAE) may differ from diffusers', in that unit.
inline constexpr double kComponentTolerance = 1e-4;

// DIFFUSE_LONG_TESTS=1: load and soak tests run at their full size (more clients, jobs, prompts) instead
// of the smaller one that proves the same in CI's time.
inline bool long_run() {
  const char* value = std::getenv("DIFFUSE_LONG_TESTS");
  return value != nullptr && std::string(value) == "1";
}

// Path of the built `diffuse` binary (DIFFUSE_BINARY, set by ctest, or the configured default).
std::filesystem::path diffuse_binary();

}  // namespace diffuse::test
