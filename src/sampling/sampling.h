// Public face of the sampling layer: noise schedules and samplers that reproduce diffusers 0.27.2
// schedulers numerically. Samplers see only a ModelFn; they know nothing of the network behind it.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

namespace diffuse::sampling {

enum class Prediction { Epsilon, VPrediction };
enum class Spacing { Leading, Trailing, Linspace };
// How the sampler's sigmas are placed between the trained schedule's ends. Default keeps the spaced
// training timesteps (or the config's use_karras_sigmas); the others respace the sigmas themselves.
enum class SigmaSchedule { Default, Karras, Exponential, SgmUniform };

// The names people and configs use (diffusers' and AUTOMATIC1111's). Parsing throws
// diffuse::InvalidParameter naming `prediction`, `timestep_spacing` or `schedule` and the valid names.
Prediction parse_prediction(const std::string& name);
Spacing parse_spacing(const std::string& name);
SigmaSchedule parse_sigma_schedule(const std::string& name);
std::string name_of(Prediction prediction);
std::string name_of(Spacing spacing);
std::string name_of(SigmaSchedule schedule);

// The fields of a diffusers scheduler_config.json that change what a sampler computes.
// Member defaults describe SD 1.x. from_json() follows diffusers instead: a field the file does not
// name takes the diffusers default, and for timestep_spacing, clip_sample and set_alpha_to_one that
// default belongs to the scheduler class (DDIM: leading / true / true; Euler, DPM++, LMS, Heun:
// linspace / false), which is why they are optional. This matters: SD 1.5's own config names no
// timestep_spacing, so diffusers' Euler runs it with linspace and DDIM with leading.
struct SchedulerConfig {
  int num_train_timesteps = 1000;
  double beta_start = 0.00085;
  double beta_end = 0.012;
  std::string beta_schedule = "scaled_linear";  // linear | scaled_linear | squaredcos_cap_v2
  std::vector<double> trained_betas;            // when not empty, replaces beta_start/end/schedule
  Prediction prediction = Prediction::Epsilon;
  std::optional<Spacing> timestep_spacing = Spacing::Leading;
  int steps_offset = 1;
  std::optional<bool> set_alpha_to_one = false;  // ddim: final alpha is 1 rather than alphas_cumprod[0]
  std::optional<bool> clip_sample = false;       // ddim, heun: clamp predicted x0 to ±clip_sample_range
  double clip_sample_range = 1.0;
  bool rescale_betas_zero_snr = false;
  bool use_karras_sigmas = false;  // what schedule "default" means for samplers that offer karras

  // Unknown fields are ignored; values we cannot honour (thresholding, prediction_type "sample",
  // an unknown beta_schedule) throw diffuse::Error naming the field.
  static SchedulerConfig from_json(const nlohmann::json& json);
  // The scheduler_config.json fields for this config (diffusers' names); from_json reads it back to
  // this config. Unset optional fields are left out, for the scheduler class to decide.
  nlohmann::json to_json() const;
};

// The network's raw output (epsilon or v per config.prediction) for `model_input` at `timestep`, with
// classifier-free guidance already applied by the caller. `model_input` is exactly what diffusers
// hands the UNet (after scheduler.scale_model_input); `timestep` is the value diffusers passes as the
// UNet's timestep (fractional for karras sigmas with the Euler family).
using ModelFn = std::function<at::Tensor(const at::Tensor& model_input, double timestep)>;

class Sampler;  // sampling/sampler.h: the interface, internal to this layer

// One sampler of the registry (sampler_names()), chosen by its name once -- an unknown name is
// refused right there, naming the valid ones -- and from then on carried as the entry itself.
class SamplerChoice {
 public:
  SamplerChoice();  // euler
  // Implicit: every front end chooses a sampler by its name.
  SamplerChoice(const std::string& name);  // NOLINT(google-explicit-constructor)
  SamplerChoice(const char* name) : SamplerChoice(std::string(name)) {}  // NOLINT(google-explicit-constructor)
  const Sampler& operator*() const { return *entry_; }
  const Sampler* operator->() const { return entry_; }
  std::string name() const;
  bool operator==(const SamplerChoice& other) const { return entry_ == other.entry_; }
  bool operator!=(const SamplerChoice& other) const { return entry_ != other.entry_; }

