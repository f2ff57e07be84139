#include "util/json_field.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include "util/error.h"

namespace diffuse {

namespace {

using nlohmann::json;

[[noreturn]] void refuse(const std::string& key, const char* wanted, const json& value) {
  std::string shown = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (shown.size() > 60) shown = shown.substr(0, 57) + "...";
  throw InvalidParameter(key, std::string("must be ") + wanted + ", not " + shown);
}

template <typename Int>
Int whole_number(const json& value, const std::string& key) {
  constexpr auto low = std::numeric_limits<Int>::min();
  constexpr auto high = std::numeric_limits<Int>::max();
  const char* wanted = sizeof(Int) == 4 ? "a whole number from -2147483648 to 2147483647" : "a whole number";
  if (value.is_number_unsigned()) {
    if (value.get<uint64_t>() <= static_cast<uint64_t>(high)) return static_cast<Int>(value.get<uint64_t>());
  } else if (value.is_number_integer()) {
    const int64_t v = value.get<int64_t>();
    if (v >= low && v <= high) return static_cast<Int>(v);
  } else if (value.is_number_float()) {
    // Python writes 64.0 for a whole float; a fraction or NaN is not a count.
    const double v = value.get<double>();
    if (std::floor(v) == v && v >= static_cast<double>(low) && v < -static_cast<double>(low)) return static_cast<Int>(v);
  }
  refuse(key, wanted, value);
}

template <typename T>
T read(const json& value, const std::string& key);

template <>
int read<int>(const json& value, const std::string& key) { return whole_number<int>(value, key); }

template <>
int64_t read<int64_t>(const json& value, const std::string& key) { return whole_number<int64_t>(value, key); }

template <>
double read<double>(const json& value, const std::string& key) {
  if (!value.is_number()) refuse(key, "a number", value);
  return value.get<double>();
}

template <>
bool read<bool>(const json& value, const std::string& key) {
  if (!value.is_boolean()) refuse(key, "true or false", value);
  return value.get<bool>();
}

template <>
std::string read<std::string>(const json& value, const std::string& key) {
  if (!value.is_string()) refuse(key, "a string", value);
  return value.get<std::string>();
}

template <typename Item>
std::vector<Item> read_list(const json& value, const std::string& key, const char* wanted) {
  if (!value.is_array()) refuse(key, wanted, value);
  std::vector<Item> list;
  list.reserve(value.size());
  for (const auto& item : value) {
    try {
      list.push_back(read<Item>(item, key));
    } catch (const InvalidParameter&) {
      refuse(key, wanted, value);
    }
  }
  return list;
}

template <>
std::vector<int> read<std::vector<int>>(const json& value, const std::string& key) {
  return read_list<int>(value, key, "a list of whole numbers");
}

template <>
std::vector<double> read<std::vector<double>>(const json& value, const std::string& key) {
  return read_list<double>(value, key, "a list of numbers");
}

template <>
std::vector<std::string> read<std::vector<std::string>>(const json& value, const std::string& key) {
  return read_list<std::string>(value, key, "a list of strings");
}

}  // namespace

bool json_has(const json& object, const std::string& key) {
  if (!object.is_object()) return false;
  const auto it = object.find(key);
  return it != object.end() && !it->is_null();
}

template <typename T>
std::optional<T> json_field(const json& object, const std::string& key) {
  if (!json_has(object, key)) return std::nullopt;
  return read<T>(object.at(key), key);
}

template std::optional<int> json_field<int>(const json&, const std::string&);
template std::optional<int64_t> json_field<int64_t>(const json&, const std::string&);
template std::optional<double> json_field<double>(const json&, const std::string&);
template std::optional<bool> json_field<bool>(const json&, const std::string&);
template std::optional<std::string> json_field<std::string>(const json&, const std::string&);
template std::optional<std::vector<int>> json_field<std::vector<int>>(const json&, const std::string&);
template std::optional<std::vector<double>> json_field<std::vector<double>>(const json&, const std::string&);
template std::optional<std::vector<std::string>> json_field<std::vector<std::string>>(const json&,
                                                                                      const std::string&);

}  // namespace diffuse
