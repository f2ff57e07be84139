#include "server/a1111_api.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>
#include <map>
#include <random>
#include <set>

#include "image/png_file.h"
#include "pipeline/presets.h"
#include "sampling/sampling.h"
#include "server/controlnet_api.h"
#include "util/base64.h"
#include "util/error.h"
#include "util/json_field.h"
#include "util/strings.h"

namespace diffuse::server {

using nlohmann::json;

namespace {

std::string text_field(const json& payload, const char* field, const std::string& fallback = "") {
  return json_field_or<std::string>(payload, field, fallback);
}
int64_t integer_field(const json& payload, const char* field, int64_t fallback) {
  return json_field_or<int64_t>(payload, field, fallback);
}
double number_field(const json& payload, const char* field, double fallback) {
  return json_field_or<double>(payload, field, fallback);
}
bool bool_field(const json& payload, const char* field, bool fallback) {
  return json_field_or<bool>(payload, field, fallback);
}

int bounded(int64_t value, const char* field, int64_t low, int64_t high) {
  if (value < low || value > high) {
    throw InvalidParameter(field, std::to_string(value) + " is outside " + std::to_string(low) + ".." + std::to_string(high) +
                                      (high < 100000 ? " (this server's limit)" : ""));
  }
  return static_cast<int>(value);
}

uint64_t random_seed() {
  std::random_device device;
  return (uint64_t{device()} << 32 | device()) % 4294967296ull;  // AUTOMATIC1111's seeds fit 32 bits
}

// "" and AUTOMATIC1111's "Use same sampler" keep the first pass's.
std::string hires_sampler_from_a1111(const std::string& name) {
  if (name.empty() || to_lower(name) == "use same sampler") return "";
  pipeline::GenerationRequest sampler;
  try {
    set_sampler_from_a1111(sampler, name, "");
  } catch (const InvalidParameter& error) {
    throw InvalidParameter("hr_sampler_name", error.problem());
  }
  return sampler.sampler;
}

pipeline::HiresFixRequest hires_from_a1111(const json& payload, const ServeLimits& limits) {
  pipeline::HiresFixRequest hires;
  hires.scale = number_field(payload, "hr_scale", 2.0);
  hires.width = bounded(integer_field(payload, "hr_resize_x", 0), "hr_resize_x", 0, limits.max_width);
  hires.height = bounded(integer_field(payload, "hr_resize_y", 0), "hr_resize_y", 0, limits.max_height);
  hires.upscaler = text_field(payload, "hr_upscaler", "Latent");
  hires.steps = bounded(integer_field(payload, "hr_second_pass_steps", 0), "hr_second_pass_steps", 0, limits.max_steps);
  hires.denoise = number_field(payload, "denoising_strength", hires.denoise);
  hires.sampler = hires_sampler_from_a1111(text_field(payload, "hr_sampler_name"));
  // AUTOMATIC1111 reads an empty hires prompt as the first pass's.
  if (!text_field(payload, "hr_prompt").empty()) hires.prompt = text_field(payload, "hr_prompt");
  if (!text_field(payload, "hr_negative_prompt").empty()) hires.negative_prompt = text_field(payload, "hr_negative_prompt");
  return hires;
}

}  // namespace

at::Tensor decode_a1111_image(const std::string& text, const std::string& field) {
  std::string data = text;
  if (data.rfind("data:", 0) == 0) {
    const auto comma = data.find(',');
    if (comma == std::string::npos) throw InvalidParameter(field, "a data: URL without its data");
    data = data.substr(comma + 1);
  }
  const auto bytes = base64_decode(data);
  if (!bytes) throw InvalidParameter(field, "is not base64");
  try {
    return image::decode_png(*bytes, field).pixels;
  } catch (const Error& error) {
    // decode_png says "<field>: not a PNG file": keep the problem, name the field once.
    std::string problem = error.what();
    if (problem.rfind(field + ": ", 0) == 0) problem = problem.substr(field.size() + 2);
    throw InvalidParameter(field, problem + " (PNG images only)");
  }
}

InvalidParameter with_a1111_field(const InvalidParameter& error, const ApiRequest& api) {
  return with_a1111_field(with_controlnet_field(error, api.control_args));
}

InvalidParameter with_a1111_field(const InvalidParameter& error) {
  static const std::map<std::string, std::string> fields{
      {"hires_scale", "hr_scale"},         {"hires_width", "hr_resize_x"},
      {"hires_height", "hr_resize_y"},     {"hires_upscaler", "hr_upscaler"},
      {"hires_denoise", "denoising_strength"}, {"hires_steps", "hr_second_pass_steps"},
      {"hires_sampler", "hr_sampler_name"}, {"hires_prompt", "hr_prompt"},
      {"hires_negative_prompt", "hr_negative_prompt"}};
  const auto field = fields.find(error.parameter());
  return field == fields.end() ? error : InvalidParameter(field->second, error.problem());
}

void set_sampler_from_a1111(pipeline::GenerationRequest& request, const std::string& sampler_name,
                            const std::string& scheduler) {
  const std::string wanted = to_lower(sampler_name);
  bool found = false;
  for (const auto& [name, description] : sampling::sampler_names()) {
    for (const auto& [schedule, schedule_description] : sampling::schedule_names()) {
      sampling::SamplerOptions options;
      options.sampler = name;
      options.schedule = sampling::parse_sigma_schedule(schedule);
      if (to_lower(sampling::display_name(options)) == wanted || (schedule == "default" && to_lower(name) == wanted)) {
        request.sampler = name;
        request.schedule = schedule;
        found = true;
      }
    }
    if (found) break;
  }
  if (!found) {
    throw InvalidParameter("sampler_name", "unknown sampler '" + sampler_name + "' (GET /sdapi/v1/samplers lists them)");
  }
  const auto schedule = sampling::parse_a1111_schedule(scheduler);
  // Automatic keeps what the sampler name said ("DPM++ 2M Karras").
  if (!scheduler.empty() && to_lower(scheduler) != "automatic") request.schedule = sampling::name_of(schedule);
}

ApiRequest parse_a1111_request(const json& payload, bool img2img, const ServeLimits& limits) {
  if (!payload.is_object()) throw InvalidParameter("body", "must be a JSON object");
  ApiRequest api;
  auto& r = api.request;
  r.prompt = text_field(payload, "prompt");
  r.negative_prompt = text_field(payload, "negative_prompt");
  r.width = json_has(payload, "width") ? bounded(integer_field(payload, "width", 0), "width", 8, limits.max_width) : 0;
  r.height = json_has(payload, "height") ? bounded(integer_field(payload, "height", 0), "height", 8, limits.max_height) : 0;
  r.steps = bounded(integer_field(payload, "steps", 20), "steps", 1, limits.max_steps);
  r.cfg_scale = number_field(payload, "cfg_scale", 7.0);
  r.eta = number_field(payload, "eta", 0.0);
  const int64_t seed = integer_field(payload, "seed", -1);
  if (seed < -1) throw InvalidParameter("seed", "must be -1 (random) or a seed >= 0");
  r.seed = seed == -1 ? random_seed() : static_cast<uint64_t>(seed);
  api.batch_size = bounded(integer_field(payload, "batch_size", 1), "batch_size", 1, limits.max_images);
  api.n_iter = bounded(integer_field(payload, "n_iter", 1), "n_iter", 1, limits.max_images);
  if (api.batch_size * api.n_iter > limits.max_images) {
    throw InvalidParameter("batch_size", "batch_size x n_iter = " + std::to_string(api.batch_size * api.n_iter) +
                                             " images is over this server's limit of " + std::to_string(limits.max_images));
  }
  r.batch_count = api.batch_size * api.n_iter;
  api.send_images = bool_field(payload, "send_images", true);
  const std::string sampler = json_has(payload, "sampler_name") ? text_field(payload, "sampler_name")
                                                                : text_field(payload, "sampler_index", "Euler");
  set_sampler_from_a1111(r, sampler, text_field(payload, "scheduler"));
  // diffuse's own field: `diffuse generate --preset`, filling in what the payload leaves out.
  if (json_has(payload, "preset")) {
    std::set<std::string> given;
    if (json_has(payload, "steps")) given.insert("steps");
    if (json_has(payload, "cfg_scale")) given.insert("cfg_scale");
    if (json_has(payload, "sampler_name") || json_has(payload, "sampler_index")) given.insert("sampler");
    pipeline::apply_preset(pipeline::find_preset(text_field(payload, "preset")), r, given);
    r.steps = bounded(r.steps, "steps", 1, limits.max_steps);
  }
  // The request's own override_settings first, then the server's options.
  for (const char* key : {"override_settings", kServerDefaults}) {
    if (!json_has(payload, key)) continue;
    const auto& settings = payload.at(key);
    if (!settings.is_object()) throw InvalidParameter(key, "must be an object");
    if (json_has(settings, "CLIP_stop_at_last_layers")) {
      r.clip_skip = bounded(integer_field(settings, "CLIP_stop_at_last_layers", 1), "CLIP_stop_at_last_layers", 1, 12);
      break;
    }
  }
  if (!img2img) {
    if (bool_field(payload, "enable_hr", false)) r.hires = hires_from_a1111(payload, limits);
    api.control_args = read_controlnet_units(payload, at::Tensor(), r);
    return api;
  }

  if (!json_has(payload, "init_images")) throw InvalidParameter("init_images", "img2img needs one base64 PNG");
  const auto& images = payload.at("init_images");
  if (!images.is_array() || images.empty() || !images.at(0).is_string()) {
    throw InvalidParameter("init_images", "must be a list of base64 PNGs");
  }
  r.init_image = decode_a1111_image(images.at(0).get<std::string>(), "init_images");
  r.strength = number_field(payload, "denoising_strength", 0.75);
  if (json_has(payload, "mask")) {
    r.mask = decode_a1111_image(text_field(payload, "mask"), "mask");
    if (integer_field(payload, "inpainting_mask_invert", 0) == 1) r.mask = 255 - r.mask;
    r.mask_blur = number_field(payload, "mask_blur", 4);
  }
  api.control_args = read_controlnet_units(payload, r.init_image, r);
  return api;
}

json a1111_response(const json& payload, const ApiRequest& api, const pipeline::ResolvedRequest& request,
                    const std::vector<pipeline::GeneratedImage>& images, const std::vector<std::string>& png_bytes,
                    const std::string& model_name) {
  json encoded = json::array();
  if (api.send_images) {
    for (const auto& bytes : png_bytes) encoded.push_back(base64_encode(bytes));
  }
  json seeds = json::array(), subseeds = json::array(), prompts = json::array(), negatives = json::array(),
       infotexts = json::array();
  for (const auto& image : images) {
    seeds.push_back(image.seed);
    subseeds.push_back(image.seed);
    prompts.push_back(request.prompt);
    negatives.push_back(request.negative_prompt);
    infotexts.push_back(image.parameters);
  }
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", std::gmtime(&now));
  const json info = {
      {"prompt", request.prompt},
      {"all_prompts", prompts},
      {"negative_prompt", request.negative_prompt},
      {"all_negative_prompts", negatives},
      {"seed", request.seed},
      {"all_seeds", seeds},
      {"subseed", request.seed},
      {"all_subseeds", subseeds},
      {"subseed_strength", 0},
      {"width", request.width},
      {"height", request.height},
      {"sampler_name", sampling::display_name(request.sampler)},
      {"cfg_scale", request.cfg_scale},
      {"steps", request.sampler.steps},
      {"batch_size", api.batch_size},
      {"n_iter", api.n_iter},
      {"restore_faces", false},
      {"sd_model_name", model_name},
      {"clip_skip", request.clip_skip},
      {"denoising_strength", request.hires          ? json(request.hires->denoise)
                             : request.has_init_image() ? json(request.strength)
                                                        : json(nullptr)},
      {"infotexts", infotexts},
      {"styles", json::array()},
      {"job_timestamp", stamp},
      {"index_of_first_image", 0},
      {"version", "diffuse"},
  };
  json parameters = payload;
  if (parameters.is_object()) parameters.erase(kServerDefaults);
  return json{{"images", encoded}, {"parameters", parameters}, {"info", info.dump()}};
}

json a1111_samplers() {
  json list = json::array();
  for (const auto& [name, description] : sampling::sampler_names()) {
    sampling::SamplerOptions options;
    options.sampler = name;
    list.push_back({{"name", sampling::display_name(options)}, {"aliases", {name}}, {"options", json::object()}});
  }
  return list;
}

json diffuse_presets() {
  json list = json::array();
  for (const auto& preset : pipeline::presets()) {
    sampling::SamplerOptions options;
    options.sampler = preset.sampler;
    list.push_back({{"name", preset.name},
                    {"description", preset.description},
                    {"sampler_name", sampling::display_name(options)},
                    {"timestep_spacing", preset.timestep_spacing.empty() ? json(nullptr) : json(preset.timestep_spacing)},
                    {"steps", preset.steps},
                    {"cfg_scale", preset.cfg_scale}});
  }
  return list;
}

}  // namespace diffuse::server
