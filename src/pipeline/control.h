#pragma once
// ControlNet units inside the denoiser: each step, the active units turn (latents, timestep, text,
// control image) into residuals for the UNet's skip connections and middle block, summed over the
// units. The samplers never see any of it: the generation's model function asks for the residuals.
#include <optional>
#include <vector>

#include <ATen/ATen.h>

#include "models/controlnet.h"
#include "pipeline/conditioning.h"
#include "pipeline/model.h"
#include "pipeline/request.h"

namespace diffuse::pipeline {

// "SD 1.x (text width 768)", "SD 2.x (...)", "SDXL (...)" or "an SD 1.x/2.x-style model (...)", for errors.
std::string base_model_kind(const models::UNetConfig& config);

// Throws InvalidParameter("control", "unit N: ...") when a ControlNet's residuals cannot fit the
// model's UNet: another base model (SD 1.x on SDXL), other widths or levels, or a hint encoder
// whose downsampling is not the VAE's.
void check_controlnet_fits(const models::ControlNetConfig& net, const StableDiffusionModel& model, size_t unit,
                           const std::string& source);

class ControlNetRunner {
 public:
  // Loads (or takes from the model's cache) every unit's net and checks it against the model.
  ControlNetRunner(StableDiffusionModel& model, const ResolvedRequest& request);
  bool empty() const { return nets_.empty(); }

  // The residuals for step `step` of the `steps` run, for the UNet batch `input` at `timestep`
  // with `conditioning` ([negative, prompt] when `guided`); nothing when no unit steers this step.
  // A unit outside its start/end is not evaluated: its residuals would be scaled by 0, and adding
  // 0 x r leaves every UNet feature exactly as it was (diffusers evaluates it anyway).
  std::optional<models::ControlResiduals> residuals(int step, int steps, const at::Tensor& input,
                                                    const at::Tensor& timestep, const Conditioning& conditioning,
                                                    bool guided);

 private:
  models::ControlResiduals run_unit(size_t unit, double scale, const at::Tensor& input, const at::Tensor& timestep,
                                    const Conditioning& conditioning, bool guided);

  const ResolvedControls& controls_;
  std::vector<models::ControlNetModel> nets_;
  std::vector<at::Tensor> images_;  // each unit's control image in the UNet's type
};

}  // namespace diffuse::pipeline
