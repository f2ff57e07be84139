// The "config or infer" rule, once: a component's own config.json where its folder has one, else its
// architecture inferred from the tensor shapes, with what the file's original config says where the
// shapes cannot tell. Here, between io/ (which reads original configs) and models/ (which knows no
// file layout), the original's facts become the models' hints.
#pragma once
#include "io/model_files.h"
#include "models/config.h"
#include "sampling/sampling.h"

namespace diffuse::pipeline {

models::TextEncoderHints text_encoder_hints(const io::OriginalConfig::TextEncoder& original);
models::UNetHints unet_hints(const io::OriginalConfig& original);
models::VaeHints vae_hints(const io::OriginalConfig& original);

// `original` is the facts for this encoder: files.original.text_encoder or .text_encoder_2.
models::TextEncoderConfig text_encoder_config(const io::ComponentWeights& weights,
                                              const io::OriginalConfig::TextEncoder& original);
models::UNetConfig unet_config(const io::ComponentWeights& weights, const io::OriginalConfig& original);
models::VaeConfig vae_config(const io::ComponentWeights& weights, const io::OriginalConfig& original);

// The folder's scheduler config; without one, the released SD configs' schedule (SchedulerConfig's
// defaults) with what the original config says of it, as diffusers' from_single_file makes it.
sampling::SchedulerConfig scheduler_config(const io::ModelFiles& files);

}  // namespace diffuse::pipeline
