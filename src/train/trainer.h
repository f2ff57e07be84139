// `diffuse train`: stage 1 fits a small AutoencoderKL to the images, stage 2 fits a CLIP-style text
// encoder and a UNet together on the diffusion loss, using the inference code's own modules. The
// output folder is a diffusers model plus loss.csv, loss.png and training.json (the record).
#pragma once
#include "train/dataset.h"
#include "train/train_options.h"
#include "train/training_log.h"

namespace diffuse::train {

struct TrainResult {
  double seconds = 0;  // across resumes
  double vae_loss = 0, diffusion_loss = 0;  // final_loss() of each stage
  bool stopped = false;  // options.stop_after ended the run early; resume it to finish
};

// Checkpoints go to OUTPUT/checkpoint every options.checkpoint_every steps and are removed when the
// model is complete. With options.resume the run continues from there with the options it was
// started with (only threads may differ); every random draw of a step comes from a generator
// seeded by (seed, stage, step), so a resumed run logs the same losses as an uninterrupted one.
// Throws diffuse::Error for bad options or data, and for a folder that holds a checkpoint without
// resume or a finished model.
TrainResult train_model(TrainOptions options, const TrainProgressCallback& progress, const WarningSink& warn);

}  // namespace diffuse::train
