#include "server/controlnet_api.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <optional>
#include <sstream>
#include <utility>

#include "image/control_preprocess.h"
#include "image/png_file.h"
#include "io/controlnet_files.h"
#include "server/a1111_api.h"
#include "util/base64.h"
#include "util/format.h"
#include "util/json_field.h"
#include "util/strings.h"

namespace diffuse::server {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// sd-webui-controlnet's module names (and ours) -> image::ControlPreprocessor's; module_list gives
// the listed ones, one per preprocessor.
struct ModuleName {
  const char* a1111;
  const char* ours;
  bool listed;
};
constexpr ModuleName kModules[] = {
    {"none", "none", true},
    {"canny", "canny", true},
    {"invert", "invert", true},
    {"threshold", "threshold", true},
    {"tile_resample", "tile", true},
    {"invert (from white bg & black line)", "invert", false},
    {"tile", "tile", false},
};

// Per mode, by its index in the API: AUTOMATIC1111's name, ours, and the extension's older names
// (compared whatever their case).
const std::vector<std::vector<std::string>> kControlModes = {
    {"Balanced", "balanced"}, {"My prompt is more important", "prompt"}, {"ControlNet is more important", "control"}};
const std::vector<std::vector<std::string>> kResizeModes = {
    {"Just Resize", "stretch"},
    {"Crop and Resize", "crop", "Inner Fit (Scale to Fit)", "Scale to Fit (Inner Fit)"},
    {"Resize and Fill", "fit", "Outer Fit (Shrink to Fit)", "Envelope (Outer Fit)"}};

// Written so that parsing it back gives the same double (format_number keeps 6 digits).
std::string exact_number(double value) {
  std::ostringstream out;
  out.precision(17);
  out << value;
  return out.str();
}

std::string arg_field(size_t index, const std::string& key = "") {
  return "alwayson_scripts.controlnet.args[" + std::to_string(index) + "]" + (key.empty() ? "" : "." + key);
}

// json_field_or with the error naming `field_name` instead of the bare key.
template <typename T>
T named_field_or(const json& object, const std::string& key, const std::string& field_name, T fallback) {
  try {
    return json_field_or<T>(object, key, std::move(fallback));
  } catch (const InvalidParameter& error) {
    throw InvalidParameter(field_name, error.problem());
  }
}

// sd-webui-controlnet's thresholds: -1 (or absent) means the module's default.
std::optional<double> threshold_value(const json& object, const std::string& key, const std::string& field_name) {
  const double value = named_field_or<double>(object, key, field_name, -1.0);
  if (value == -1.0) return std::nullopt;
  return value;
}

// The preprocessor a module and its thresholds mean; errors name `module_field` or the threshold's field.
image::ControlPreprocessor preprocessor_of(const std::string& module, std::optional<double> threshold_a,
                                           std::optional<double> threshold_b, const std::string& module_field,
                                           const std::string& threshold_a_field, const std::string& threshold_b_field) {
  const auto wanted = to_lower(module);
  const auto found = std::find_if(std::begin(kModules), std::end(kModules),
                                  [&](const ModuleName& name) { return wanted == name.a1111; });
  if (found == std::end(kModules)) {
    throw InvalidParameter(module_field, "'" + module +
                                             "' is not a preprocessor this server has (GET /controlnet/module_list lists them)");
  }
  const auto defaults = image::ControlPreprocessor::parse(found->ours);
  // "canny:100:200" -> the parameters after the name, each replaced in turn by the given one, so
  // the one out of range is the field named.
  std::vector<std::string> parameters;
  std::istringstream parts(defaults.to_string());
  for (std::string part; std::getline(parts, part, ':');) parameters.push_back(part);
  parameters.erase(parameters.begin());
  const std::optional<double> given[] = {threshold_a, threshold_b};
  const std::string* fields[] = {&threshold_a_field, &threshold_b_field};
  image::ControlPreprocessor preprocessor = defaults;
  for (size_t i = 0; i < parameters.size() && i < 2; ++i) {
    if (!given[i]) continue;
    parameters[i] = exact_number(*given[i]);
    std::string spec = found->ours;
    for (const auto& parameter : parameters) spec += ":" + parameter;
    try {
      preprocessor = image::ControlPreprocessor::parse(spec);
    } catch (const Error& error) {
      throw InvalidParameter(*fields[i], error.what());
    }
  }
  return preprocessor;
}

// A mode given as its index or its name (A1111's or ours) -> our name.
std::string mode_name(const json& unit, const char* key, const std::string& field_name,
                      const std::vector<std::vector<std::string>>& modes, const std::string& fallback) {
  if (!json_has(unit, key)) return fallback;
  const auto& value = unit.at(key);
  if (value.is_number_integer()) {
    const auto index = value.get<int64_t>();
    if (index >= 0 && index < static_cast<int64_t>(modes.size())) return modes[index][1];
  } else if (value.is_string()) {
    const auto wanted = to_lower(value.get<std::string>());
    for (const auto& names : modes) {
      const auto same = [&](const std::string& name) { return to_lower(name) == wanted; };
      if (std::find_if(names.begin(), names.end(), same) != names.end()) return names[1];
    }
  }
  std::string known;
  for (size_t i = 0; i < modes.size(); ++i) known += (i ? ", " : "") + std::to_string(i) + " (\"" + modes[i][0] + "\")";
  throw InvalidParameter(field_name, "must be one of " + known + ", not " + value.dump());
}

// A1111 appends the model's hash to its name: "control_v11p_sd15_canny [d14c016b]".
std::string without_hash(const std::string& name) {
  const auto open = name.rfind(" [");
  if (open == std::string::npos || name.empty() || name.back() != ']') return name;
  return name.substr(0, open);
}

// The unit's control image and the field it came from: `image` (a base64 PNG, or an object with
// one under "image"), or the older clients' `input_image`.
std::optional<std::pair<std::string, std::string>> unit_image_text(const json& unit, size_t index) {
  for (const char* key : {"image", "input_image"}) {
    if (!json_has(unit, key)) continue;
    const auto& value = unit.at(key);
    const auto field = arg_field(index, key);
    if (value.is_string() && value.get<std::string>().empty()) continue;  // what UIs send for "no image"
    if (value.is_string()) return std::pair{field, value.get<std::string>()};
    if (value.is_object() && json_has(value, "image")) {
      return std::pair{field + ".image", named_field_or<std::string>(value, "image", field + ".image", "")};
    }
    throw InvalidParameter(field, "must be a base64 PNG, not " + value.dump());
  }
  return std::nullopt;
}

void check_unit_numbers(const pipeline::ControlUnit& unit, size_t index) {
  if (!std::isfinite(unit.weight) || unit.weight < 0) {
    throw InvalidParameter(arg_field(index, "weight"), format_number(unit.weight) + " must be a finite number >= 0");
  }
  for (const auto& [value, key] : {std::pair{unit.start, "guidance_start"}, std::pair{unit.end, "guidance_end"}}) {
    if (!std::isfinite(value) || value < 0 || value > 1) {
      throw InvalidParameter(arg_field(index, key), format_number(value) + " must be a fraction of the steps, 0 to 1");
    }
  }
  if (unit.start > unit.end) {
    throw InvalidParameter(arg_field(index, "guidance_start"),
                           format_number(unit.start) + " is after guidance_end " + format_number(unit.end));
  }
}

pipeline::ControlUnit unit_of(const json& arg, size_t index, const at::Tensor& init_image) {
  pipeline::ControlUnit unit;
  unit.model = without_hash(named_field_or<std::string>(arg, "model", arg_field(index, "model"), ""));
  if (unit.model.empty() || to_lower(unit.model) == "none") {
    throw InvalidParameter(arg_field(index, "model"),
                           "an enabled unit needs a ControlNet (GET /controlnet/model_list lists them)");
  }
  unit.weight = named_field_or<double>(arg, "weight", arg_field(index, "weight"), 1.0);
  unit.start = named_field_or<double>(arg, "guidance_start", arg_field(index, "guidance_start"), 0.0);
  unit.end = named_field_or<double>(arg, "guidance_end", arg_field(index, "guidance_end"), 1.0);
  check_unit_numbers(unit, index);
  unit.preprocessor = preprocessor_of(named_field_or<std::string>(arg, "module", arg_field(index, "module"), "none"),
                                      threshold_value(arg, "threshold_a", arg_field(index, "threshold_a")),
                                      threshold_value(arg, "threshold_b", arg_field(index, "threshold_b")),
                                      arg_field(index, "module"), arg_field(index, "threshold_a"),
                                      arg_field(index, "threshold_b"));
  if (const auto image = unit_image_text(arg, index)) {
    unit.image = decode_a1111_image(image->second, image->first);
  } else if (init_image.defined()) {
    unit.image = init_image;  // sd-webui-controlnet's img2img: the init image is the control image
  } else {
    throw InvalidParameter(arg_field(index, "image"), "an enabled unit needs a control image (base64 PNG)");
  }
  return unit;
}

// One control mode (and resize rule) per request here, where sd-webui-controlnet has one per unit.
void set_request_mode(std::string& current, bool first, const std::string& wanted, const std::string& field_name) {
  if (!first && wanted != current) {
    throw InvalidParameter(field_name, "'" + wanted + "' differs from an earlier unit's '" + current +
                                           "': this server applies one to every unit of a request");
  }
  current = wanted;
}

}  // namespace

