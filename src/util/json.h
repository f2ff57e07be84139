#pragma once
#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace diffuse {

// Parses JSON as Python's json module writes it: diffusers configs may hold NaN, Infinity and
// -Infinity (e.g. DPMSolver's lambda_min_clipped), which strict JSON lacks. They become
// ±infinity numbers and NaN becomes null. Throws diffuse::Error naming `source` when malformed or
// nested deeper than kMaxJsonDepth.
nlohmann::json parse_json(const std::string& text, const std::string& source);
nlohmann::json read_json_file(const std::filesystem::path& path);

// Arrays and objects inside each other: no file we read needs more than a few levels. Deeper JSON is
// refused before it is parsed, because nlohmann's copies and dump() (and ordered_json's parser)
// recurse once per level: a few hundred kilobytes of '[' would overflow the stack.
constexpr int kMaxJsonDepth = 256;
// True when the JSON text nests arrays and objects deeper than `max_depth` (brackets inside strings
// do not count). Exact for valid JSON; for malformed text, at least as deep as the parser would go.
bool json_nests_deeper_than(std::string_view text, int max_depth = kMaxJsonDepth);

}  // namespace diffuse
