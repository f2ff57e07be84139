// The interface every sampler implements, and the registry that lists them. Internal to the
// sampling layer: the pipeline uses sampling.h. Adding a sampler means one file in samplers/ with
// its factory, plus one line in sampling.cpp's registry.
#pragma once
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "sampling/sampling.h"

namespace diffuse::sampling {

// Everything one run needs besides the latents it starts from.
struct RunContext {
  const ModelFn& model;
  const SchedulerConfig& config;
  const SamplerOptions& options;
  const Schedule& schedule;
  at::Generator& generator;
  const StepCallback& callback;
  // The requested step the run begins at (img2img starts part-way down the schedule), and what
  // replaces the latents after each step (inpainting's blend with the noised image); see sample_from.
  int first_step = 0;
  const StepHook& after_step;

  // A unit Gaussian draw shaped like `like`, from the run's generator on the CPU (as diffusers'
  // randn_tensor does with a CPU generator), then moved to `like`'s device.
  at::Tensor draw_noise(const at::Tensor& like) const;
  // Ends requested step `step`: applies after_step, reports, and returns the latents to go on with.
  at::Tensor finish_step(int step, at::Tensor latents, const at::Tensor& denoised) const;
};

// What the latents a sampler holds mean, which decides how an image's latents are noised to a
// step's level (diffusers' add_noise of the scheduler class).
enum class LatentFrame {
  KDiffusion,          // x0 + sigma * noise (the Euler family, LMS, Heun, DPM2, the k-diffusion SDE samplers)
  VariancePreserving,  // alpha * x0 + sigma_vp * noise from the k-sigma (DPM-Solver, UniPC, DEIS)
  TrainingTimestep,    // sqrt(alphas_cumprod[t]) x0 + sqrt(1 - alphas_cumprod[t]) noise (DDIM, PLMS, LCM)
};

class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual std::string name() const = 0;
  // AUTOMATIC1111's name for it ("DPM++ 2M"), which its PNG parameters text carries.
  virtual std::string display_name() const = 0;
  virtual std::string description() const = 0;
  virtual bool uses_eta() const { return false; }
  // The largest eta the sampler's formula allows (TCD's gamma is a fraction).
  virtual double max_eta() const { return std::numeric_limits<double>::infinity(); }
  // Whether --schedule may respace the sigmas (karras, exponential, sgm_uniform). Samplers that
  // step on integer training timesteps (ddim, plms, lcm) cannot.
  virtual bool offers_schedules() const { return true; }
  virtual LatentFrame frame() const { return LatentFrame::KDiffusion; }
  // diffusers' scheduler.order: schedule entries per requested step (2 for Heun and DPM2, whose
  // schedules list each inner point twice). Step s begins at schedule entry s * order().
  virtual int order() const { return 1; }
  // diffusers' set_timesteps for the scheduler class this sampler reproduces.
  virtual Schedule make_schedule(const SchedulerConfig& config, const SamplerOptions& options) const = 0;
  // Runs steps context.first_step.. from `x` (noise scaled by init_noise_sigma, or an image's
  // latents noised to the first step's level); returns the final latents.
  virtual at::Tensor run(const RunContext& context, at::Tensor x) const = 0;
};

const std::vector<std::unique_ptr<Sampler>>& all_samplers();
const Sampler& find_sampler(const std::string& name);  // throws diffuse::Error listing valid names

std::unique_ptr<Sampler> make_euler_sampler();
std::unique_ptr<Sampler> make_euler_ancestral_sampler();
std::unique_ptr<Sampler> make_heun_sampler();
std::unique_ptr<Sampler> make_lms_sampler();
std::unique_ptr<Sampler> make_ddim_sampler();
std::unique_ptr<Sampler> make_dpmpp_2m_sampler();
std::unique_ptr<Sampler> make_dpmpp_2m_sde_sampler();
std::unique_ptr<Sampler> make_dpm2_sampler();
std::unique_ptr<Sampler> make_dpm2_ancestral_sampler();
std::unique_ptr<Sampler> make_plms_sampler();
std::unique_ptr<Sampler> make_dpmpp_2s_sampler();
std::unique_ptr<Sampler> make_dpmpp_2s_ancestral_sampler();
std::unique_ptr<Sampler> make_dpmpp_sde_sampler();
std::unique_ptr<Sampler> make_unipc_sampler();
std::unique_ptr<Sampler> make_deis_sampler();
std::unique_ptr<Sampler> make_lcm_sampler();
std::unique_ptr<Sampler> make_tcd_sampler();

}  // namespace diffuse::sampling
