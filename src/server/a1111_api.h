#pragma once
// AUTOMATIC1111's web API, translated: its txt2img / img2img JSON into the one generation request of
// pipeline/, and the images back as its responses (base64 PNGs, `parameters`, `info` as a JSON
// string with the seeds and infotexts). Field errors are InvalidParameter naming the JSON field.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/generation.h"
#include "pipeline/request.h"

namespace diffuse::server {

// What one server accepts, so a request can never ask for more than the machine should give.
struct ServeLimits {
  int max_width = 2048;
  int max_height = 2048;
  int max_steps = 150;
  int max_images = 16;           // batch_size x n_iter
  size_t max_request_bytes = 64u << 20;
};

struct ApiRequest {
  pipeline::GenerationRequest request;
  int batch_size = 1;  // AUTOMATIC1111's batch_size x n_iter images, made one after another
  int n_iter = 1;
  bool send_images = true;
  // For each of request.controls, the alwayson_scripts.controlnet.args entry it came from.
  std::vector<size_t> control_args;
};

// The server's /sdapi/v1/options a job carries, under this key of its payload (never echoed back).
inline constexpr const char* kServerDefaults = "__server_defaults";

// `img2img`: init_images, mask, denoising_strength, mask_blur, inpainting_mask_invert are read too.
// txt2img with enable_hr: the hires fix from hr_scale, hr_resize_x/y, hr_upscaler (AUTOMATIC1111's
// names: "Latent", "Latent (nearest)", "Lanczos"..., or an upscaler file), hr_second_pass_steps,
// denoising_strength (default 0.7), hr_sampler_name, hr_prompt, hr_negative_prompt.
// alwayson_scripts.controlnet.args: ControlNet units as sd-webui-controlnet's API takes them
// (server/controlnet_api.h); the request's controlnet_dirs are left for the server to fill in.
// Unknown fields are ignored, as AUTOMATIC1111 ignores them. seed -1 picks a random seed.
ApiRequest parse_a1111_request(const nlohmann::json& payload, bool img2img, const ServeLimits& limits);

// The request's error with the JSON field its parameter came from (hires_denoise: denoising_strength).
InvalidParameter with_a1111_field(const InvalidParameter& error);
// The same, also naming the ControlNet unit's args entry for pipeline's "control: unit N: ...".
InvalidParameter with_a1111_field(const InvalidParameter& error, const ApiRequest& api);

// A base64 PNG as clients send it, with or without a data: URL prefix: uint8 [H, W, C].
at::Tensor decode_a1111_image(const std::string& text, const std::string& field);

// The sampler (and schedule) an AUTOMATIC1111 name means: "DPM++ 2M Karras", "Euler a", or our own
// names ("dpm++2m"); `scheduler` is the newer separate field ("Karras", "Automatic"), may be empty.
void set_sampler_from_a1111(pipeline::GenerationRequest& request, const std::string& sampler_name,
                            const std::string& scheduler);

// The response body: {"images": [...], "parameters": payload, "info": "<json>"}.
nlohmann::json a1111_response(const nlohmann::json& payload, const ApiRequest& api, const pipeline::ResolvedRequest& request,
                              const std::vector<pipeline::GeneratedImage>& images,
                              const std::vector<std::string>& png_bytes, const std::string& model_name);

// Every sampler as /sdapi/v1/samplers lists them: {"name", "aliases", "options"}.
nlohmann::json a1111_samplers();
// pipeline/presets.h's presets as GET /diffuse/v1/presets lists them (a payload's "preset" names one):
// {"name", "description", "sampler_name" (as /sdapi/v1/samplers names it), "timestep_spacing", "steps", "cfg_scale"}.
nlohmann::json diffuse_presets();

}  // namespace diffuse::server
