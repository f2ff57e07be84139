// Image/caption pairs to train on: a folder in the usual fine-tuning layout, or the built-in
// synthetic `shapes` set (train/shapes_dataset.h).
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace diffuse::train {

struct Dataset {
  at::Tensor images;                  // float [N, 3, S, S] in [-1, 1]
  std::vector<std::string> captions;  // N
  std::string description;            // for logs and the training record
};

using WarningSink = std::function<void(const std::string&)>;

// Every `NAME.png` in `folder` with its caption in `NAME.txt`. Policy, so that any folder either
// loads or fails with one message naming the file:
//  - no PNG at all, a PNG without its .txt, an empty caption, or an unreadable PNG: diffuse::Error;
//  - other files (non-PNG images, stray .txt without an image) are skipped with a warning;
//  - every image is centre-cropped to a square and resized to `size` (so mixed sizes are fine);
//    grey becomes RGB and alpha is dropped.
Dataset load_image_folder(const std::filesystem::path& folder, int size, const WarningSink& warn);

// uint8 [H, W, C] (C = 1..4) to float [3, size, size] in [-1, 1], as load_image_folder prepares images.
at::Tensor prepare_image(const at::Tensor& pixels, int size);

}  // namespace diffuse::train
