#pragma once
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

// Path of the built `diffuse` binary (DIFFUSE_BINARY, set by ctest, or the configured default).
std::filesystem::path diffuse_binary();

}  // namespace diffuse::test
