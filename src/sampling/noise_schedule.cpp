#include "sampling/noise_schedule.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace diffuse::sampling {

Spacing resolve_spacing(const SchedulerConfig& config, const SamplerOptions& options,
                        Spacing class_default) {
  if (options.timestep_spacing) return *options.timestep_spacing;
  if (config.timestep_spacing) return *config.timestep_spacing;
  return class_default;
}

SigmaSchedule resolve_sigma_schedule(const SchedulerConfig& config, const SamplerOptions& options) {
  if (options.schedule != SigmaSchedule::Default) return options.schedule;
  return config.use_karras_sigmas ? SigmaSchedule::Karras : SigmaSchedule::Default;
}

namespace {

// diffusers' betas_for_alpha_bar (Glide cosine), computed in float64 then stored as float32.
at::Tensor cosine_betas(int count) {
  auto alpha_bar = [](double t) {
    constexpr double pi = 3.14159265358979323846;
    const double c = std::cos((t + 0.008) / 1.008 * pi / 2);
    return c * c;
  };
  std::vector<float> betas(count);
  for (int i = 0; i < count; ++i) {
    const double t1 = static_cast<double>(i) / count;
    const double t2 = static_cast<double>(i + 1) / count;
    betas[i] = static_cast<float>(std::min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999));
  }
  return at::tensor(betas, at::kFloat);
}

at::Tensor make_betas(const SchedulerConfig& config) {
  const int count = config.num_train_timesteps;
  if (!config.trained_betas.empty()) {
    std::vector<float> betas(config.trained_betas.begin(), config.trained_betas.end());
    return at::tensor(betas, at::kFloat);
  }
  if (config.beta_schedule == "linear") {
    return at::linspace(config.beta_start, config.beta_end, count, at::kFloat);
  }
  if (config.beta_schedule == "scaled_linear") {
    // Specific to latent diffusion: linear in sqrt(beta).
    return at::linspace(std::sqrt(config.beta_start), std::sqrt(config.beta_end), count, at::kFloat)
        .pow(2);
  }
  if (config.beta_schedule == "squaredcos_cap_v2") return cosine_betas(count);
  throw Error("unknown beta_schedule '" + config.beta_schedule +
              "'; valid schedules: linear, scaled_linear, squaredcos_cap_v2");
}

// Lin et al. 2023, Algorithm 1: shift and scale sqrt(alphas_cumprod) so the last one is exactly 0.
at::Tensor rescale_zero_terminal_snr(const at::Tensor& betas) {
  auto sqrt_cumprod = at::cumprod(1.0 - betas, 0).sqrt();
  const auto first = sqrt_cumprod[0].clone();
  const auto last = sqrt_cumprod[-1].clone();
  sqrt_cumprod -= last;
  sqrt_cumprod *= first / (first - last);
  const auto cumprod = sqrt_cumprod.pow(2);
  const auto alphas = at::cat({cumprod.slice(0, 0, 1), cumprod.slice(0, 1) / cumprod.slice(0, 0, -1)});
  return 1 - alphas;
}

}  // namespace

at::Tensor alphas_cumprod(const SchedulerConfig& config, bool sigma_safe) {
  auto betas = make_betas(config);
  if (betas.numel() != config.num_train_timesteps) {
    throw Error("trained_betas has " + std::to_string(betas.numel()) +
                " values, expected num_train_timesteps = " +
                std::to_string(config.num_train_timesteps));
  }
  if (config.rescale_betas_zero_snr) betas = rescale_zero_terminal_snr(betas);
  auto cumprod = at::cumprod(1.0 - betas, 0);
  if (config.rescale_betas_zero_snr && sigma_safe) cumprod[-1] = std::pow(2.0, -24);
  return cumprod;
}

std::vector<float> training_sigmas(const at::Tensor& alphas_cumprod) {
  const auto sigmas = ((1 - alphas_cumprod) / alphas_cumprod).pow(0.5).contiguous();
  const float* data = sigmas.data_ptr<float>();
  return std::vector<float>(data, data + sigmas.numel());
}

std::vector<float> log_of(const std::vector<float>& values) {
  std::vector<float> logs(values.size());
  std::transform(values.begin(), values.end(), logs.begin(), [](float v) { return std::log(v); });
  return logs;
}

std::vector<double> np_linspace(double start, double stop, int num) {
  if (num <= 0) return {};
  if (num == 1) return {start};
  const double step = (stop - start) / (num - 1);
  std::vector<double> values(num);
  for (int i = 0; i < num; ++i) values[i] = i * step + start;
  values.back() = stop;  // numpy pins the endpoint
  return values;
}

std::vector<double> np_arange(double start, double stop, double step) {
  const double length = std::ceil((stop - start) / step);
  std::vector<double> values;
  for (int64_t i = 0; i < static_cast<int64_t>(std::max(length, 0.0)); ++i) {
    values.push_back(start + i * step);
  }
  return values;
}

double np_round(double x) {
  // numpy rounds halves to even; nearbyint does too under the default rounding mode.
  return std::nearbyint(x);
}

