#include "pipeline/upscale.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "models/kernel_options.h"
#include "models/parameter_init.h"
#include "models/weights.h"
#include "util/error.h"

namespace diffuse::pipeline {

namespace {

std::string upscale_size_text(int64_t width, int64_t height) { return std::to_string(width) + "x" + std::to_string(height); }

// uint8 -> float32 as numpy's `img.astype(np.float32) / 255`: a float32 division, which differs from a
// multiplication by 1/255 in the last bit for some bytes.
at::Tensor bytes_to_unit_floats(const at::Tensor& bytes) {
  std::array<float, 256> table;
  for (int v = 0; v < 256; ++v) table[v] = static_cast<float>(v) / 255.0f;
  const auto source = bytes.contiguous();
  auto out = at::empty(source.sizes(), at::kFloat);
  const uint8_t* in = source.data_ptr<uint8_t>();
  float* to = out.data_ptr<float>();
  for (int64_t i = 0, n = source.numel(); i < n; ++i) to[i] = table[in[i]];
  return out;
}

// [H, W] plane -> [1, 3, H, W], the plane three times (OpenCV's GRAY2RGB).
at::Tensor plane_as_rgb(const at::Tensor& plane) { return plane.unsqueeze(0).expand({3, -1, -1}).unsqueeze(0).contiguous(); }

// Bottom / right padding to a multiple of `factor`: torch's 'reflect' (the edge pixel not repeated),
// or the edge repeated on a side too short to reflect (1 pixel for factor 2).
at::Tensor pad_to_multiple(const at::Tensor& x, int factor) {
  const int64_t pad_h = (factor - x.size(2) % factor) % factor, pad_w = (factor - x.size(3) % factor) % factor;
  if (pad_h == 0 && pad_w == 0) return x;
  if (pad_h < x.size(2) && pad_w < x.size(3)) return at::reflection_pad2d(x, {0, pad_w, 0, pad_h});
  return at::replication_pad2d(x, {0, pad_w, 0, pad_h});
}

int tiles_along(int64_t size, int tile) { return tile > 0 ? static_cast<int>((size + tile - 1) / tile) : 1; }

}  // namespace

void check_upscale_size(int64_t width, int64_t height, int64_t out_width, int64_t out_height, const std::string& what) {
  if (width < 1 || height < 1) throw Error(what + ": the image has no pixels (" + upscale_size_text(width, height) + ")");
  if (out_width > kMaxUpscaledSide || out_height > kMaxUpscaledSide || out_width < 1 || out_height < 1) {
    throw Error(what + ": " + upscale_size_text(width, height) + " upscaled is " + upscale_size_text(out_width, out_height) +
                ", more than the " + std::to_string(kMaxUpscaledSide) + " pixels a side an output may have");
  }
  if (out_width * out_height > kMaxUpscaledPixels) {
    throw Error(what + ": " + upscale_size_text(width, height) + " upscaled is " + upscale_size_text(out_width, out_height) +
                ", more than the " + std::to_string(kMaxUpscaledPixels / 1000000) + " megapixels an output may have");
  }
}

at::Tensor float_image_to_bytes(const at::Tensor& image) {
  const auto source = image.to(at::kFloat).contiguous();
  auto bytes = at::empty(source.sizes(), at::kByte);
  const float* in = source.data_ptr<float>();
  uint8_t* out = bytes.data_ptr<uint8_t>();
  for (int64_t i = 0, n = source.numel(); i < n; ++i) {
    const float product = in[i] * 255.0f;  // rounded to float32 before the rounding to an integer
    const float rounded = std::nearbyint(product);  // the default rounding mode: half to even
    out[i] = static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, rounded)));
  }
  return bytes;
}

at::Tensor grey_from_rgb(const at::Tensor& rgb) {
  if (rgb.dim() != 3 || rgb.size(2) != 3) throw Error("grey_from_rgb: expected [H, W, 3], got " + c10::str(rgb.sizes()));
  const auto source = rgb.to(at::kFloat).contiguous();
  const int64_t height = source.size(0), width = source.size(1);
  auto grey = at::empty({height, width, 1}, at::kFloat);
  const float* in = source.data_ptr<float>();
  float* out = grey.data_ptr<float>();
  // OpenCV's AVX2 path does 8 pixels at a time and its scalar tail sums in another order.
  const int64_t vector_part = width - width % 8;
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      const float* p = in + (y * width + x) * 3;
      const float r = p[0], g = p[1], b = p[2];
      out[y * width + x] = x < vector_part ? std::fma(r, 0.299f, std::fma(g, 0.587f, b * 0.114f))
                                           : std::fma(r, 0.299f, std::fma(b, 0.114f, g * 0.587f));
    }
  }
  return grey;
}

