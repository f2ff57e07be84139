#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <memory>
#include <thread>

#include "cli/commands.h"
#include "cli/progress_line.h"
#include "image/png_file.h"
#include "image/resize.h"
#include "pipeline/model.h"
#include "pipeline/upscale.h"
#include "util/error.h"
#include "util/threads.h"

namespace diffuse::cli {

namespace {

namespace fs = std::filesystem;

struct UpscaleCommandOptions {
  std::string input;
  std::string output;
  std::string model;
  double scale = 0;  // 0: not given
  int tile = 0;
  int tile_pad = 10;
  std::string precision = "fp32";
  int threads = 0;
};

// Bad paths fail before a model is read.
void check_paths(const UpscaleCommandOptions& o) {
  if (!fs::is_regular_file(o.input)) throw Error(o.input + ": no such file");
  const fs::path output(o.output);
  if (output.extension() != ".png") throw InvalidParameter("output", "'" + o.output + "' must end in .png");
  const auto folder = output.parent_path().empty() ? fs::path(".") : output.parent_path();
  if (!fs::is_directory(folder)) throw InvalidParameter("output", "folder '" + folder.string() + "' does not exist");
}

// AUTOMATIC1111's Lanczos / Nearest upscalers: one Pillow resize to int(side * scale).
at::Tensor classic_upscale(const UpscaleCommandOptions& o, image::ResampleFilter filter, const image::PngImage& input) {
  if (o.scale == 0) {
    throw InvalidParameter("scale", std::string(image::resample_filter_name(filter)) + " needs the factor to resize by (--scale 2)");
  }
  if (!(o.scale > 0) || !std::isfinite(o.scale)) throw InvalidParameter("scale", std::to_string(o.scale) + " must be above 0");
  const double width = std::floor(input.width * o.scale), height = std::floor(input.height * o.scale);
  const double representable = 1e15;  // any factor that large is refused below, without overflowing
  pipeline::check_upscale_size(input.width, input.height, static_cast<int64_t>(std::min(width, representable)),
                               static_cast<int64_t>(std::min(height, representable)), o.input);
  return image::resize_like_pillow(input.pixels, static_cast<int>(width), static_cast<int>(height), filter);
}

at::Tensor neural_upscale(const UpscaleCommandOptions& o, const image::PngImage& input, ProgressLine& progress) {
  auto upscaler = pipeline::NeuralUpscaler::load(o.model, pipeline::dtype_from_name(o.precision));
  if (o.scale != 0 && o.scale != upscaler.scale()) {
    char given[32];
    std::snprintf(given, sizeof given, "%g", o.scale);
    throw InvalidParameter("scale", std::string("x") + given + " is not this model's scale: " + o.model + " upscales x" +
                                        std::to_string(upscaler.scale()));
  }
  pipeline::UpscaleOptions options;
  options.tile = o.tile;
  options.tile_pad = o.tile_pad;
  upscaler.validate(options);
  pipeline::check_upscale_size(input.width, input.height, int64_t{input.width} * upscaler.scale(),
                               int64_t{input.height} * upscaler.scale(), o.input);
  progress.print("upscaling with " + upscaler.description() + ", " + pipeline::dtype_name(upscaler.dtype()));
  options.progress = [&progress](const pipeline::Progress& p) { return progress(p); };
  return upscaler.upscale_pixels(input.pixels, options);
}

void run_upscale(const UpscaleCommandOptions& o) {
  check_paths(o);
  const auto started = std::chrono::steady_clock::now();
  const auto input = image::read_png(o.input);
  if (input.width < 1 || input.height < 1) throw Error(o.input + ": the image has no pixels");
  set_cpu_threads(o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  ProgressLine progress;
  at::Tensor pixels;
  if (const auto filter = image::resample_filter_named(o.model)) {
    if (o.tile != 0) progress.print("warning: --tile is for neural upscalers; " + o.model + " ignores it");
    pixels = classic_upscale(o, *filter, input);
  } else {
    if (!fs::is_regular_file(o.model)) {
      throw InvalidParameter("model", "'" + o.model + "' is neither lanczos, nearest nor an upscaler file that exists");
    }
    pixels = neural_upscale(o, input, progress);
  }
  image::write_png(o.output, pixels);  // through a temporary file: never a half-written image
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  char line[96];
  std::snprintf(line, sizeof line, " (%lldx%lld) in %.1f s", static_cast<long long>(pixels.size(1)),
                static_cast<long long>(pixels.size(0)), seconds);
  progress.print("wrote " + o.output + line);
}

}  // namespace

void add_upscale_command(CLI::App& app) {
  auto options = std::make_shared<UpscaleCommandOptions>();
  auto* command = app.add_subcommand("upscale", "Enlarge an image with an ESRGAN-family network, Lanczos or nearest");
  command->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  command->add_option("input", options->input, "PNG to enlarge (RGB, greyscale, with or without alpha)")->required();
  command->add_option("-o,--output", options->output, "PNG to write")->required();
  command->add_option("-m,--model", options->model,
                      "Upscaler: an ESRGAN / Real-ESRGAN file (.pth or .safetensors), or lanczos or nearest")
      ->required();
  command->add_option("--scale", options->scale,
                      "Factor for lanczos and nearest (output side = int(side * scale)); a network's own scale otherwise");
  command->add_option("--tile", options->tile, "Input pixels per tile side, bounding memory (0: the whole image at once)")
      ->capture_default_str();
  command->add_option("--tile-pad", options->tile_pad, "Context pixels around each tile")->capture_default_str();
  command->add_option("--precision", options->precision, "fp32 (the reference numbers) or bf16 (AVX-512 CPUs)")
      ->capture_default_str();
  command->add_option("--threads", options->threads, "Threads for the tensor work (default: one per core)");
  command->callback([options] { run_upscale(*options); });
}

}  // namespace diffuse::cli
