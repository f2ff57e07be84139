#include "pipeline/control.h"

#include <cmath>

#include "io/controlnet_files.h"
#include "io/model_files.h"
#include "models/conv.h"
#include "models/kernel_options.h"
#include "models/parameter_init.h"
#include "models/weights.h"
#include "util/error.h"

namespace diffuse::pipeline {

namespace fs = std::filesystem;

namespace {

// sd-webui-controlnet's soft injection ("My prompt is more important" and "ControlNet is more
// important"): residual k of n weighted 0.825^(n-1-k), the middle block's (the last) by 1.
double soft_weight(size_t k, size_t n) { return std::pow(0.825, static_cast<double>(n - 1 - k)); }

// The conditional half of a [negative, prompt] batch.
at::Tensor conditional_half(const at::Tensor& batch) { return batch.size(0) == 2 ? batch.narrow(0, 1, 1) : batch; }

// Zeros for the unconditional half, `residual` for the conditional one.
at::Tensor with_zero_unconditional(const at::Tensor& residual) {
  return at::cat({at::zeros_like(residual), residual});
}

void add_into(models::ControlResiduals& sum, const models::ControlResiduals& more) {
  if (sum.down.empty()) {
    sum = more;
    return;
  }
  for (size_t i = 0; i < sum.down.size(); ++i) sum.down[i] = sum.down[i] + more.down[i];
  sum.mid = sum.mid + more.mid;
}

}  // namespace

std::string base_model_kind(const models::UNetConfig& config) {
  const std::string width = "text width " + std::to_string(config.cross_attention_dim);
  if (config.text_time()) return "SDXL (" + width + ", size conditioning)";
  if (config.cross_attention_dim == 768) return "SD 1.x (" + width + ")";
  if (config.cross_attention_dim == 1024) return "SD 2.x (" + width + ")";
  return "an SD 1.x/2.x-style model (" + width + ")";
}

void check_controlnet_fits(const models::ControlNetConfig& net, const StableDiffusionModel& model, size_t unit,
                           const std::string& source) {
  const auto& mine = net.unet;
  const auto& base = model.unet->config;
  const auto fail = [&](const std::string& why) {
    return InvalidParameter("control", "unit " + std::to_string(unit + 1) + ": " + source + " " + why);
  };
  if (mine.text_time() != base.text_time() || mine.cross_attention_dim != base.cross_attention_dim) {
    throw fail("is a ControlNet for " + base_model_kind(mine) + "; " + model.name + " is " + base_model_kind(base));
  }
  if (mine.block_out_channels != base.block_out_channels || mine.layers_per_block != base.layers_per_block ||
      mine.in_channels != model.latent_channels()) {
    throw fail("was made from another UNet than " + model.name + "'s (its widths, levels or latent channels differ)");
  }
  if (mine.text_time() && mine.projection_class_embeddings_input_dim != base.projection_class_embeddings_input_dim) {
    throw fail("takes other size conditioning than " + model.name + " (add_embedding inputs " +
               std::to_string(mine.projection_class_embeddings_input_dim) + " vs " +
               std::to_string(base.projection_class_embeddings_input_dim) + ")");
  }
  if (net.hint_downscale_factor() != model.vae_scale_factor()) {
    throw fail("reads control images at " + std::to_string(net.hint_downscale_factor()) + "x the latent size; " +
               model.name + "'s latents are 1/" + std::to_string(model.vae_scale_factor()) + " of the image");
  }
}

models::ControlNetModel StableDiffusionModel::controlnet(const fs::path& path) {
  const auto found = controlnets_.find(path);
  if (found != controlnets_.end()) return found->second;
  const auto files = io::load_controlnet_files(path, io::loading_dtype(path, options_.dtype));
  const auto config = files.config.is_null() ? models::ControlNetConfig::infer(files.tensors, &unet->config)
                                             : models::ControlNetConfig::from_json(files.config);
  // Parameters are made in the UNet's type directly, as the UNet's are.
  auto net = models::make_for_loading<models::ControlNetModel>(config, options_.dtype);
  models::load_weights(*net, files.tensors, {files.source, files.file_names, {}});
  net->eval();
  if (models::kernel_options().packed_convolutions) models::pack_convolutions(*net);
  if (models::kernel_options().packed_linear_layers) models::pack_linear_layers(*net);
  controlnets_.emplace(path, net);
  return net;
}

ControlNetRunner::ControlNetRunner(StableDiffusionModel& model, const ResolvedRequest& request)
    : controls_(request.controls) {
  for (size_t i = 0; i < controls_.units.size(); ++i) {
    const auto& unit = controls_.units[i];
    auto net = model.controlnet(unit.path);
    check_controlnet_fits(net->config, model, i, unit.path.string());
    nets_.push_back(net);
    images_.push_back(unit.image.to(model.unet_dtype()));
  }
}

models::ControlResiduals ControlNetRunner::run_unit(size_t unit, double scale, const at::Tensor& input,
                                                    const at::Tensor& timestep, const Conditioning& conditioning,
                                                    bool guided) {
  const bool soft = controls_.mode != ControlMode::Balanced;
  // Guess mode and "ControlNet is more important" steer the conditional half only: the net runs on
  // it alone and the unconditional half gets zeros.
  const bool conditional_only = guided && (controls_.guess_mode || controls_.mode == ControlMode::Control);
  at::Tensor sample = input, context = conditioning.context;
  std::optional<models::AddedConditioning> added = conditioning.added;
  if (conditional_only) {
    sample = conditional_half(input);
    context = conditional_half(context);
    if (added) added = models::AddedConditioning{conditional_half(added->text_embeds), conditional_half(added->time_ids)};
  }
  // Soft weights multiply once, by weight x keep x 0.825^(n-1-k), as sd-webui-controlnet does.
  const models::ControlStrength strength{soft ? 1.0 : scale, controls_.guess_mode};
  auto residuals = nets_[unit]->forward(sample, timestep, context, images_[unit], strength, added ? &*added : nullptr);
  const size_t n = residuals.down.size() + 1;
  if (soft) {
    for (size_t k = 0; k < residuals.down.size(); ++k) residuals.down[k] = residuals.down[k] * (scale * soft_weight(k, n));
    residuals.mid = residuals.mid * (scale * soft_weight(n - 1, n));
  }
  if (conditional_only) {
    for (auto& residual : residuals.down) residual = with_zero_unconditional(residual);
    residuals.mid = with_zero_unconditional(residuals.mid);
  }
  return residuals;
}

std::optional<models::ControlResiduals> ControlNetRunner::residuals(int step, int steps, const at::Tensor& input,
                                                                    const at::Tensor& timestep,
                                                                    const Conditioning& conditioning, bool guided) {
  models::ControlResiduals sum;
  for (size_t i = 0; i < nets_.size(); ++i) {
    const auto& unit = controls_.units[i];
    const double scale = unit.weight * unit.keep(step, steps);
    if (scale == 0) continue;
    add_into(sum, run_unit(i, scale, input, timestep, conditioning, guided));
  }
  if (sum.down.empty()) return std::nullopt;
  return sum;
}

}  // namespace diffuse::pipeline
