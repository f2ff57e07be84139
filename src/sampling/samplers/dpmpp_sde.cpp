// DPM-Solver++ SDE: k-diffusion's sample_dpmpp_sde (eta 1, r = 1/2), A1111's "DPM++ SDE". No
// diffusers twin. Each step takes an ancestral half step to the log-sigma middle, calls the model
// there, and takes the whole step with that prediction, adding noise in both halves.
//
// Its noise is a Brownian motion W(sigma) sampled where the step asks, not independent draws: the two
// halves of a step ask for W(mid) - W(sigma) and W(next) - W(sigma), which overlap and must be
// correlated as Brownian increments are. k-diffusion gets this from torchsde's BrownianTree seeded
// from the seed; we sample the same process exactly with a seeded Brownian bridge (see BrownianPath),
// every draw from the run's generator in a fixed order. Same law, same seed -> same image here, but
// not the same numbers as k-diffusion (which depends on torchsde's own generator).
#include <algorithm>
#include <cmath>
#include <iterator>
#include <map>

#include "sampling/denoiser.h"
#include "sampling/noise_schedule.h"
#include "sampling/sampler.h"

namespace diffuse::sampling {

namespace {

// Brownian motion on [t_min, t_max] with W(t_min) = 0, sampled lazily: a new time between two known
// ones is drawn from the Brownian bridge between them, so any set of queries has exactly the joint
// law of a Brownian path whatever order they come in. Values are held in float64 so that increments
// over short intervals keep their precision.
class BrownianPath {
 public:
  BrownianPath(const RunContext& context, const at::Tensor& like, double t_min, double t_max)
      : context_(context), like_(like) {
    points_[t_min] = at::zeros(like.sizes(), like.options().dtype(at::kDouble));
    if (t_max > t_min) points_[t_max] = unit_draw() * std::sqrt(t_max - t_min);
  }

  // (W(b) - W(a)) / sqrt(|b - a|): unit Gaussian, and consistent with every earlier query.
  at::Tensor normalized_increment(double a, double b) {
    const at::Tensor from = value_at(a);
    const at::Tensor to = value_at(b);
    return ((to - from) / std::sqrt(std::abs(b - a))).to(like_.scalar_type());
  }

 private:
  at::Tensor unit_draw() { return context_.draw_noise(like_).to(at::kDouble); }

  at::Tensor value_at(double t) {
    const auto found = points_.find(t);
    if (found != points_.end()) return found->second;
    const auto upper = points_.upper_bound(t);
    at::Tensor value;
    if (upper == points_.begin()) {  // below every known time: a free Brownian step down
      value = upper->second + unit_draw() * std::sqrt(upper->first - t);
    } else if (upper == points_.end()) {  // above every known time
      const auto& [t_low, w_low] = *std::prev(upper);
      value = w_low + unit_draw() * std::sqrt(t - t_low);
    } else {
      const auto& [t_low, w_low] = *std::prev(upper);
      const auto& [t_high, w_high] = *upper;
      const double span = t_high - t_low;
      const double weight = (t - t_low) / span;
      value = w_low + (w_high - w_low) * weight + unit_draw() * std::sqrt((t - t_low) * (t_high - t) / span);
    }
    points_[t] = value;
    return value;
  }

  const RunContext& context_;
  at::Tensor like_;
  std::map<double, at::Tensor> points_;
};

class DpmSolverPlusPlusSde final : public Sampler {
 public:
  std::string name() const override { return "dpm++sde"; }
  std::string display_name() const override { return "DPM++ SDE"; }
  std::string description() const override {
    return "DPM-Solver++ SDE (k-diffusion), two model calls per step, Brownian noise from the seed";
  }

  Schedule make_schedule(const SchedulerConfig& config, const SamplerOptions& options) const override {
    return discrete_sigma_schedule(config, resolve_spacing(config, options, Spacing::Linspace),
                                   resolve_sigma_schedule(config, options), options.steps);
  }

  at::Tensor run(const RunContext& context, at::Tensor x) const override {
    const SigmaDenoiser denoise(context.model, context.config);
    const auto& sigmas = context.schedule.sigmas;
    double sigma_min = sigmas.front(), sigma_max = sigmas.front();
    for (const double s : sigmas) {
      if (s > 0) sigma_min = std::min(sigma_min, s);
      sigma_max = std::max(sigma_max, s);
    }
    BrownianPath brownian(context, x, sigma_min, sigma_max);
    auto sigma_of = [](double t) { return std::exp(-t); };
    auto t_of = [](double sigma) { return -std::log(sigma); };

    for (size_t i = context.first_step; i + 1 < sigmas.size(); ++i) {
      const double sigma = sigmas[i];
      const double sigma_next = sigmas[i + 1];
      const at::Tensor denoised = denoise(x, sigma);
      if (sigma_next == 0) {
        x = x + (x - denoised) / static_cast<float>(sigma) * static_cast<float>(sigma_next - sigma);
        x = context.finish_step(static_cast<int>(i), x, denoised);
        continue;
      }
      const double t = t_of(sigma);
      const double sigma_mid = sigma_of(t + (t_of(sigma_next) - t) / 2);
      // First half: ancestral step to the middle.
      const auto [mid_down, mid_up] = ancestral_step(sigma, sigma_mid);
      at::Tensor x_mid = x * static_cast<float>(mid_down / sigma) -
                         denoised * static_cast<float>(std::expm1(t - t_of(mid_down)));
      x_mid = x_mid + brownian.normalized_increment(sigma, sigma_mid) * static_cast<float>(mid_up);
      const at::Tensor denoised_mid = denoise(x_mid, sigma_mid);
      // Whole step with the middle's prediction (k-diffusion's fac = 1 / (2r) = 1 at r = 1/2).
      const auto [down, up] = ancestral_step(sigma, sigma_next);
      x = x * static_cast<float>(down / sigma) - denoised_mid * static_cast<float>(std::expm1(t - t_of(down)));
      x = x + brownian.normalized_increment(sigma, sigma_next) * static_cast<float>(up);
      x = context.finish_step(static_cast<int>(i), x, denoised_mid);
    }
    return x;
  }
};

}  // namespace

std::unique_ptr<Sampler> make_dpmpp_sde_sampler() { return std::make_unique<DpmSolverPlusPlusSde>(); }

}  // namespace diffuse::sampling