std::vector<UpscaleTile> upscale_tiles(int64_t width, int64_t height, int tile, int tile_pad) {
  if (tile <= 0) return {{0, 0, width, height, 0, 0, width, height}};
  std::vector<UpscaleTile> tiles;
  for (int ty = 0; ty < tiles_along(height, tile); ++ty) {
    for (int tx = 0; tx < tiles_along(width, tile); ++tx) {
      UpscaleTile t;
      t.x0 = int64_t{tx} * tile;
      t.x1 = std::min<int64_t>(t.x0 + tile, width);
      t.y0 = int64_t{ty} * tile;
      t.y1 = std::min<int64_t>(t.y0 + tile, height);
      t.padded_x0 = std::max<int64_t>(t.x0 - tile_pad, 0);
      t.padded_x1 = std::min<int64_t>(t.x1 + tile_pad, width);
      t.padded_y0 = std::max<int64_t>(t.y0 - tile_pad, 0);
      t.padded_y1 = std::min<int64_t>(t.y1 + tile_pad, height);
      tiles.push_back(t);
    }
  }
  return tiles;
}

NeuralUpscaler NeuralUpscaler::load(const std::filesystem::path& path, at::ScalarType dtype) {
  if (dtype != at::kFloat && dtype != at::kBFloat16) throw InvalidParameter("precision", "only fp32 and bf16 are supported");
  if (dtype == at::kBFloat16 && !models::bf16_supported()) {
    throw InvalidParameter("precision", "bf16 needs a CPU with AVX-512 (this one's class is " +
                                            models::cpu_class_name(models::kernel_options().cpu) + "): use fp32");
  }
  auto file = io::load_upscaler_file(path, dtype);
  const auto config = models::RrdbNetConfig::infer(file.tensors, file.source);
  if (config.num_in_ch != 3 || config.num_out_ch != 3) {
    throw Error(file.source + ": an RRDBNet of " + std::to_string(config.num_out_ch) +
                " channels; images are upscaled by 3-channel (RGB) nets");
  }
  NeuralUpscaler upscaler;
  upscaler.layout_ = file.layout;
  upscaler.dtype_ = dtype;
  upscaler.net_ = models::make_for_loading<models::RrdbNet>(config, dtype);
  models::load_weights(*upscaler.net_, file.tensors, {file.source, file.file_names, {}});
  upscaler.net_->eval();
  // 64 channels at up to 4x the image size, as TAESD's decoder: oneDNN runs these convolutions on
  // channels-last activations without reordering them around every layer.
  for (auto& parameter : upscaler.net_->parameters()) {
    if (parameter.dim() == 4) parameter.set_data(parameter.contiguous(at::MemoryFormat::ChannelsLast));
  }
  return upscaler;
}

std::string NeuralUpscaler::description() const {
  const auto& c = config();
  return "RRDBNet x" + std::to_string(c.scale) + ", " + std::to_string(c.num_block) + " blocks, " +
         std::to_string(c.num_feat) + " features (" + io::upscaler_layout_name(layout_) + " layout)";
}

void NeuralUpscaler::validate(const UpscaleOptions& options) const {
  if (options.tile < 0) throw InvalidParameter("tile", std::to_string(options.tile) + " must not be negative (0: no tiles)");
  if (options.tile_pad < 0) throw InvalidParameter("tile_pad", std::to_string(options.tile_pad) + " must not be negative");
  if (options.tile == 0) return;
  if (options.tile < options.tile_pad) {
    throw InvalidParameter("tile", std::to_string(options.tile) + " is smaller than its overlap (tile_pad " +
                                       std::to_string(options.tile_pad) + ")");
  }
  const int factor = config().unshuffle_factor();
  if (factor > 1) {
    const auto multiple = [&](const char* name, int value) {
      if (value % factor != 0) {
        throw InvalidParameter(name, std::to_string(value) + " is not a multiple of " + std::to_string(factor) + ": this x" +
                                         std::to_string(scale()) + " net pixel-unshuffles its input by " + std::to_string(factor));
      }
    };
    multiple("tile", options.tile);
    multiple("tile_pad", options.tile_pad);
  }
}