std::vector<size_t> read_controlnet_units(const json& payload, const at::Tensor& init_image,
                                          pipeline::GenerationRequest& request) {
  std::vector<size_t> arg_of_unit;
  if (!json_has(payload, "alwayson_scripts")) return arg_of_unit;
  const auto& scripts = payload.at("alwayson_scripts");
  if (!scripts.is_object()) throw InvalidParameter("alwayson_scripts", "must be an object");
  // A1111 finds scripts by their title whatever its case ("ControlNet").
  const json* controlnet = nullptr;
  for (const auto& [name, script] : scripts.items()) {
    if (to_lower(name) == "controlnet") controlnet = &script;
  }
  if (!controlnet) return arg_of_unit;
  if (!controlnet->is_object() || !json_has(*controlnet, "args") || !controlnet->at("args").is_array()) {
    throw InvalidParameter("alwayson_scripts.controlnet", "must be an object with a list \"args\" of units");
  }
  const auto& args = controlnet->at("args");
  for (size_t i = 0; i < args.size(); ++i) {
    const auto& arg = args.at(i);
    if (!arg.is_object()) throw InvalidParameter(arg_field(i), "must be an object (a ControlNet unit)");
    if (!named_field_or<bool>(arg, "enabled", arg_field(i, "enabled"), true)) continue;
    auto unit = unit_of(arg, i, init_image);
    const bool first = arg_of_unit.empty();
    // sd-webui-controlnet's defaults: Balanced, Crop and Resize.
    set_request_mode(request.control_mode, first,
                     mode_name(arg, "control_mode", arg_field(i, "control_mode"), kControlModes, "balanced"),
                     arg_field(i, "control_mode"));
    set_request_mode(request.control_resize, first,
                     mode_name(arg, "resize_mode", arg_field(i, "resize_mode"), kResizeModes, "crop"),
                     arg_field(i, "resize_mode"));
    request.controls.push_back(std::move(unit));
    arg_of_unit.push_back(i);
  }
  return arg_of_unit;
}

