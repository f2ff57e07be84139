// Animated PNG (APNG): every browser, and so a rendered Markdown page, plays it; viewers that know only
// PNG show the first frame. Used to show a generation denoising step by step.
#pragma once
#include <filesystem>
#include <vector>

#include <ATen/ATen.h>

namespace diffuse::image {

// Writes `frames` (each uint8 [H, W, 3], all the same size, at least one) as an APNG that loops
// forever, showing each frame for `frame_ms` milliseconds and the last one for `last_frame_ms`.
// Written to a temporary file renamed over `path` when complete. Throws diffuse::Error naming the path.
void write_animated_png(const std::filesystem::path& path, const std::vector<at::Tensor>& frames, int frame_ms,
                        int last_frame_ms);

struct AnimatedPng {
  int declared_frames = 0;           // acTL's num_frames
  std::vector<at::Tensor> frames;    // uint8 [H, W, C], decoded by libpng
  std::vector<int> delays_ms;
};

// Reads every frame of an APNG whose frames cover the whole canvas (as write_animated_png makes them):
// each frame's data is rewrapped as a plain PNG and decoded by libpng, so a damaged frame fails as a PNG
// would. Throws diffuse::Error naming the path for a file that is not an APNG or is damaged.
AnimatedPng read_animated_png(const std::filesystem::path& path);

}  // namespace diffuse::image
