// The inverse of io/ldm_layout.h: diffusers-named component weights -> one original single-file
// (LDM / CompVis) tensor map, as `model.diffusion_model.*`, `first_stage_model.*` and
// `cond_stage_model.transformer.*`. The benchmark writes full-size random models this way so that
// they load through exactly the path real checkpoints take.
#pragma once
#include <string>

#include "io/ldm_layout.h"
#include "util/tensor_map.h"

namespace diffuse::io {

// The original name of one diffusers tensor of `component`. `unet_or_vae_names` are all diffusers
// names of that component: the original numbers UNet blocks flatly and the VAE decoder's levels
// in reverse, so a name alone cannot say where it goes. Throws diffuse::Error for a name the
// single-file layout has no place for.
std::string ldm_name(Component component, const std::string& diffusers_name, const TensorMap& component_tensors);

// Every tensor of the three components under its original name, with the VAE attention's linear
// weights reshaped to the 1x1 convolutions the original stores. Tensors are shared, not copied,
// except those reshaped (views as well). Only CLIP (SD 1.x) text encoders: OpenCLIP's fused
// q/k/v layout is not written. Buffers (position_ids) are left out, as loading ignores them.
TensorMap export_ldm_checkpoint(const TensorMap& unet, const TensorMap& vae, const TensorMap& text_encoder);

}  // namespace diffuse::io
