#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "cli/builtin_model.h"
#include "cli/commands.h"
#include "explain/step_previews.h"
#include "image/png_file.h"
#include "pipeline/generation.h"
#include "util/error.h"
#include "util/threads.h"

namespace diffuse::cli {

namespace fs = std::filesystem;

namespace {

struct GenerateOptions {
  std::string model;
  std::string output = "output.png";
  std::string tokenizer;
  std::string scheduler_config;
  std::string timestep_spacing;
  std::string prediction;
  int batch_count = 1;
  std::string save_steps;  // folder for per-step previews; empty: none
  std::string preview = "linear";
  std::string precision;  // empty: bf16 where the CPU has native bf16, else fp32
  bool low_memory = false;
  bool vae_tiling = false;
  int threads = 0;  // 0: one per core
  pipeline::GenerationParams params;
};

// Checks that need no model, so that bad input fails before seconds of loading.
void check_before_loading(const GenerateOptions& o) {
  for (const auto& [flag, value] : {std::pair{"--width", o.params.width}, std::pair{"--height", o.params.height}}) {
    if (value != 0 && (value < 0 || value % 8 != 0)) {
      throw Error(std::string(flag) + ": " + std::to_string(value) + " is not a positive multiple of 8");
    }
  }
  if (o.batch_count < 1) throw Error("--batch-count: " + std::to_string(o.batch_count) + " must be at least 1");
  sampling::validate(o.params.sampler);
  const fs::path output(o.output);
  if (output.extension() != ".png") throw Error("--output: '" + o.output + "' must end in .png");
  const auto folder = output.parent_path().empty() ? fs::path(".") : output.parent_path();
  if (!fs::is_directory(folder)) throw Error("--output: folder '" + folder.string() + "' does not exist");
  if (!fs::exists(o.model)) throw Error("--model: '" + o.model + "' does not exist");
  explain::preview_mode_from_name(o.preview);
}

// out.png for one image; out-<seed>.png for each image of a batch.
fs::path output_path(const fs::path& output, int batch_count, uint64_t seed) {
  if (batch_count == 1) return output;
  auto path = output;
  path.replace_filename(output.stem().string() + "-" + std::to_string(seed) + output.extension().string());
  return path;
}

void report_progress(const pipeline::Progress& p) {
  static const bool terminal = isatty(fileno(stderr));
  std::fprintf(stderr, "%sstep %d/%d  %.2f s/step%s", terminal ? "\r" : "", p.step, p.total, p.seconds_per_step,
               terminal && p.step < p.total ? "" : "\n");
  std::fflush(stderr);
}

void run_generate(GenerateOptions o) {
  if (o.model.empty()) o.model = builtin_model_dir().string();
  if (!o.timestep_spacing.empty()) o.params.sampler.timestep_spacing = o.timestep_spacing;
  if (!o.prediction.empty()) o.params.sampler.prediction = o.prediction;
  check_before_loading(o);
  pipeline::LoadOptions load;
  if (!o.tokenizer.empty()) load.tokenizer = o.tokenizer;
  if (!o.scheduler_config.empty()) load.scheduler_config = o.scheduler_config;
  load.dtype = o.precision.empty() ? pipeline::default_dtype() : pipeline::dtype_from_name(o.precision);
  load.low_memory = o.low_memory;
  load.vae_tiling = o.vae_tiling;
  // libtorch may start with a single intra-op thread here; every core is what a user expects.
  set_cpu_threads(o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  auto model = pipeline::StableDiffusionModel::load(o.model, load);
  auto params = pipeline::resolve(o.params, model);
  for (int i = 0; i < o.batch_count; ++i) {
    const auto started = std::chrono::steady_clock::now();
    const auto path = output_path(o.output, o.batch_count, params.seed);
    // A batch keeps each image's steps apart: DIR/seed-<seed>.
    std::optional<explain::StepPreviewWriter> steps;
    if (!o.save_steps.empty()) {
      const auto folder = o.batch_count == 1 ? fs::path(o.save_steps)
                                             : fs::path(o.save_steps) / ("seed-" + std::to_string(params.seed));
      steps.emplace(model, folder, explain::preview_mode_from_name(o.preview));
    }
    pipeline::StepObserver observe;
    if (steps) observe = [&steps](const pipeline::StepLatents& step) { steps->on_step(step); };
    const auto image = pipeline::text_to_image(model, params, report_progress, observe);
    if (steps) std::fprintf(stderr, "wrote steps to %s\n", steps->finish().sheet.parent_path().c_str());
    image::write_png(path, image.pixels, {{"parameters", pipeline::a1111_parameters(params, model.name)}});
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::fprintf(stderr, "wrote %s (%dx%d, seed %llu) in %.1f s\n", path.c_str(), params.width, params.height,
                 static_cast<unsigned long long>(params.seed), seconds);
    ++params.seed;
  }
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto options = std::make_shared<GenerateOptions>();
  auto& p = options->params;
  auto* command = app.add_subcommand("generate", "Make an image from a text prompt");
  // A flag given twice takes its last value, as scripts that append overrides expect.
  command->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  command->add_option("-m,--model", options->model,
                      "Diffusers folder or single-file .safetensors checkpoint (default: the built-in model)");
  command->add_option("-p,--prompt", p.prompt, "What the image should show")->required();
  command->add_option("-n,--negative-prompt", p.negative_prompt, "What the image should not show");
  command->add_option("--steps", p.sampler.steps, "Denoising steps")->capture_default_str();
  command->add_option("--cfg-scale", p.cfg_scale, "Classifier-free guidance scale; 1 or less disables guidance")
      ->capture_default_str();
  command->add_option("-s,--seed", p.seed, "Seed of the random noise; a batch uses seed, seed+1, ...")
      ->capture_default_str();
  command->add_option("-W,--width", p.width, "Image width in pixels, a multiple of 8 (default: the model's)");
  command->add_option("-H,--height", p.height, "Image height in pixels, a multiple of 8 (default: the model's)");
  command->add_option("--sampler", p.sampler.sampler, "Sampler; see `diffuse samplers`")->capture_default_str();
  command->add_option("--schedule", p.sampler.schedule, "Noise schedule: default, karras, exponential or sgm_uniform")
      ->capture_default_str();
  command->add_option("--timestep-spacing", options->timestep_spacing,
                      "leading, trailing or linspace (default: the scheduler config's)");
  command->add_option("--prediction", options->prediction,
                      "What the model predicts: epsilon or v_prediction (default: the scheduler config's)");
  command->add_option("--eta", p.sampler.eta, "DDIM eta: 0 is deterministic, 1 adds full noise each step");
  command->add_option("--batch-count", options->batch_count, "Images to make; OUT.png becomes OUT-<seed>.png")
      ->capture_default_str();
  command->add_option("--tokenizer", options->tokenizer,
                      "Tokenizer folder (vocab.json + merges.txt) or bpe_simple_vocab_16e6.txt.gz");
  command->add_option("--scheduler-config", options->scheduler_config,
                      "A diffusers scheduler_config.json to use instead of the model's");
  command->add_option("--save-steps", options->save_steps,
                      "Folder for a picture of every step (noisy latents and predicted x0), a sheet and an animation");
  command->add_option("--preview", options->preview, "How --save-steps pictures latents: linear (fast) or vae")
      ->capture_default_str();
  command->add_option("--precision", options->precision,
                      "fp32 or bf16 (default: bf16 where the CPU has AVX512_BF16 or AMX, else fp32)");
  command->add_option("--threads", options->threads, "Threads for the tensor work (default: one per core)");
  command->add_flag("--low-memory", options->low_memory, "Free the text encoder once the prompts are encoded");
  command->add_flag("--vae-tiling", options->vae_tiling,
                    "Decode large images in overlapping tiles, so memory stays that of a 512x512 decode");
  command->add_option("-o,--output", options->output, "PNG file to write")->capture_default_str();
  command->callback([options] { run_generate(*options); });
}

}  // namespace diffuse::cli