InvalidParameter with_controlnet_field(const InvalidParameter& error, const std::vector<size_t>& arg_of_unit) {
  const std::string prefix = "unit ";
  const auto& problem = error.problem();
  if (error.parameter() != "control" || problem.rfind(prefix, 0) != 0) return error;
  const auto colon = problem.find(": ");
  if (colon == std::string::npos) return error;
  size_t unit = 0;
  try {
    unit = std::stoul(problem.substr(prefix.size(), colon - prefix.size()));
  } catch (const std::exception&) {
    return error;
  }
  if (unit < 1 || unit > arg_of_unit.size()) return error;
  return InvalidParameter(arg_field(arg_of_unit[unit - 1], "model"), problem.substr(colon + 2));
}

json controlnet_module_list() {
  json names = json::array();
  for (const auto& module : kModules) {
    if (module.listed) names.push_back(module.a1111);
  }
  return {{"module_list", names}};
}

json controlnet_model_list(const std::vector<fs::path>& dirs) {
  std::vector<std::string> names;
  for (const auto& dir : dirs) {
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(dir, error)) {
      try {
        if (io::is_controlnet_path(entry.path())) names.push_back(entry.path().stem().string());
      } catch (const std::exception&) {
        // Not a file that can be read as a net (a text file, a LoRA...): not listed.
      }
    }
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return {{"model_list", names}};
}

json controlnet_detect(const json& payload) {
  if (!payload.is_object()) throw InvalidParameter("body", "must be a JSON object");
  const auto preprocessor = preprocessor_of(
      json_field_or<std::string>(payload, "controlnet_module", "none"),
      threshold_value(payload, "controlnet_threshold_a", "controlnet_threshold_a"),
      threshold_value(payload, "controlnet_threshold_b", "controlnet_threshold_b"), "controlnet_module",
      "controlnet_threshold_a", "controlnet_threshold_b");
  const auto images = json_field_or<std::vector<std::string>>(payload, "controlnet_input_images", {});
  if (images.empty()) throw InvalidParameter("controlnet_input_images", "needs a list of base64 PNGs");
  json maps = json::array();
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string field = "controlnet_input_images[" + std::to_string(i) + "]";
    const auto pixels = decode_a1111_image(images[i], field);
    try {
      maps.push_back(base64_encode(image::encode_png(preprocessor.apply(pixels))));
    } catch (const Error& error) {
      throw InvalidParameter(field, error.what());
    }
  }
  return {{"images", maps}, {"info", "Success"}};
}

}  // namespace diffuse::server