 private:
  const Sampler* entry_;
};

struct SamplerOptions {
  SamplerChoice sampler;
  SigmaSchedule schedule = SigmaSchedule::Default;
  std::optional<Spacing> timestep_spacing;  // overrides the config's
  std::optional<Prediction> prediction;     // overrides the config's
  double eta = 0;                           // samplers with uses_eta() only
  int steps = 20;
};

struct StepInfo {
  int step;                   // 0-based, one per step run (heun's two evaluations count once)
  int total;                  // steps run: options.steps, less the steps an img2img run skips
  const at::Tensor& latents;  // x after this step, in the sampler's own space (as diffusers holds it)
  const at::Tensor& denoised; // the predicted x0 this step used
};
using StepCallback = std::function<void(const StepInfo&)>;
// Given requested step `step` (0-based) and the latents it produced, the latents to go on with.
using StepHook = std::function<at::Tensor(int step, const at::Tensor& latents)>;

// What diffusers' set_timesteps produces: `timesteps` has one entry per model evaluation (heun has
// 2*steps-1) and holds the values handed to the model; `sigmas` are diffusers' `scheduler.sigmas`
// (k-diffusion noise levels, ending in 0), empty for ddim, which steps on alphas_cumprod instead.
struct Schedule {
  std::vector<double> timesteps;
  std::vector<double> sigmas;
  double init_noise_sigma = 1.0;  // the sampler's starting latents are noise * init_noise_sigma
};

// The checks that need no model: an unknown sampler, steps < 1, eta < 0, eta with a sampler that
// ignores it, a respacing schedule with a sampler that steps on training timesteps ->
// diffuse::InvalidParameter naming the option (sampler, steps, eta, schedule) and the valid values.
void validate(const SamplerOptions& options);
// What the model's training schedule adds: steps below num_train_timesteps (InvalidParameter `steps`).
void validate_for(const SamplerOptions& options, const SchedulerConfig& config);

// make_schedule() and sample() take options already validated (validate(), validate_for()): a
// request is checked once, where it comes in, not again on every call.
Schedule make_schedule(const SchedulerConfig& config, const SamplerOptions& options);

// `noise` is unit Gaussian (torch.randn from `generator`); the sampler scales it by its
// init_noise_sigma. Further random draws (euler_a, ddim with eta > 0, dpm++2m_sde) use `generator` in
// the order diffusers makes them. Returns the final latents exactly as the diffusers pipeline hands
// them to the VAE (before 1/scaling_factor).
at::Tensor sample(const ModelFn& model, const SchedulerConfig& config, const SamplerOptions& options,
                  const at::Tensor& noise, at::Generator& generator, const StepCallback& callback = {});

// img2img's start, as diffusers' get_timesteps: a run of `steps` at `strength` (0, 1] runs the last
// int(steps * strength) of them, so it begins at requested step steps - int(steps * strength).
// Throws InvalidParameter naming `strength` when that leaves no step to run.
int first_step_for_strength(int steps, double strength);

// `original` (clean latents) noised with `noise` to the level the latents have when requested step
// `step` begins, in the sampler's own frame, as the diffusers scheduler's add_noise does (float32
// throughout). `step` == options.steps gives `original` itself: the level after the last step.
at::Tensor add_noise(const SchedulerConfig& config, const SamplerOptions& options, const at::Tensor& original,
                     const at::Tensor& noise, int step);

// sample() from part-way down the schedule: `start` is the latents at the level of requested step
// `first_step` (add_noise() of an image's latents; at first_step 0 also noise * init_noise_sigma),
// as diffusers' img2img and inpainting pipelines begin. `after_step`, when set, replaces the latents
// after each step (inpainting with an ordinary UNet blends the noised image back outside the mask).
at::Tensor sample_from(const ModelFn& model, const SchedulerConfig& config, const SamplerOptions& options,
                       int first_step, const at::Tensor& start, at::Generator& generator,
                       const StepCallback& callback = {}, const StepHook& after_step = {});

// Every sampler: name and a one-line description, in the order the CLI should list them.
std::vector<std::pair<std::string, std::string>> sampler_names();
// How AUTOMATIC1111's web UI names the sampler with this schedule ("DPM++ 2M Karras"), as its PNGs'
// parameters text says it and the tools that read those texts expect it.
std::string display_name(const SamplerOptions& options);
// AUTOMATIC1111's "scheduler" (Automatic, Karras, Exponential, SGM Uniform, Uniform; any case; our
// own names too; empty: Automatic). InvalidParameter `scheduler` otherwise.
SigmaSchedule parse_a1111_schedule(const std::string& name);
// Every --schedule value with a one-line description, likewise.
std::vector<std::pair<std::string, std::string>> schedule_names();

}  // namespace diffuse::sampling