std::vector<double> interp_on_index(const std::vector<double>& x, const std::vector<float>& table) {
  const auto last = static_cast<int64_t>(table.size()) - 1;
  std::vector<double> values;
  values.reserve(x.size());
  for (const double xi : x) {
    if (xi <= 0) {
      values.push_back(table.front());
    } else if (xi >= static_cast<double>(last)) {
      values.push_back(table.back());
    } else {
      const auto j = static_cast<int64_t>(std::floor(xi));
      const double slope = static_cast<double>(table[j + 1]) - static_cast<double>(table[j]);
      values.push_back(slope * (xi - static_cast<double>(j)) + static_cast<double>(table[j]));
    }
  }
  return values;
}

std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int count) {
  constexpr double rho = 7.0;
  const double min_inv_rho = std::pow(sigma_min, 1 / rho);
  const double max_inv_rho = std::pow(sigma_max, 1 / rho);
  std::vector<double> sigmas;
  for (const double ramp : np_linspace(0, 1, count)) {
    sigmas.push_back(std::pow(max_inv_rho + ramp * (min_inv_rho - max_inv_rho), rho));
  }
  return sigmas;
}

double sigma_to_t(double sigma, const std::vector<float>& log_sigmas) {
  const double log_sigma = std::log(std::max(sigma, 1e-10));
  // The last training step whose log-sigma is at or below log_sigma (0 when none), leaving room
  // for the step above it.
  int64_t low = 0;
  for (size_t i = 0; i < log_sigmas.size(); ++i) {
    if (log_sigma - static_cast<double>(log_sigmas[i]) >= 0) low = static_cast<int64_t>(i);
  }
  low = std::min<int64_t>(low, static_cast<int64_t>(log_sigmas.size()) - 2);
  const int64_t high = low + 1;
  const double low_log = log_sigmas[low];
  const double high_log = log_sigmas[high];
  const double w = std::clamp((low_log - log_sigma) / (low_log - high_log), 0.0, 1.0);
  return (1 - w) * static_cast<double>(low) + w * static_cast<double>(high);
}

double t_to_sigma(double t, const std::vector<float>& log_sigmas) {
  const double last = static_cast<double>(log_sigmas.size() - 1);
  const double clamped = std::clamp(t, 0.0, last);
  const auto low = static_cast<size_t>(std::floor(clamped));
  const auto high = static_cast<size_t>(std::ceil(clamped));
  const double w = clamped - static_cast<double>(low);
  return std::exp((1 - w) * static_cast<double>(log_sigmas[low]) + w * static_cast<double>(log_sigmas[high]));
}

RespacedSigmas respace_sigmas(SigmaSchedule schedule, double sigma_min, double sigma_max, int count,
                              const std::vector<float>& log_sigmas) {
  RespacedSigmas result;
  switch (schedule) {
    case SigmaSchedule::Default:
      throw Error("respace_sigmas: the default schedule is not a respacing");
    case SigmaSchedule::Karras:
      result.sigmas = karras_sigmas(sigma_min, sigma_max, count);
      break;
    case SigmaSchedule::Exponential:
      for (const double log_sigma : np_linspace(std::log(sigma_max), std::log(sigma_min), count)) {
        result.sigmas.push_back(std::exp(log_sigma));
      }
      break;
    case SigmaSchedule::SgmUniform: {
      // Uniform in timestep from sigma_max's down towards sigma_min's; the last point is dropped,
      // as the schedule then goes to 0 (SGM's "uniform" discretisation).
      const auto points = np_linspace(sigma_to_t(sigma_max, log_sigmas), sigma_to_t(sigma_min, log_sigmas), count + 1);
      for (int i = 0; i < count; ++i) {
        result.timesteps.push_back(points[i]);
        result.sigmas.push_back(t_to_sigma(points[i], log_sigmas));
      }
      return result;
    }
  }
  for (const double sigma : result.sigmas) result.timesteps.push_back(sigma_to_t(sigma, log_sigmas));
  return result;
}

std::vector<double> spaced_timesteps(int num_train_timesteps, Spacing spacing, int steps_offset,
                                     int steps, bool round_linspace) {
  std::vector<double> timesteps;
  switch (spacing) {
    case Spacing::Linspace:
      timesteps = np_linspace(0, num_train_timesteps - 1, steps);
      if (round_linspace) {
        for (auto& t : timesteps) t = np_round(t);
      }
      std::reverse(timesteps.begin(), timesteps.end());
      break;
    case Spacing::Leading: {
      const int ratio = num_train_timesteps / steps;
      for (int i = steps - 1; i >= 0; --i) timesteps.push_back(double(i) * ratio + steps_offset);
      break;
    }
    case Spacing::Trailing: {
      const double ratio = static_cast<double>(num_train_timesteps) / steps;
      for (const double t : np_arange(num_train_timesteps, 0, -ratio)) {
        timesteps.push_back(np_round(t) - 1);
      }
      break;
    }
  }
  return timesteps;
}

