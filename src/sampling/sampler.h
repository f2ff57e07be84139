// The interface every sampler implements, and the registry that lists them. Internal to the
// sampling layer: the pipeline uses sampling.h. Adding a sampler means one file in samplers/ with
// its factory, plus one line in sampling.cpp's registry.
#pragma once
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

  // A unit Gaussian draw shaped like `like`, from the run's generator on the CPU (as diffusers'
  // randn_tensor does with a CPU generator), then moved to `like`'s device.
  at::Tensor draw_noise(const at::Tensor& like) const;
  void report(int step, const at::Tensor& latents, const at::Tensor& denoised) const;
};

class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual std::string name() const = 0;
  // AUTOMATIC1111's name for it ("DPM++ 2M"), which its PNG parameters text carries.
  virtual std::string display_name() const = 0;
  virtual std::string description() const = 0;
  virtual bool uses_eta() const { return false; }
  // Whether --schedule may respace the sigmas (karras, exponential, sgm_uniform). Samplers that
  // step on integer training timesteps (ddim, plms, lcm) cannot.
  virtual bool offers_schedules() const { return true; }
  // diffusers' set_timesteps for the scheduler class this sampler reproduces.
  virtual Schedule make_schedule(const SchedulerConfig& config, const SamplerOptions& options) const = 0;
  // Runs every step from `x` (noise already scaled by init_noise_sigma); returns the final latents.
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

}  // namespace diffuse::sampling
