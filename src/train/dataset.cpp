#include "train/dataset.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <torch/torch.h>

#include "image/png_file.h"
#include "util/error.h"

namespace diffuse::train {

namespace fs = std::filesystem;

namespace {

std::string read_caption(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(path.string() + ": cannot read the caption");
  std::stringstream text;
  text << in.rdbuf();
  std::string caption = text.str();
  // Captions are one line in the usual layout; newlines would only split the prompt oddly.
  std::replace(caption.begin(), caption.end(), '\n', ' ');
  std::replace(caption.begin(), caption.end(), '\r', ' ');
  const auto first = caption.find_first_not_of(" \t");
  if (first == std::string::npos) throw Error(path.string() + ": the caption is empty");
  return caption.substr(first, caption.find_last_not_of(" \t") - first + 1);
}

}  // namespace

at::Tensor prepare_image(const at::Tensor& pixels, int size) {
  auto image = pixels.to(at::kFloat).permute({2, 0, 1});  // [C, H, W]
  const auto channels = image.size(0);
  if (channels <= 2) image = image.narrow(0, 0, 1).expand({3, image.size(1), image.size(2)});
  if (channels == 4) image = image.narrow(0, 0, 3);
  const int64_t side = std::min(image.size(1), image.size(2));
  image = image.narrow(1, (image.size(1) - side) / 2, side).narrow(2, (image.size(2) - side) / 2, side);
  if (side != size) {
    namespace F = torch::nn::functional;
    // Area averaging when shrinking keeps thin lines; bilinear when enlarging.
    auto options = F::InterpolateFuncOptions().size(std::vector<int64_t>{size, size});
    if (side > size) {
      options.mode(torch::kArea);
    } else {
      options.mode(torch::kBilinear).align_corners(false);
    }
    image = F::interpolate(image.unsqueeze(0), options).squeeze(0);
  }
  return (image / 127.5 - 1.0).clamp(-1, 1).contiguous();
}

Dataset load_image_folder(const fs::path& folder, int size, const WarningSink& warn) {
  if (!fs::is_directory(folder)) throw Error(folder.string() + ": not a folder");
  std::vector<fs::path> images;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (!entry.is_regular_file()) continue;
    auto extension = entry.path().extension().string();
    std::transform(extension.begin(), extension.end(), extension.begin(), ::tolower);
    if (extension == ".png") {
      images.push_back(entry.path());
    } else if (extension == ".txt") {
      auto image = entry.path();
      if (!fs::exists(image.replace_extension(".png"))) {
        warn(entry.path().string() + ": caption without a .png image; skipped");
      }
    } else {
      warn(entry.path().string() + ": not a PNG image; skipped (only .png is read)");
    }
  }
  if (images.empty()) throw Error(folder.string() + ": no .png images to train on");
  std::sort(images.begin(), images.end());  // directory order varies; the seed must not
  Dataset data;
  std::vector<at::Tensor> tensors;
  for (const auto& path : images) {
    auto caption_path = path;
    caption_path.replace_extension(".txt");
    if (!fs::exists(caption_path)) {
      throw Error(path.string() + ": no caption (expected " + caption_path.filename().string() + " beside it)");
    }
    data.captions.push_back(read_caption(caption_path));
    tensors.push_back(prepare_image(image::read_png(path).pixels, size));
  }
  data.images = at::stack(tensors);
  data.description = folder.string() + " (" + std::to_string(images.size()) + " images)";
  return data;
}

}  // namespace diffuse::train