int NeuralUpscaler::units(int width, int height, int channels, const UpscaleOptions& options) const {
  const int factor = config().unshuffle_factor();
  const int64_t padded_w = (width + factor - 1) / factor * factor, padded_h = (height + factor - 1) / factor * factor;
  const int passes = channels == 2 || channels == 4 ? 2 : 1;
  return passes * tiles_along(padded_w, options.tile) * tiles_along(padded_h, options.tile);
}

at::Tensor NeuralUpscaler::run(const at::Tensor& image, const UpscaleOptions& options, PhaseTimer* timer, int done) {
  validate(options);
  torch::NoGradGuard no_grad;
  const int s = scale();
  const int64_t height = image.size(2), width = image.size(3);
  const auto padded = pad_to_multiple(image, config().unshuffle_factor());
  const auto net = [&](const at::Tensor& input) { return net_->forward(input.to(dtype_)).to(at::kFloat); };
  // Each tile writes only its own box of the output: the overlap is context, never blended.
  auto output = at::empty({1, config().num_out_ch, padded.size(2) * s, padded.size(3) * s}, at::kFloat);
  for (const auto& t : upscale_tiles(padded.size(3), padded.size(2), options.tile, options.tile_pad)) {
    const auto tile_out = net(padded.slice(2, t.padded_y0, t.padded_y1).slice(3, t.padded_x0, t.padded_x1));
    output.slice(2, t.y0 * s, t.y1 * s)
        .slice(3, t.x0 * s, t.x1 * s)
        .copy_(tile_out.slice(2, (t.y0 - t.padded_y0) * s, (t.y1 - t.padded_y0) * s)
                   .slice(3, (t.x0 - t.padded_x0) * s, (t.x1 - t.padded_x0) * s));
    if (timer) timer->report(++done);
  }
  return output.slice(2, 0, height * s).slice(3, 0, width * s).contiguous();
}

NeuralUpscaler::Result NeuralUpscaler::upscale(const at::Tensor& pixels, const UpscaleOptions& options) {
  if (pixels.dim() != 3 || pixels.scalar_type() != at::kByte || pixels.size(2) < 1 || pixels.size(2) > 4) {
    throw Error("upscale: expected uint8 pixels [H, W, 1..4], got " + c10::str(pixels.sizes()));
  }
  validate(options);
  const int64_t height = pixels.size(0), width = pixels.size(1), channels = pixels.size(2);
  check_upscale_size(width, height, width * scale(), height * scale(), "upscale");
  const auto unit = bytes_to_unit_floats(pixels);  // [H, W, C]
  const bool has_alpha = channels == 2 || channels == 4;
  const auto colour = channels <= 2 ? plane_as_rgb(unit.select(2, 0))
                                    : unit.narrow(2, 0, 3).permute({2, 0, 1}).unsqueeze(0).contiguous();
  PhaseTimer timer(options.progress, Phase::Upscale,
                   units(static_cast<int>(width), static_cast<int>(height), static_cast<int>(channels), options));
  timer.report(0);
  Result result;
  result.net_out = run(colour, options, &timer);
  const auto rgb = result.net_out.clamp(0, 1)[0].permute({1, 2, 0}).contiguous();  // [sH, sW, 3]
  if (!has_alpha) {
    result.image = channels == 1 ? grey_from_rgb(rgb) : rgb;
    return result;
  }
  const int colour_units = units(static_cast<int>(width), static_cast<int>(height), 1, options);
  result.alpha_net_out = run(plane_as_rgb(unit.select(2, channels - 1)), options, &timer, colour_units);
  const auto alpha = grey_from_rgb(result.alpha_net_out.clamp(0, 1)[0].permute({1, 2, 0}).contiguous());
  result.image = at::cat({rgb, alpha}, 2).contiguous();
  return result;
}

at::Tensor NeuralUpscaler::upscale_pixels(const at::Tensor& pixels, const UpscaleOptions& options) {
  return float_image_to_bytes(upscale(pixels, options).image);
}

}  // namespace diffuse::pipeline
