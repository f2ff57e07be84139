#pragma once
// The one progress and cancellation channel of a generation, shared by every front end: the CLI
// prints it, the server streams it, --save-steps draws the latents it carries.
#include <chrono>
#include <functional>

#include <ATen/ATen.h>

#include "util/error.h"

namespace diffuse::pipeline {

enum class Phase { Load, Encode, Denoise, Decode, Upscale };
const char* phase_name(Phase phase);  // "loading", "encoding", "denoising", "decoding", "upscaling"

struct Progress {
  Phase phase;
  int done;   // units of the phase finished: components loaded, prompts encoded, steps, tiles
  int total;  // units in the phase
  int image = 0;   // 0-based index of the image in its batch (0 while loading)
  int images = 1;  // images in the batch
  double elapsed_seconds = 0;  // since the phase began (for this image)
  // Seconds the phase still needs at the pace of its units so far; negative until one is done.
  double eta_seconds = -1;
  // Denoise, after a step: the sampler's latents and its predicted clean latents (x0), in the
  // sampler's scaled latent space. Null otherwise.
  const at::Tensor* latents = nullptr;
  const at::Tensor* denoised = nullptr;
};

// Called when a phase begins (done 0) and after every unit. Returning false cancels the run: the
// pipeline then throws Cancelled at the next unit's end.
using ProgressCallback = std::function<bool(const Progress&)>;

class Cancelled : public Error {
 public:
  Cancelled() : Error("cancelled") {}
};

// Times one phase and reports it through a callback (none: a no-op).
class PhaseTimer {
 public:
  PhaseTimer(const ProgressCallback& callback, Phase phase, int total, int image = 0, int images = 1);
  // Reports `done` units finished (0 at the start); throws Cancelled if the callback says so.
  void report(int done, const at::Tensor* latents = nullptr, const at::Tensor* denoised = nullptr);

 private:
  const ProgressCallback& callback_;
  Progress progress_;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace diffuse::pipeline
