#include "pipeline/progress.h"

namespace diffuse::pipeline {

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::Load: return "loading";
    case Phase::Encode: return "encoding";
    case Phase::Denoise: return "denoising";
    case Phase::Decode: return "decoding";
    case Phase::Upscale: return "upscaling";
  }
  return "?";
}

PhaseTimer::PhaseTimer(const ProgressCallback& callback, Phase phase, int total, int image, int images)
    : callback_(callback), started_(std::chrono::steady_clock::now()) {
  progress_.phase = phase;
  progress_.done = 0;
  progress_.total = total;
  progress_.image = image;
  progress_.images = images;
}

void PhaseTimer::report(int done, const at::Tensor* latents, const at::Tensor* denoised) {
  if (!callback_) return;
  progress_.done = done;
  progress_.elapsed_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  progress_.eta_seconds = done > 0 ? progress_.elapsed_seconds / done * (progress_.total - done) : -1;
  progress_.latents = latents;
  progress_.denoised = denoised;
  if (!callback_(progress_)) throw Cancelled();
}

}  // namespace diffuse::pipeline
