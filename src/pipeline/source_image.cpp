#include "pipeline/source_image.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "util/error.h"
#include "util/format.h"

namespace diffuse::pipeline {

namespace {

// AUTOMATIC1111's denoising strength default.
constexpr double kDefaultStrength = 0.75;
constexpr double kMaxMaskBlur = 64;
constexpr int kMaxOutpaint = 4096;

std::string size_text(int64_t width, int64_t height) { return std::to_string(width) + "x" + std::to_string(height); }

void check_pixels(const char* parameter, const at::Tensor& pixels) {
  if (pixels.dim() != 3 || pixels.scalar_type() != at::kByte || pixels.size(2) < 1 || pixels.size(2) > 4) {
    throw InvalidParameter(parameter, "expected 8-bit pixels [height, width, 1-4 channels], got " +
                                          std::string(pixels.toString()) + " " + c10::str(pixels.sizes()));
  }
  if (pixels.size(0) < 1 || pixels.size(1) < 1) throw InvalidParameter(parameter, "the image is empty");
}

int round_down(int value, int grid) { return value / grid * grid; }
int round_up(int value, int grid) { return (value + grid - 1) / grid * grid; }

// The mask at the init image's size, 0-255 grey: the given one, or (outpainting alone) all kept.
at::Tensor grey_mask(const ResolvedRequest& request) {
  const int64_t height = request.init_image.size(0), width = request.init_image.size(1);
  if (!request.mask.defined()) return at::zeros({height, width, 1}, at::kByte);
  const at::Tensor grey = image::to_grey(request.mask).unsqueeze(2);
  return image::resize(grey, static_cast<int>(width), static_cast<int>(height));
}

constexpr OutpaintFill kOutpaintFills[] = {OutpaintFill::Edge, OutpaintFill::Noise};

OutpaintFill parse_outpaint_fill(const std::string& name) {
  std::string known;
  for (const auto fill : kOutpaintFills) {
    if (name == outpaint_fill_name(fill)) return fill;
    known += std::string(known.empty() ? "" : ", ") + outpaint_fill_name(fill);
  }
  throw InvalidParameter("outpaint_fill", "'" + name + "' is not one of " + known);
}

// The init image on its outpainting canvas, with the canvas's mask (255 in the new area, and
// mask_blur pixels into the old image along each side that grew, so the seam is repainted too).
std::pair<at::Tensor, at::Tensor> outpainted(const ResolvedRequest& request, at::Tensor rgb, at::Tensor mask) {
  const image::Padding& pad = *request.outpaint;
  if (request.outpaint_fill == OutpaintFill::Noise) {
    // Its own generator: the run's draws stay in the reference order.
    auto generator = at::make_generator<at::CPUGeneratorImpl>(request.seed);
    at::Tensor canvas = at::randint(0, 256, {rgb.size(0) + pad.top + pad.bottom, rgb.size(1) + pad.left + pad.right, 3},
                                    generator, at::kLong)
                            .to(at::kByte);
    canvas.narrow(0, pad.top, rgb.size(0)).narrow(1, pad.left, rgb.size(1)).copy_(rgb);
    rgb = canvas;
  } else {
    rgb = image::pad_edge(rgb, pad);
  }
  mask = image::pad_constant(mask, pad, 255);
  const auto overlap = static_cast<int64_t>(std::ceil(request.mask_blur));
  const int64_t height = mask.size(0), width = mask.size(1);
  const auto fill_rows = [&](int64_t from, int64_t count) { mask.narrow(0, from, std::min(count, height - from)).fill_(255); };
  const auto fill_columns = [&](int64_t from, int64_t count) { mask.narrow(1, from, std::min(count, width - from)).fill_(255); };
  if (overlap > 0) {
    if (pad.top > 0) fill_rows(pad.top, overlap);
    if (pad.bottom > 0) fill_rows(std::max<int64_t>(0, height - pad.bottom - overlap), overlap);
    if (pad.left > 0) fill_columns(pad.left, overlap);
    if (pad.right > 0) fill_columns(std::max<int64_t>(0, width - pad.right - overlap), overlap);
  }
  return {rgb, mask};
}

}  // namespace

void validate_source(const GenerationRequest& request, ResolvedRequest& resolved) {
  const bool has_image = request.init_image.defined();
  if (!has_image) {
    if (request.strength) throw InvalidParameter("strength", "applies only with an init image");
    if (request.mask.defined()) throw InvalidParameter("mask", "needs an init image to repaint");
    if (request.outpaint) throw InvalidParameter("outpaint", "needs an init image to extend");
    return;
  }
  check_pixels("init_image", request.init_image);
  resolved.init_image = request.init_image;
  resolved.strength = request.strength.value_or(kDefaultStrength);
  resolved.first_step = sampling::first_step_for_strength(resolved.sampler.steps, resolved.strength);
  if (request.mask.defined()) {
    check_pixels("mask", request.mask);
    resolved.mask = request.mask;
  }
  if (!std::isfinite(request.mask_blur) || request.mask_blur < 0 || request.mask_blur > kMaxMaskBlur) {
    throw InvalidParameter("mask_blur", format_number(request.mask_blur) + " is outside 0.." + format_number(kMaxMaskBlur));
  }
  resolved.mask_blur = request.mask_blur;
  if (request.outpaint) {
    const auto& pad = *request.outpaint;
    for (const int side : {pad.left, pad.right, pad.top, pad.bottom}) {
      if (side < 0 || side > kMaxOutpaint) {
        throw InvalidParameter("outpaint", std::to_string(side) + " pixels is outside 0.." + std::to_string(kMaxOutpaint));
      }
    }
    if (pad.empty()) throw InvalidParameter("outpaint", "adds nothing: give at least one side more than 0 pixels");
    resolved.outpaint = pad;
    resolved.outpaint_fill = parse_outpaint_fill(request.outpaint_fill);
  }
}

void size_from_source(ResolvedRequest& resolved, int grid) {
  if (!resolved.has_init_image()) return;
  int width = static_cast<int>(resolved.init_image.size(1));
  int height = static_cast<int>(resolved.init_image.size(0));
  if (resolved.outpaint) {
    auto& pad = *resolved.outpaint;
    // Only a canvas the UNet can take; the right and bottom absorb the difference.
    if (resolved.width == 0) pad.right += round_up(width + pad.left + pad.right, grid) - (width + pad.left + pad.right);
    if (resolved.height == 0) pad.bottom += round_up(height + pad.top + pad.bottom, grid) - (height + pad.top + pad.bottom);
    width += pad.left + pad.right;
    height += pad.top + pad.bottom;
  }
  const int source_width = width, source_height = height;
  if (resolved.width == 0) resolved.width = std::max(grid, round_down(width, grid));
  if (resolved.height == 0) resolved.height = std::max(grid, round_down(height, grid));
  if (resolved.width != source_width || resolved.height != source_height) {
    resolved.warnings.push_back(std::string(resolved.outpaint ? "the outpainted canvas " : "the init image ") +
                                size_text(source_width, source_height) + " is resized to " +
                                size_text(resolved.width, resolved.height) +
                                " (sizes are multiples of " + std::to_string(grid) + " for this model, or as asked)");
  }
}

void prepare_source(ResolvedRequest& resolved, bool repaints_everything) {
  if (!resolved.has_init_image()) return;
  at::Tensor rgb = image::to_rgb(resolved.init_image);
  at::Tensor mask = grey_mask(resolved);
  if (resolved.outpaint) std::tie(rgb, mask) = outpainted(resolved, rgb, mask);
  if (!resolved.inpainting() && repaints_everything) mask.fill_(255);
  rgb = image::resize(rgb, resolved.width, resolved.height);
  mask = image::resize(mask, resolved.width, resolved.height);

  SourceImage& source = resolved.source;
  source.pixels = rgb;
  // diffusers' VaeImageProcessor: / 255 in float32, then 2x - 1.
  source.image = (rgb.to(at::kFloat) / 255.0f).permute({2, 0, 1}).unsqueeze(0).contiguous() * 2.0f - 1.0f;
  if (resolved.inpainting() || repaints_everything) {
    // Its mask processor: / 255, then binarized at 0.5.
    const at::Tensor unit = mask.select(2, 0).to(at::kFloat) / 255.0f;
    const at::Tensor binary = (unit >= 0.5f).to(at::kFloat);
    source.mask = binary.unsqueeze(0).unsqueeze(0).contiguous();
    source.paste_mask = image::blur_mask(binary, resolved.mask_blur);
  }
}

const char* outpaint_fill_name(OutpaintFill fill) {
  switch (fill) {
    case OutpaintFill::Edge: return "edge";
    case OutpaintFill::Noise: return "noise";
  }
  return "?";
}

}  // namespace diffuse::pipeline
