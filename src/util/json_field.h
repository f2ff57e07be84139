#pragma once
// One typed reader for fields of JSON objects: model configs, scheduler configs and request payloads
// all read their fields through it, so a wrong type is refused the same way everywhere, with the field
// named, and never reaches nlohmann's own type errors (which name neither field nor file) or its
// undefined conversion of a float beyond int's range.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace diffuse {

// T: int, int64_t, double, bool, std::string, or a std::vector of int, double or std::string.
// nullopt where `object` is not an object or the field is absent or null (diffusers writes null for
// "not set"). A value of another type, a fraction where a whole number is wanted, or a number outside
// T's range throws InvalidParameter(key, "must be <what>, not <value>").
template <typename T>
std::optional<T> json_field(const nlohmann::json& object, const std::string& key);

template <typename T>
T json_field_or(const nlohmann::json& object, const std::string& key, T fallback) {
  auto value = json_field<T>(object, key);
  return value ? std::move(*value) : std::move(fallback);
}

// Whether `object` has `key` with a value other than null.
bool json_has(const nlohmann::json& object, const std::string& key);

}  // namespace diffuse
