// Export to the original single-file (LDM / CompVis, and SDXL's sgm) layout: diffusers-named
// component weights -> one tensor map as `model.diffusion_model.*`, `first_stage_model.*` and the
// text encoders' `cond_stage_model.*` (SD 1.x / 2.x) or `conditioner.embedders.0/1.*` (SDXL),
// looked up in the one name table (io/ldm_names.h) that loading uses. The
// benchmark writes full-size random models this way so that they load through exactly the path
// real checkpoints take.
#pragma once
#include <string>

#include "io/ldm_names.h"
#include "util/tensor_map.h"

namespace diffuse::io {

// The original name of one diffusers tensor of `component`; for a q/k/v projection of an OpenCLIP
// layer, the fused tensor it is a third of. `component_tensors` are all tensors of that component:
// the original numbers UNet blocks flatly and the VAE decoder's levels in reverse, so a name alone
// cannot say where it goes. Throws diffuse::Error for a name the single-file layout has no place for
// (any TextEncoder2 name outside SDXL). The first form is SD 1.x (Clip) or SD 2.x (OpenClip).
std::string ldm_name(Component component, const std::string& diffusers_name, const TensorMap& component_tensors,
                     TextEncoderLayout text_encoder_layout = TextEncoderLayout::Clip);
std::string ldm_name(Component component, const std::string& diffusers_name, const TensorMap& component_tensors,
                     LdmFamily family);

// Every tensor of the three components under its original name. The VAE attention's linear weights
// become the 1x1 convolutions the original stores, and OpenCLIP's q/k/v projections one fused
// in_proj (copies); every other tensor is shared, not copied. Buffers (position_ids) are left out,
// as loading ignores them. An OpenCLIP file also gets the layer that SD 2.x skips and diffusers
// lacks: a repeat of the last layer, never run, so that the file loads back to these very layers.
TensorMap export_ldm_checkpoint(const TensorMap& unet, const TensorMap& vae, const TensorMap& text_encoder,
                                TextEncoderLayout text_encoder_layout = TextEncoderLayout::Clip);
// SDXL: `text_encoder` (CLIP ViT-L) as conditioner.embedders.0.transformer.*, `text_encoder_2`
// (OpenCLIP bigG, CLIPTextModelWithProjection names) as conditioner.embedders.1.model.* with every
// layer, q/k/v fused and text_projection.weight written transposed (a view: the writer copies).
TensorMap export_ldm_checkpoint(const TensorMap& unet, const TensorMap& vae, const TensorMap& text_encoder,
                                const TensorMap& text_encoder_2);

}  // namespace diffuse::io
