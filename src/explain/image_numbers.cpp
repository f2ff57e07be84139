#include "explain/image_numbers.h"

#include <iomanip>
#include <sstream>

#include "image/png_file.h"
#include "util/error.h"

namespace diffuse::explain {

namespace {

template <typename Cell>
void print_table(std::ostringstream& out, const at::Tensor& table, int rows, int columns, Cell cell) {
  for (int y = 0; y < rows; ++y) {
    out << "  ";
    for (int x = 0; x < columns; ++x) out << cell(table[y][x]);
    out << "\n";
  }
}

}  // namespace

ImageNumbers read_image_numbers(const std::filesystem::path& png) {
  const auto image = image::read_png(png);
  ImageNumbers numbers;
  numbers.width = image.width;
  numbers.height = image.height;
  auto pixels = image.pixels;
  if (image.channels <= 2) pixels = pixels.narrow(2, 0, 1).expand({image.height, image.width, 3});
  numbers.pixels = pixels.narrow(2, 0, 3).contiguous();
  return numbers;
}

void add_latent(ImageNumbers& numbers, pipeline::StableDiffusionModel& model) {
  torch::NoGradGuard no_grad;
  const int factor = model.vae_scale_factor();
  if (numbers.width % factor != 0 || numbers.height % factor != 0) {
    throw Error("image-numbers: the VAE needs a width and height divisible by " + std::to_string(factor) + ", got " +
                std::to_string(numbers.width) + "x" + std::to_string(numbers.height));
  }
  const auto image = numbers.pixels.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat) / 255.0 * 2 - 1;
  numbers.latent = model.vae->encode(image).mean[0].to(at::kFloat);
  numbers.scaling_factor = model.vae->config.scaling_factor;
}

std::string to_text(const ImageNumbers& numbers, int size, int vae_downscale) {
  std::ostringstream out;
  const int rows = std::min(size, numbers.height), columns = std::min(size, numbers.width);
  out << "Image " << numbers.width << "x" << numbers.height << ": three tables of " << numbers.height << " rows x "
      << numbers.width << " columns, 0 (dark) to 255 (bright). Top-left " << rows << "x" << columns << ":\n";
  const char* names[] = {"red", "green", "blue"};
  for (int c = 0; c < 3; ++c) {
    out << "\n" << names[c] << "\n";
    print_table(out, numbers.pixels.select(2, c), rows, columns,
                [](const at::Tensor& v) {
                  std::ostringstream cell;
                  cell << std::setw(4) << static_cast<int>(v.item<uint8_t>());
                  return cell.str();
                });
  }
  if (numbers.latent.defined()) {
    const int lr = std::min<int>(std::max(1, rows / vae_downscale), static_cast<int>(numbers.latent.size(1)));
    const int lc = std::min<int>(std::max(1, columns / vae_downscale), static_cast<int>(numbers.latent.size(2)));
    out << "\nLatent (VAE encoder mean): " << numbers.latent.size(0) << " channels of " << numbers.latent.size(1)
        << "x" << numbers.latent.size(2) << ", one number per " << vae_downscale << "x" << vae_downscale
        << " pixels. The UNet sees these times the scaling factor " << numbers.scaling_factor << ". Top-left "
        << lr << "x" << lc << ":\n";
    for (int64_t c = 0; c < numbers.latent.size(0); ++c) {
      out << "\nchannel " << c << "\n";
      print_table(out, numbers.latent[c], lr, lc, [](const at::Tensor& v) {
        std::ostringstream cell;
        cell << std::fixed << std::setprecision(3) << std::setw(8) << v.item<float>();
        return cell.str();
      });
    }
  }
  return out.str();
}

}  // namespace diffuse::explain
