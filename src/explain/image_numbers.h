// `diffuse image-numbers`: an image is three tables of numbers (red, green, blue, 0-255 per pixel);
// through the VAE encoder it becomes four smaller tables, the latent the UNet works on.
#pragma once
#include <filesystem>
#include <string>

#include <ATen/ATen.h>

#include "pipeline/model.h"

namespace diffuse::explain {

struct ImageNumbers {
  int width = 0, height = 0;
  at::Tensor pixels;  // uint8 [H, W, 3], the whole image (gray and alpha dropped/expanded to RGB)
  at::Tensor latent;  // float [4, h, w]: the VAE encoder's mean, unscaled; undefined without a model
  double scaling_factor = 0;
};

ImageNumbers read_image_numbers(const std::filesystem::path& png);
// Encodes the image (mapped to [-1, 1]) with the model's VAE encoder and keeps the mean.
void add_latent(ImageNumbers& numbers, pipeline::StableDiffusionModel& model);

// The top-left `size` x `size` corner of each RGB table, and of each latent channel (the latent corner
// covers the same pixels: size / the VAE's downscale factor, at least 1).
std::string to_text(const ImageNumbers& numbers, int size, int vae_downscale);

}  // namespace diffuse::explain
