// Noise schedules as diffusers 0.27.2 builds them: betas -> alphas_cumprod -> sigmas, the three
// timestep spacings, karras sigmas and the sigma -> timestep log-interpolation. Numbers follow
// diffusers' dtypes step by step (float32 torch for the training schedule, float64 numpy for the
// spacing and interpolation, float32 for the final sigmas) so timesteps and sigmas agree to rounding.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "sampling/sampling.h"

namespace diffuse::sampling {

// The schedule in force: the option, or under "default" the config's use_karras_sigmas.
SigmaSchedule resolve_sigma_schedule(const SchedulerConfig& config, const SamplerOptions& options);

// The spacing in force: the sampler option, else the config, else the scheduler class's default.
Spacing resolve_spacing(const SchedulerConfig& config, const SamplerOptions& options,
                        Spacing class_default);

// float32 [num_train_timesteps], computed with the same libtorch ops diffusers uses.
// `sigma_safe`: with rescale_betas_zero_snr the last alpha is 0 (infinite sigma); the sigma-based
// schedulers then set it to 2^-24 as diffusers does. DDIM keeps the exact 0.
at::Tensor alphas_cumprod(const SchedulerConfig& config, bool sigma_safe);

// ((1 - a) / a)^0.5 per training timestep (float32, increasing with t) and its float32 log.
std::vector<float> training_sigmas(const at::Tensor& alphas_cumprod);
std::vector<float> log_of(const std::vector<float>& values);

// numpy's linspace / arange (float64) and round (half to even).
std::vector<double> np_linspace(double start, double stop, int num);
std::vector<double> np_arange(double start, double stop, double step);
double np_round(double x);

// np.interp(x, arange(len(table)), table).
std::vector<double> interp_on_index(const std::vector<double>& x, const std::vector<float>& table);

// Karras et al. (2022) sigmas, rho = 7, from sigma_max down to sigma_min in `count` values.
std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int count);

// diffusers' _sigma_to_t: the fractional timestep whose log-sigma interpolates to log(sigma).
double sigma_to_t(double sigma, const std::vector<float>& log_sigmas);
// k-diffusion's t_to_sigma, its inverse: log-sigma interpolated at a fractional timestep.
double t_to_sigma(double t, const std::vector<float>& log_sigmas);

// `count` sigmas from sigma_max down to sigma_min placed by a non-default schedule, with the
// fractional timestep of each: karras (rho 7), exponential (uniform in log sigma, as k-diffusion's
// get_sigmas_exponential and diffusers' use_exponential_sigmas), sgm_uniform (uniform in timestep
// over steps+1 points without the last, as SGM's and ComfyUI's sgm_uniform).
struct RespacedSigmas {
  std::vector<double> sigmas;
  std::vector<double> timesteps;
};
RespacedSigmas respace_sigmas(SigmaSchedule schedule, double sigma_min, double sigma_max, int count,
                              const std::vector<float>& log_sigmas);

// Evenly spaced training timesteps, largest first, as DDIM and the Euler family space them.
// `round_linspace`: DDIM rounds linspace spacing to integers; the Euler family keeps it fractional.
std::vector<double> spaced_timesteps(int num_train_timesteps, Spacing spacing, int steps_offset,
                                     int steps, bool round_linspace);

// LCMScheduler's and TCDScheduler's schedule: `steps` timesteps of the distillation schedule k-1, 2k-1, ...
// (k = num_train_timesteps / original_steps), largest first, at evenly spaced indices; init_noise_sigma 1.
// original_steps is diffusers' default, which the released LCM and TCD models were distilled with. Throws
// diffuse::Error naming `sampler` for more steps than original_steps.
Schedule distillation_schedule(const std::string& sampler, const SchedulerConfig& config, int steps,
                               int original_steps = 50);

// The Euler family (euler, euler_a, lms, heun before its doubling): sigmas interpolated at the
// spaced timesteps; other schedules respace between those ends, timesteps from sigma_to_t.
Schedule discrete_sigma_schedule(const SchedulerConfig& config, Spacing spacing,
                                 SigmaSchedule sigma_schedule, int steps);

// The DPM-Solver family: spacing over steps+1 points without the last; other schedules span the
// whole training range and their timesteps are rounded. init_noise_sigma 1. The final sigma is 0,
// or with `final_sigma_min` (UniPC, DEIS) the smallest trained sigma (the last respaced one).
Schedule dpm_solver_schedule(const SchedulerConfig& config, Spacing spacing,
                             SigmaSchedule sigma_schedule, int steps, bool final_sigma_min = false);

}  // namespace diffuse::sampling
