#pragma once
// sd-webui-controlnet's API, translated: the units of a txt2img / img2img payload's
// alwayson_scripts.controlnet.args into pipeline::ControlUnit, and its /controlnet/* endpoints
// (model_list, module_list, detect). Errors are InvalidParameter naming the JSON field
// ("alwayson_scripts.controlnet.args[0].weight"); pipeline/ never sees those names.
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/request.h"
#include "util/error.h"

namespace diffuse::server {

// Fills request.controls (and control_mode, control_resize) from the payload's enabled units;
// returns, for each unit added, the index of the args entry it came from, so later errors about
// "unit N" can name that entry. `init_image` (img2img's) stands in for a unit without an image,
// as sd-webui-controlnet does; undefined for txt2img.
std::vector<size_t> read_controlnet_units(const nlohmann::json& payload, const at::Tensor& init_image,
                                          pipeline::GenerationRequest& request);

// pipeline's "control: unit N: ..." as the args entry it came from: the parser checks every other
// field of a unit itself, so what validate() and resolve() still refuse is the net it names.
InvalidParameter with_controlnet_field(const InvalidParameter& error, const std::vector<size_t>& arg_of_unit);

// GET /controlnet/module_list: {"module_list": [...]}, the module names read_controlnet_units takes.
nlohmann::json controlnet_module_list();
// GET /controlnet/model_list: {"model_list": [...]}, the names of the nets in `dirs` (files and
// diffusers folders that hold a ControlNet), sorted.
nlohmann::json controlnet_model_list(const std::vector<std::filesystem::path>& dirs);
// POST /controlnet/detect: {"images": [base64 PNG map per input], "info": "Success"} from
// controlnet_module, controlnet_input_images, controlnet_threshold_a / _b.
nlohmann::json controlnet_detect(const nlohmann::json& payload);

}  // namespace diffuse::server