Schedule distillation_schedule(const std::string& sampler, const SchedulerConfig& config, int steps,
                               int original_steps) {
  if (steps > original_steps) {
    throw Error("sampler '" + sampler + "' takes at most " + std::to_string(original_steps) + " steps, got " +
                std::to_string(steps));
  }
  const int skip = config.num_train_timesteps / original_steps;
  // The indices: np.linspace(0, original_steps, steps, endpoint=False), floored.
  const double step = static_cast<double>(original_steps) / steps;
  Schedule schedule;
  for (int i = 0; i < steps; ++i) {
    const auto index = static_cast<int>(std::floor(static_cast<double>(i) * step));
    schedule.timesteps.push_back(static_cast<double>((original_steps - index) * skip - 1));
  }
  schedule.init_noise_sigma = 1.0;
  return schedule;
}

namespace {

double to_float32(double value) { return static_cast<double>(static_cast<float>(value)); }

std::vector<double> with_final_zero_as_float32(const std::vector<double>& sigmas) {
  std::vector<double> result;
  for (const double s : sigmas) result.push_back(to_float32(s));
  result.push_back(0.0);
  return result;
}

}  // namespace

Schedule discrete_sigma_schedule(const SchedulerConfig& config, Spacing spacing,
                                 SigmaSchedule sigma_schedule, int steps) {
  const auto train_sigmas = training_sigmas(alphas_cumprod(config, /*sigma_safe=*/true));
  auto timesteps =
      spaced_timesteps(config.num_train_timesteps, spacing, config.steps_offset, steps, false);
  auto sigmas = interp_on_index(timesteps, train_sigmas);
  if (sigma_schedule != SigmaSchedule::Default) {
    auto respaced = respace_sigmas(sigma_schedule, sigmas.back(), sigmas.front(), steps, log_of(train_sigmas));
    sigmas = std::move(respaced.sigmas);
    timesteps = std::move(respaced.timesteps);
  }
  Schedule schedule;
  // The model sees float32 timesteps (diffusers' Euler stores them so; the UNet embeds in float32).
  for (const double t : timesteps) schedule.timesteps.push_back(to_float32(t));
  schedule.sigmas = with_final_zero_as_float32(sigmas);

  // init_noise_sigma: float32 arithmetic on the largest sigma. Leading spacing never reaches the
  // top of the schedule, so diffusers starts from unit-variance data plus that noise.
  const auto max_sigma =
      static_cast<float>(*std::max_element(schedule.sigmas.begin(), schedule.sigmas.end()));
  schedule.init_noise_sigma =
      spacing == Spacing::Leading ? std::sqrt(max_sigma * max_sigma + 1.0f) : max_sigma;
  return schedule;
}

Schedule dpm_solver_schedule(const SchedulerConfig& config, Spacing spacing,
                             SigmaSchedule sigma_schedule, int steps, bool final_sigma_min) {
  const int train_steps = config.num_train_timesteps;
  // lambda_min_clipped defaults to -inf, so no timestep is clipped off the top.
  const int last_timestep = train_steps;
  std::vector<double> timesteps;
  if (spacing == Spacing::Trailing) {
    const double ratio = static_cast<double>(train_steps) / steps;
    for (const double t : np_arange(last_timestep, 0, -ratio)) timesteps.push_back(np_round(t) - 1);
  } else {
    std::vector<double> points;
    if (spacing == Spacing::Linspace) {
      points = np_linspace(0, last_timestep - 1, steps + 1);
      for (auto& t : points) t = np_round(t);
    } else {
      const int ratio = last_timestep / (steps + 1);
      for (int i = 0; i <= steps; ++i) points.push_back(double(i) * ratio + config.steps_offset);
    }
    // Largest first, dropping the smallest point.
    for (int i = steps; i >= 1; --i) timesteps.push_back(points[i]);
  }

  const auto train_sigmas = training_sigmas(alphas_cumprod(config, /*sigma_safe=*/true));
  std::vector<double> sigmas;
  if (sigma_schedule != SigmaSchedule::Default) {
    auto respaced = respace_sigmas(sigma_schedule, train_sigmas.front(), train_sigmas.back(), steps,
                                   log_of(train_sigmas));
    sigmas = std::move(respaced.sigmas);
    timesteps.clear();
    for (const double t : respaced.timesteps) timesteps.push_back(np_round(t));
  } else {
    sigmas = interp_on_index(timesteps, train_sigmas);
  }
  Schedule schedule;
  schedule.timesteps = timesteps;
  schedule.sigmas = with_final_zero_as_float32(sigmas);
  if (final_sigma_min) {
    // diffusers computes sqrt((1 - a0) / a0) in float32; a respaced schedule ends at that already.
    schedule.sigmas.back() = sigma_schedule != SigmaSchedule::Default ? schedule.sigmas[steps - 1]
                                                                       : static_cast<double>(train_sigmas.front());
  }
  schedule.init_noise_sigma = 1.0;
  return schedule;
}

}  // namespace diffuse::sampling
