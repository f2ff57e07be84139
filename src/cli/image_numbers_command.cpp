#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "explain/image_numbers.h"
#include "util/error.h"

namespace diffuse::cli {

namespace {

struct ImageNumbersOptions {
  std::string image;
  std::string model;
  int size = 8;
};

void run_image_numbers(const ImageNumbersOptions& o) {
  if (o.size < 1) throw Error("--size: " + std::to_string(o.size) + " must be at least 1");
  auto numbers = explain::read_image_numbers(o.image);
  int downscale = 8;
  if (!o.model.empty()) {
    auto model = pipeline::StableDiffusionModel::load(o.model);
    downscale = model.vae_scale_factor();
    explain::add_latent(numbers, model);
  }
  std::fputs(explain::to_text(numbers, o.size, downscale).c_str(), stdout);
}

}  // namespace

void add_image_numbers_command(CLI::App& app) {
  auto options = std::make_shared<ImageNumbersOptions>();
  auto* command = app.add_subcommand(
      "image-numbers", "Print a corner of an image as its RGB tables and, with a model, as its latent");
  command->add_option("image", options->image, "PNG file")->required();
  command->add_option("-m,--model", options->model, "Model whose VAE encoder makes the latent");
  command->add_option("--size", options->size, "Rows and columns of the corner")->capture_default_str();
  command->callback([options] { run_image_numbers(*options); });
}

}  // namespace diffuse::cli
