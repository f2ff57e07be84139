#include <unistd.h>

#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "train/trainer.h"

namespace diffuse::cli {

namespace {

std::string duration_text(double seconds) {
  const long s = std::lround(seconds);
  char text[32];
  std::snprintf(text, sizeof text, s >= 3600 ? "%ldh%02ldm" : "%ldm%02lds", s >= 3600 ? s / 3600 : s / 60,
                s >= 3600 ? s / 60 % 60 : s % 60);
  return text;
}

void report_progress(const train::TrainProgress& p) {
  std::fprintf(stderr, "%-9s step %d/%d  loss %.5f  %.2f s/step  ETA %s\n", p.stage.c_str(), p.step, p.total, p.loss,
               p.seconds_per_step, duration_text(p.eta_seconds).c_str());
  std::fflush(stderr);
}

std::string quote_arg(const std::string& arg) {
  if (arg.find_first_of(" '\"\\$") == std::string::npos && !arg.empty()) return arg;
  std::string quoted = "'";
  for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

}  // namespace

void add_train_command(CLI::App& app, int argc, char** argv) {
  auto options = std::make_shared<train::TrainOptions>();
  auto& o = *options;
  // The record names the command as typed, with the program as "diffuse" wherever it was run from.
  o.command = "diffuse";
  for (int i = 1; i < argc; ++i) o.command += " " + quote_arg(argv[i]);

  auto* command = app.add_subcommand("train", "Train a text-to-image model from scratch (see docs/training.md)");
  command->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  command->add_option("-d,--dataset", o.dataset, "'shapes', or a folder of NAME.png images with NAME.txt captions")
      ->capture_default_str();
  command->add_option("-o,--output", o.output, "Folder for the model, loss.csv, loss.png and training.json")
      ->required();
  command->add_option("-s,--seed", o.seed, "Seed of the data, initial weights and every draw")->capture_default_str();
  command->add_flag("--resume", o.resume, "Continue the run in --output from its last checkpoint");
  command->add_option("--stop-after", o.stop_after, "Checkpoint and stop after this many steps (resume later)");
  command->add_option("--threads", o.threads, "CPU threads (0: libtorch's default)")->capture_default_str();
  command->add_option("--checkpoint-every", o.checkpoint_every, "Steps between checkpoints")->capture_default_str();
  command->add_option("--resolution", o.resolution, "Image side in pixels")->capture_default_str();
  command->add_option("--shapes-count", o.shapes_count, "Images in the shapes dataset")->capture_default_str();
  command->add_option("--vae-channels", o.vae_channels, "VAE widths per level; downscale is 2^(levels-1)")
      ->capture_default_str()->delimiter(',');
  command->add_option("--vae-layers", o.vae_layers, "VAE resnets per level")->capture_default_str();
  command->add_option("--latent-channels", o.latent_channels, "Latent channels")->capture_default_str();
  command->add_option("--vae-steps", o.vae_steps, "Stage 1 steps")->capture_default_str();
  command->add_option("--vae-batch", o.vae_batch, "Stage 1 batch size")->capture_default_str();
  command->add_option("--vae-lr", o.vae_lr, "Stage 1 peak learning rate")->capture_default_str();
  command->add_option("--kl-weight", o.kl_weight, "Weight of the VAE's KL term")->capture_default_str();
  command->add_option("--bpe-merges", o.bpe_merges, "Most BPE merges the tokenizer learns")->capture_default_str();
  command->add_option("--text-hidden", o.text_hidden, "Text encoder width")->capture_default_str();
  command->add_option("--text-layers", o.text_layers, "Text encoder layers")->capture_default_str();
  command->add_option("--text-heads", o.text_heads, "Text encoder attention heads")->capture_default_str();
  command->add_option("--max-tokens", o.max_tokens, "Tokens per caption, start and end included")
      ->capture_default_str();
  command->add_option("--unet-channels", o.unet_channels, "UNet widths per level")->capture_default_str()->delimiter(',');
  command->add_option("--unet-layers", o.unet_layers, "UNet resnets per down level")->capture_default_str();
  command->add_option("--unet-heads", o.unet_heads, "UNet attention heads")->capture_default_str();
  command->add_option("--unet-attention-from", o.unet_attention_from, "First UNet level with attention (0: all)")
      ->capture_default_str();
  command->add_option("--unet-steps", o.unet_steps, "Stage 2 steps")->capture_default_str();
  command->add_option("--unet-batch", o.unet_batch, "Stage 2 batch size")->capture_default_str();
  command->add_option("--unet-lr", o.unet_lr, "Stage 2 peak learning rate")->capture_default_str();
  command->add_option("--caption-dropout", o.caption_dropout, "Fraction of stage 2 samples trained without caption")
      ->capture_default_str();
  command->add_option("--ema-decay", o.ema_decay, "EMA of the stage 2 weights (0: off)")->capture_default_str();
  command->callback([options] {
    const auto result = train::train_model(*options, report_progress, [](const std::string& warning) {
      std::fprintf(stderr, "warning: %s\n", warning.c_str());
    });
    if (result.stopped) {
      std::fprintf(stderr, "stopped with a checkpoint in %s; continue with --resume\n", options->output.c_str());
      return;
    }
    std::fprintf(stderr, "trained %s in %.0f s: final vae loss %.5f, diffusion loss %.5f\n",
                 options->output.c_str(), result.seconds, result.vae_loss, result.diffusion_loss);
  });
}

}  // namespace diffuse::cli
