#include "random_model.h"

#include <torch/torch.h>

#include "io/ldm_export.h"
#include "io/safetensors_writer.h"
#include "models/clip_text_encoder.h"
#include "models/unet.h"
#include "models/vae.h"
#include "util/error.h"

namespace diffuse::bench {

namespace {

// The module's parameters in fp16. Built with fp16 as the default type, so the largest UNet
// never exists in fp32 (3.4 GB for SD 1.5) just to be rounded.
template <typename Module, typename Config>
TensorMap random_fp16_weights(const Config& config) {
  const auto previous = c10::get_default_dtype();
  c10::set_default_dtype(caffe2::TypeMeta::Make<c10::Half>());
  TensorMap weights;
  try {
    Module module(config);
    for (const auto& item : module->named_parameters(true)) weights.emplace(item.key(), item.value().detach());
  } catch (...) {
    c10::set_default_dtype(previous);
    throw;
  }
  c10::set_default_dtype(previous);
  return weights;
}

int64_t count(const TensorMap& weights) {
  int64_t total = 0;
  for (const auto& [name, tensor] : weights) total += tensor.numel();
  return total;
}

}  // namespace

std::vector<std::string> architecture_names() { return {"sd15"}; }

Architecture find_architecture(const std::string& name) {
  // The configs' defaults are SD 1.5 (config.h).
  if (name == "sd15") return Architecture{name, {}, {}, {}};
  std::string known;
  for (const auto& candidate : architecture_names()) known += (known.empty() ? "" : ", ") + candidate;
  throw Error("--arch: unknown architecture '" + name + "'; known: " + known);
}

int64_t write_random_checkpoint(const Architecture& architecture, const std::filesystem::path& path, uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  const auto unet = random_fp16_weights<models::UNet2DConditionModel>(architecture.unet);
  const auto vae = random_fp16_weights<models::AutoencoderKL>(architecture.vae);
  const auto text = random_fp16_weights<models::ClipTextModel>(architecture.text_encoder);
  if (!path.parent_path().empty()) std::filesystem::create_directories(path.parent_path());
  io::write_safetensors(path, io::export_ldm_checkpoint(unet, vae, text),
                        {{"format", "pt"}, {"diffuse_bench", architecture.name + " random weights"}});
  return count(unet) + count(vae) + count(text);
}

}  // namespace diffuse::bench
