#include "train/trainer.h"

#include <cmath>
#include <fstream>

#include <torch/torch.h>

#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "models/clip_text_encoder.h"
#include "models/unet.h"
#include "models/vae.h"
#include "sampling/noise_schedule.h"
#include "text/clip_tokenizer.h"
#include "train/bpe_trainer.h"
#include "train/loss_plot.h"
#include "train/model_export.h"
#include "train/shapes_dataset.h"
#include "util/error.h"
#include "util/json.h"
#include "util/threads.h"

namespace diffuse::train {

namespace fs = std::filesystem;

namespace {

// A fresh generator per (stage, step): resuming needs no saved generator state.
at::Generator step_generator(uint64_t seed, uint64_t stage, uint64_t step) {
  uint64_t h = seed * 0x9E3779B97F4A7C15ull ^ (stage << 56) ^ step;
  h = (h ^ (h >> 31)) * 0xBF58476D1CE4E5B9ull;
  return at::make_generator<at::CPUGeneratorImpl>(h ^ (h >> 29));
}

// Linear warm-up, then cosine decay to a tenth: small models jump about at a constant high rate.
double learning_rate(double base, int step, int total) {
  const int warmup = std::max(1, std::min(100, total / 10));
  const double ramp = std::min(1.0, (step + 1.0) / warmup);
  return base * ramp * (0.1 + 0.45 * (1 + std::cos(M_PI * step / total)));
}

template <typename Optimizer>
void set_learning_rate(Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

// Thrown at a step boundary once options.stop_after steps ran, after the checkpoint is written.
struct StopRequested {};

Dataset load_dataset(const TrainOptions& o, const WarningSink& warn) {
  if (o.dataset == "shapes") return make_shapes_dataset(o.shapes_count, o.resolution, o.seed);
  return load_image_folder(o.dataset, o.resolution, warn);
}

class Trainer {
 public:
  Trainer(TrainOptions options, const TrainProgressCallback& progress, const WarningSink& warn)
      : o_(std::move(options)), progress_(progress), out_(o_.output), checkpoint_(out_ / "checkpoint") {
    data_ = load_dataset(o_, warn);
    const auto vocabulary = train_bpe(data_.captions, o_.bpe_merges);
    write_clip_tokenizer(vocabulary, o_.max_tokens, out_ / "tokenizer");
    tokenizer_ = std::make_unique<text::ClipTokenizer>(text::ClipTokenizer::from_path(out_ / "tokenizer"));
    vocab_size_ = static_cast<int>(vocabulary.tokens.size());
    if (fs::exists(checkpoint_ / "state.json")) {
      state_ = read_state(checkpoint_ / "state.json");
      log_ = read_loss_csv(checkpoint_ / "loss.csv");
    }
  }

  TrainResult run() {
    auto vae = train_vae();
    train_diffusion(vae);
    TrainResult result;
    result.seconds = state_.vae_seconds + state_.diffusion_seconds;
    result.vae_loss = final_loss(log_.vae);
    result.diffusion_loss = final_loss(log_.diffusion);
    write_record(result);
    fs::remove_all(checkpoint_);
    return result;
  }

 private:
  models::AutoencoderKL train_vae() {
    auto config = vae_config(o_);
    torch::manual_seed(o_.seed);
    models::AutoencoderKL vae(config);
    {
      // A fresh VAE samples with unit variance, which drowns the encoder's signal and stalls the
      // reconstruction for hundreds of steps; starting the log-variance low lets it learn at once.
      torch::NoGradGuard no_grad;
      vae->quant_conv->bias.narrow(0, config.latent_channels, config.latent_channels).fill_(-6.0);
    }
    // Adam's betas as the LDM autoencoder's (0.5, 0.9), and clipped gradients: with the defaults
    // (0.9, 0.999) a small VAE on flat-coloured images sat at an L1 of 0.35 for 600 steps and
    // diverged at higher rates; with these it passes 0.06 by step 700.
    torch::optim::AdamW optimizer(vae->parameters(),
                                  torch::optim::AdamWOptions(o_.vae_lr).betas({0.5, 0.9}).weight_decay(0));
    if (state_.stage != Stage::Vae || state_.step > 0) torch::load(vae, (checkpoint_ / "vae.pt").string());
    if (state_.stage == Stage::Vae && state_.step > 0) torch::load(optimizer, (checkpoint_ / "vae_optim.pt").string());
    if (state_.stage != Stage::Vae) {
      vae->config.scaling_factor = state_.scaling_factor;
      vae->eval();
      return vae;
    }
    vae->train();
    const int64_t count = data_.images.size(0);
    ProgressMeter meter("vae", state_.step, o_.vae_steps, progress_);
    double started = monotonic_seconds();
    for (int step = state_.step; step < o_.vae_steps; ++step) {
      if (stop_requested()) {
        save_vae_checkpoint(vae, optimizer, step, started);
        throw StopRequested{};
      }
      auto generator = step_generator(o_.seed, 1, step);
      const auto index = at::randint(count, {o_.vae_batch}, generator, at::kLong);
      const auto images = data_.images.index_select(0, index);
      set_learning_rate(optimizer, learning_rate(o_.vae_lr, step, o_.vae_steps));
      const auto latent = vae->encode(images);
      const auto decoded = vae->decode(latent.sample(generator));
      // L1 as the original's pixel loss; the KL term only keeps the latent from spreading out.
      const auto kl = 0.5 * (latent.mean.square() + latent.std.square() - 1 - latent.logvar).mean();
      const auto loss = (decoded - images).abs().mean() + o_.kl_weight * kl;
      optimizer.zero_grad();
      loss.backward();
      torch::nn::utils::clip_grad_norm_(vae->parameters(), 1.0);
      optimizer.step();
      log_.vae.push_back(loss.item<double>());
      ++steps_this_run_;
      meter.step_done(step + 1, log_.vae);
      if ((step + 1) % o_.checkpoint_every == 0 && step + 1 < o_.vae_steps) {
        save_vae_checkpoint(vae, optimizer, step + 1, started);
      }
    }
    vae->eval();
    vae->config.scaling_factor = measure_scaling_factor(vae);
    state_.scaling_factor = vae->config.scaling_factor;
    save_vae_checkpoint(vae, optimizer, o_.vae_steps, started);
    state_.stage = Stage::Diffusion;
    state_.step = 0;
    save_state();
    return vae;
  }

  // As SD: 1 / std of the latents, so that the diffusion sees unit-variance data.
  double measure_scaling_factor(models::AutoencoderKL& vae) {
    encode_dataset(vae);
    auto generator = step_generator(o_.seed, 3, 0);
    const auto z = latent_mean_ + latent_std_ * at::randn(latent_mean_.sizes(), generator);
    return 1.0 / z.std().item<double>();
  }

  void encode_dataset(models::AutoencoderKL& vae) {
    if (latent_mean_.defined()) return;
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> means, stds;
    for (const auto& chunk : data_.images.split(64)) {
      const auto latent = vae->encode(chunk);
      means.push_back(latent.mean);
      stds.push_back(latent.std);
    }
    latent_mean_ = at::cat(means);
    latent_std_ = at::cat(stds);
  }

  void save_vae_checkpoint(models::AutoencoderKL& vae, torch::optim::AdamW& optimizer, int step, double& started) {
    fs::create_directories(checkpoint_);
    torch::save(vae, (checkpoint_ / "vae.pt").string());
    torch::save(optimizer, (checkpoint_ / "vae_optim.pt").string());
    state_.step = step;
    state_.vae_seconds += monotonic_seconds() - started;
    started = monotonic_seconds();
    save_state();
  }

  void train_diffusion(models::AutoencoderKL& vae) {
    encode_dataset(vae);
    const auto text_config = text_encoder_config(o_, vocab_size_);
    const auto unet_cfg = unet_config(o_);
    torch::manual_seed(o_.seed + 1);
    models::ClipTextModel text_encoder(text_config);
    models::UNet2DConditionModel unet(unet_cfg);
    auto parameters = text_encoder->parameters();
    for (const auto& p : unet->parameters()) parameters.push_back(p);
    torch::optim::AdamW optimizer(parameters, torch::optim::AdamWOptions(o_.unet_lr).weight_decay(0.01));
    std::vector<at::Tensor> ema;
    for (const auto& p : parameters) ema.push_back(p.detach().clone());
    if (state_.stage == Stage::Diffusion && state_.step > 0) {
      torch::load(text_encoder, (checkpoint_ / "text_encoder.pt").string());
      torch::load(unet, (checkpoint_ / "unet.pt").string());
      torch::load(optimizer, (checkpoint_ / "diffusion_optim.pt").string());
      const auto saved = io::SafetensorsFile::open(checkpoint_ / "ema.safetensors");
      for (size_t i = 0; i < ema.size(); ++i) ema[i] = saved.tensor(std::to_string(i)).clone();
    }
    text_encoder->train();
    unet->train();

    std::vector<at::Tensor> ids;
    for (const auto& caption : data_.captions) ids.push_back(at::tensor(tokenizer_->encode_padded(caption), at::kLong));
    const auto caption_ids = at::stack(ids);
    const auto empty_ids = at::tensor(tokenizer_->encode_padded(""), at::kLong).unsqueeze(0);
    // The schedule the exported model's scheduler config names, computed as the samplers compute it,
    // so that training and generation agree on every noise level.
    const auto alphas_cumprod = sampling::alphas_cumprod(
        training_schedule(), /*sigma_safe=*/false);
    const auto scale = static_cast<float>(vae->config.scaling_factor);
    const int64_t count = latent_mean_.size(0), batch = o_.unet_batch;

    ProgressMeter meter("diffusion", state_.step, o_.unet_steps, progress_);
    double started = monotonic_seconds();
    const auto save_checkpoint = [&](int steps_done) {
      fs::create_directories(checkpoint_);
      torch::save(text_encoder, (checkpoint_ / "text_encoder.pt").string());
      torch::save(unet, (checkpoint_ / "unet.pt").string());
      torch::save(optimizer, (checkpoint_ / "diffusion_optim.pt").string());
      TensorMap saved;
      for (size_t i = 0; i < ema.size(); ++i) saved[std::to_string(i)] = ema[i];
      io::write_safetensors(checkpoint_ / "ema.safetensors", saved);
      state_.step = steps_done;
      state_.diffusion_seconds += monotonic_seconds() - started;
      started = monotonic_seconds();
      save_state();
    };
    for (int step = state_.step; step < o_.unet_steps; ++step) {
      if (stop_requested()) {
        save_checkpoint(step);
        throw StopRequested{};
      }
      auto generator = step_generator(o_.seed, 2, step);
      const auto index = at::randint(count, {batch}, generator, at::kLong);
      const auto mean = latent_mean_.index_select(0, index), std = latent_std_.index_select(0, index);
      const auto latents = (mean + std * at::randn(mean.sizes(), generator)) * scale;
      const auto timesteps = at::randint(1000, {batch}, generator, at::kLong);
      const auto noise = at::randn(latents.sizes(), generator);
      const auto alpha = alphas_cumprod.index_select(0, timesteps).view({batch, 1, 1, 1});
      const auto noisy = alpha.sqrt() * latents + (1 - alpha).sqrt() * noise;
      const auto dropped = (at::rand({batch}, generator) < o_.caption_dropout).view({batch, 1});
      const auto tokens = at::where(dropped, empty_ids, caption_ids.index_select(0, index));

      set_learning_rate(optimizer, learning_rate(o_.unet_lr, step, o_.unet_steps));
      const auto prediction = unet->forward(noisy, timesteps.to(at::kFloat), text_encoder->encode(tokens));
      const auto loss = (prediction - noise).square().mean();
      optimizer.zero_grad();
      loss.backward();
      torch::nn::utils::clip_grad_norm_(parameters, 1.0);
      optimizer.step();
      update_ema(ema, parameters, step);
      log_.diffusion.push_back(loss.item<double>());
      ++steps_this_run_;
      meter.step_done(step + 1, log_.diffusion);
      if ((step + 1) % o_.checkpoint_every == 0 && step + 1 < o_.unet_steps) save_checkpoint(step + 1);
    }
    state_.diffusion_seconds += monotonic_seconds() - started;
    state_.stage = Stage::Done;
    if (o_.ema_decay > 0) {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < ema.size(); ++i) parameters[i].copy_(ema[i]);
    }
    export_model(out_, {vae->config, *vae, text_config, *text_encoder, unet_cfg, *unet});
  }

  // Decay ramps up as diffusers' EMAModel does, so early weights fade out quickly.
  void update_ema(std::vector<at::Tensor>& ema, const std::vector<at::Tensor>& parameters, int step) {
    if (o_.ema_decay <= 0) return;
    torch::NoGradGuard no_grad;
    const double decay = std::min(o_.ema_decay, (1.0 + step) / (10.0 + step));
    for (size_t i = 0; i < ema.size(); ++i) ema[i].mul_(decay).add_(parameters[i].detach(), 1 - decay);
  }

  bool stop_requested() const { return o_.stop_after > 0 && steps_this_run_ >= o_.stop_after; }

  void save_state() {
    write_state(checkpoint_ / "state.json", state_);
    write_loss_csv(checkpoint_ / "loss.csv", log_);
    write_loss_csv(out_ / "loss.csv", log_);
    write_loss_plot(out_ / "loss.png", {{"vae", log_.vae}, {"diffusion", log_.diffusion}});
  }

  void write_record(const TrainResult& result) {
    write_loss_csv(out_ / "loss.csv", log_);
    write_loss_plot(out_ / "loss.png", {{"vae", log_.vae}, {"diffusion", log_.diffusion}});
    nlohmann::ordered_json record{{"command", o_.command},
                                  {"seed", o_.seed},
                                  {"dataset", data_.description},
                                  {"threads", at::get_num_threads()},
                                  {"seconds", std::round(result.seconds)},
                                  {"vae_seconds", std::round(state_.vae_seconds)},
                                  {"diffusion_seconds", std::round(state_.diffusion_seconds)},
                                  {"final_vae_loss", result.vae_loss},
                                  {"final_diffusion_loss", result.diffusion_loss},
                                  {"final_loss_window", "mean of the last 50 steps"},
                                  {"options", options_to_json(o_)}};
    std::ofstream(out_ / "training.json") << record.dump(2) << "\n";
  }

  TrainOptions o_;
  TrainProgressCallback progress_;
  fs::path out_, checkpoint_;
  Dataset data_;
  std::unique_ptr<text::ClipTokenizer> tokenizer_;
  int vocab_size_ = 0;
  int steps_this_run_ = 0;
  TrainState state_;
  LossLog log_;
  at::Tensor latent_mean_, latent_std_;
};

}  // namespace

TrainResult train_model(TrainOptions options, const TrainProgressCallback& progress, const WarningSink& warn) {
  if (options.output.empty()) throw InvalidParameter("output", "give the folder to write the model to");
  const fs::path checkpoint = options.output / "checkpoint";
  if (options.resume) {
    if (!fs::exists(checkpoint / "options.json")) {
      throw InvalidParameter("resume", checkpoint.string() + " holds no checkpoint to resume");
    }
    const auto given = options;
    options = options_from_json(read_json_file(checkpoint / "options.json"));
    options.threads = given.threads;
    options.output = given.output;
    options.stop_after = given.stop_after;
    options.resume = true;
  } else if (fs::exists(checkpoint)) {
    throw InvalidParameter("resume", "not given, but " + options.output.string() + " holds an unfinished run");
  } else if (fs::exists(options.output / "model_index.json")) {
    throw InvalidParameter("output", options.output.string() + " already holds a model; choose another folder");
  }
  validate(options);
  if (options.threads > 0) set_cpu_threads(options.threads);
  fs::create_directories(checkpoint);
  if (!options.resume) std::ofstream(checkpoint / "options.json") << options_to_json(options).dump(2) << "\n";
  try {
    return Trainer(options, progress, warn).run();
  } catch (const StopRequested&) {
    TrainResult result;
    result.stopped = true;
    return result;
  }
}

}  // namespace diffuse::train
