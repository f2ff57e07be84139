// UniPC (Zhao et al. 2023): diffusers' UniPCMultistepScheduler with its defaults: solver_order 2,
// predict_x0, B(h) = e^h - 1 ("bh2"), lower_order_final, the corrector on every step. Each step
// first corrects the sample the model just saw (UniC, using the new prediction), then predicts the
// next one (UniP). The schedule ends at the smallest trained sigma, not 0, and the last prediction
// there is the result.
#include <algorithm>
#include <cmath>
#include <vector>

#include "sampling/denoiser.h"
#include "sampling/noise_schedule.h"
#include "sampling/sampler.h"

namespace diffuse::sampling {

namespace {

// The scalars one UniP or UniC step needs between the levels `from` and `to`, float32 as diffusers.
struct UniStep {
  float ratio;     // sigma_to / sigma_from
  float h_phi_1;   // expm1(-h)
  float b_h;       // B(h) for bh2: expm1(-h)
  float h;         // lambda_to - lambda_from
};

UniStep uni_step(const VpLevel& from, const VpLevel& to) {
  const float h = to.lambda - from.lambda;
  const float h_phi_1 = std::expm1(-h);
  return {to.sigma / from.sigma, h_phi_1, h_phi_1, h};
}

// diffusers' rhos for the corrector of order 2: solve R rho = b with R = [[1, 1], [r1, 1]] and
// b_i = i! * h_phi_(i+1) / B(h), the phi functions by their recurrence, in float32 via torch.
at::Tensor corrector_rhos(float r1, const UniStep& step) {
  const float hh = -step.h;
  float h_phi_k = step.h_phi_1 / hh - 1.0f;
  float factorial = 1.0f;
  std::vector<float> b;
  for (int i = 1; i <= 2; ++i) {
    b.push_back(h_phi_k * factorial / step.b_h);
    factorial *= static_cast<float>(i + 1);
    h_phi_k = h_phi_k / hh - 1.0f / factorial;
  }
  const at::Tensor rks = at::tensor({r1, 1.0f}, at::kFloat);
  const at::Tensor R = at::stack({at::pow(rks, 0), at::pow(rks, 1)});
  return at::linalg_solve(R, at::tensor(b, at::kFloat));
}

class UniPcSampler final : public Sampler {
 public:
  std::string name() const override { return "unipc"; }
  std::string display_name() const override { return "UniPC"; }
  std::string description() const override { return "UniPC, second order predictor-corrector multistep"; }

  LatentFrame frame() const override { return LatentFrame::VariancePreserving; }

  Schedule make_schedule(const SchedulerConfig& config, const SamplerOptions& options) const override {
    return dpm_solver_schedule(config, resolve_spacing(config, options, Spacing::Linspace),
                               resolve_sigma_schedule(config, options), options.steps, /*final_sigma_min=*/true);
  }

  at::Tensor run(const RunContext& context, at::Tensor x) const override {
    const auto& sigmas = context.schedule.sigmas;
    const auto& timesteps = context.schedule.timesteps;
    const int count = static_cast<int>(timesteps.size());
    std::vector<at::Tensor> outputs;  // converted predictions (x0), oldest first, at most 2
    at::Tensor last_sample;           // the sample the previous predictor started from
    int last_order = 0;
    for (int k = context.first_step; k < count; ++k) {
      const VpLevel here = vp_level(sigmas[k]);
      const at::Tensor output = context.model(x, timesteps[k]);
      // Converted with the sample the model saw, before the corrector changes it.
      const at::Tensor denoised = denoised_from_alpha_sigma(context.config.prediction, output, x, here.alpha, here.sigma);
      if (k > context.first_step) x = correct(last_sample, denoised, outputs, sigmas, k, last_order);

      outputs.push_back(denoised);
      if (outputs.size() > 2) outputs.erase(outputs.begin());
      const int order = std::min({2, count - k, static_cast<int>(outputs.size())});
      last_sample = x;
      x = predict(x, outputs, sigmas, k, order);
      last_order = order;
      x = context.finish_step(k, x, denoised);
    }
    return x;
  }

 private:
  // UniP from sigmas[k] to sigmas[k+1]; order 2 uses the previous prediction with rho 1/2.
  static at::Tensor predict(const at::Tensor& x, const std::vector<at::Tensor>& outputs,
                            const std::vector<double>& sigmas, int k, int order) {
    const VpLevel from = vp_level(sigmas[k]);
    const VpLevel to = vp_level(sigmas[k + 1]);
    const UniStep step = uni_step(from, to);
    const at::Tensor& m0 = outputs.back();
    at::Tensor result = x * step.ratio - m0 * (to.alpha * step.h_phi_1);
    if (order == 2) {
      const float r1 = (vp_level(sigmas[k - 1]).lambda - from.lambda) / step.h;
      const at::Tensor d1 = (outputs[outputs.size() - 2] - m0) / r1;
      result = result - (d1 * 0.5f) * (to.alpha * step.b_h);
    }
    return result;
  }

  // UniC: redo the step sigmas[k-1] -> sigmas[k] from `last_sample` with the new prediction.
  static at::Tensor correct(const at::Tensor& last_sample, const at::Tensor& model_t,
                            const std::vector<at::Tensor>& outputs, const std::vector<double>& sigmas, int k,
                            int order) {
    const VpLevel from = vp_level(sigmas[k - 1]);
    const VpLevel to = vp_level(sigmas[k]);
    const UniStep step = uni_step(from, to);
    const at::Tensor& m0 = outputs.back();
    const at::Tensor base = last_sample * step.ratio - m0 * (to.alpha * step.h_phi_1);
    const at::Tensor d1_t = model_t - m0;
    at::Tensor residual;
    if (order == 1) {
      residual = d1_t * 0.5f;
    } else {
      const float r1 = (vp_level(sigmas[k - 2]).lambda - from.lambda) / step.h;
      const at::Tensor d1 = (outputs[outputs.size() - 2] - m0) / r1;
      const at::Tensor rhos = corrector_rhos(r1, step);
      residual = d1 * rhos[0].item<float>() + d1_t * rhos[1].item<float>();
    }
    return base - residual * (to.alpha * step.b_h);
  }
};

}  // namespace

std::unique_ptr<Sampler> make_unipc_sampler() { return std::make_unique<UniPcSampler>(); }

}  // namespace diffuse::sampling
