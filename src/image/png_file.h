// PNG files with text chunks: where generated images and their generation parameters go.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

namespace diffuse::image {

// Writes `pixels` (uint8 [H, W, C], C = 3 for RGB, also 1 gray or 4 RGBA) as an 8-bit PNG.
// Each text chunk (key, UTF-8 value) becomes tEXt when the value fits Latin-1, iTXt otherwise, as
// PIL (and so AUTOMATIC1111, which stores its generation info under "parameters") does.
// The PNG goes to a temporary file in the same folder that is renamed over `path` when complete,
// so a failure never leaves a half-written image. Throws diffuse::Error naming the path.
void write_png(const std::filesystem::path& path, const at::Tensor& pixels,
               const std::vector<std::pair<std::string, std::string>>& text_chunks = {});

// The same PNG as bytes in memory (what the server sends as base64). Throws diffuse::Error.
std::string encode_png(const at::Tensor& pixels, const std::vector<std::pair<std::string, std::string>>& text_chunks = {});

struct PngImage {
  int width = 0;
  int height = 0;
  int channels = 0;                        // 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
  at::Tensor pixels;                       // uint8 [height, width, channels]
  std::map<std::string, std::string> text; // tEXt / zTXt / iTXt chunks, values as UTF-8
};

// Reads any PNG as 8 bits per channel: palettes expand to RGB (RGBA with transparency), low bit
// depths to 8, 16-bit samples scale to 8. Throws diffuse::Error naming the path for a file that
// is missing, not a PNG, or damaged.
PngImage read_png(const std::filesystem::path& path);

// A PNG held in memory (an upload); `name` starts every error message (the JSON field, say).
PngImage decode_png(const std::string& bytes, const std::string& name);

}  // namespace diffuse::image
