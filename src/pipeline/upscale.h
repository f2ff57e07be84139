#pragma once
// Upscaling an image with an ESRGAN-family network as Real-ESRGAN's inference does it
// (inference_realesrgan.py with its defaults: pre_pad 0, alpha_upsampler 'realesrgan'):
// - input bytes / 255 as float32; greyscale runs as RGB (the channel three times) and the output goes
//   back to one channel with OpenCV's BGR2GRAY weights (0.299 R + 0.587 G + 0.114 B);
// - RGBA: the colours go through the net, and the alpha channel separately through the same net as a
//   grey image (same tiling), reduced to one channel by the same weights; grey+alpha is read as RGBA
//   (as OpenCV reads it) and written as RGBA;
// - nets that pixel-unshuffle their input (BasicSR's x2 and x1) get the image reflect-padded at the
//   bottom and right to a multiple of the unshuffle factor, and the output cropped back;
// - tiles (tile, tile_pad) as Real-ESRGAN's tile_process: each tile of the grid runs with tile_pad
//   pixels of context on every side (clipped to the image) and only its own part of the output is
//   kept, so memory is bounded by the tile, not the image;
// - bytes = round(clamp(v, 0, 1) * 255) with the product rounded to float32, then half to even.
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "io/upscaler_files.h"
#include "models/rrdbnet.h"
#include "pipeline/progress.h"

namespace diffuse::pipeline {

struct UpscaleOptions {
  int tile = 0;       // input pixels per tile side; 0: the whole image at once
  int tile_pad = 10;  // context around each tile, in input pixels
  // Phase::Upscale, one unit per tile per pass (the alpha channel of an RGBA image is a second pass).
  ProgressCallback progress;
};

// One tile of Real-ESRGAN's tile_process, in input pixels (after the unshuffle padding): the box whose
// output it writes, [x0, x1) x [y0, y1), and the box the net sees, grown by tile_pad and clipped.
struct UpscaleTile {
  int64_t x0, y0, x1, y1;
  int64_t padded_x0, padded_y0, padded_x1, padded_y1;
};
// Row-major over a ceil(width / tile) x ceil(height / tile) grid; one whole-image tile for tile 0.
std::vector<UpscaleTile> upscale_tiles(int64_t width, int64_t height, int tile, int tile_pad);

class NeuralUpscaler {
 public:
  // An ESRGAN-family file (io/upscaler_files.h) as `dtype` (at::kFloat, or at::kBFloat16 where
  // models::bf16_supported()). Throws diffuse::InvalidParameter naming `precision` for another type,
  // diffuse::Error naming the file or tensor otherwise.
  static NeuralUpscaler load(const std::filesystem::path& path, at::ScalarType dtype = at::kFloat);

  int scale() const { return net_->config.scale; }
  const models::RrdbNetConfig& config() const { return net_->config; }
  io::UpscalerLayout layout() const { return layout_; }
  at::ScalarType dtype() const { return dtype_; }
  // "RRDBNet x4, 23 blocks, 64 features (ESRGAN layout)", for logs.
  std::string description() const;

  // Throws diffuse::InvalidParameter naming `tile` or `tile_pad` for values this net cannot tile with
  // (negative, a tile smaller than its overlap, sizes that are not multiples of the unshuffle factor).
  void validate(const UpscaleOptions& options) const;
  // Net passes one image takes: tiles per pass, times 2 with an alpha channel.
  int units(int width, int height, int channels, const UpscaleOptions& options) const;

  // [1, num_in_ch, H, W] float in [0, 1] -> the raw net output [1, num_out_ch, H*scale, W*scale] as
  // float32, not clamped, after padding, tiling and cropping. `timer` (may be null) gets one unit per tile.
  at::Tensor run(const at::Tensor& image, const UpscaleOptions& options, PhaseTimer* timer = nullptr, int done = 0);

  struct Result {
    at::Tensor net_out;        // [1, 3, sH, sW] float32, the colour pass
    at::Tensor alpha_net_out;  // the alpha pass; undefined without alpha
    at::Tensor image;          // [sH, sW, C] float32 in [0, 1], C = 1 (grey), 3 or 4
  };
  // uint8 [H, W, C] (C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) through Real-ESRGAN's rule above.
  Result upscale(const at::Tensor& pixels, const UpscaleOptions& options);
  // The same, to bytes: uint8 [H*scale, W*scale, C] (C = 1, 3 or 4).
  at::Tensor upscale_pixels(const at::Tensor& pixels, const UpscaleOptions& options);

 private:
  NeuralUpscaler() = default;
  models::RrdbNet net_{nullptr};
  io::UpscalerLayout layout_ = io::UpscalerLayout::BasicSR;
  at::ScalarType dtype_ = at::kFloat;
};

// Float image [H, W, C] in [0, 1] -> uint8: round(v * 255.0f) in float32, half to even (numpy's round).
at::Tensor float_image_to_bytes(const at::Tensor& image);
// OpenCV 4.6's BGR2GRAY on float32 [H, W, 3] (RGB order here), bit for bit: per row, the first
// W - W % 8 pixels fma(R, .299, fma(G, .587, B * .114)), the rest fma(R, .299, fma(B, .114, G * .587)).
at::Tensor grey_from_rgb(const at::Tensor& rgb);

// Refuses an empty image, and an output wider or taller than kMaxUpscaledSide pixels or of more than
// kMaxUpscaledPixels: diffuse::Error starting with `what` (the input's name).
constexpr int64_t kMaxUpscaledSide = 32768;
constexpr int64_t kMaxUpscaledPixels = int64_t{16384} * 16384;
void check_upscale_size(int64_t width, int64_t height, int64_t out_width, int64_t out_height, const std::string& what);

}  // namespace diffuse::pipeline
