#pragma once
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace diffuse {

// Parses JSON as Python's json module writes it: diffusers configs may hold NaN, Infinity and
// -Infinity (e.g. DPMSolver's lambda_min_clipped), which strict JSON lacks. They become
// ±infinity numbers and NaN becomes null. Throws diffuse::Error naming `source` when malformed.
nlohmann::json parse_json(const std::string& text, const std::string& source);
nlohmann::json read_json_file(const std::filesystem::path& path);

}  // namespace diffuse
