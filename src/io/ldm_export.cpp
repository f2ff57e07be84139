#include "io/ldm_export.h"

#include <array>
#include <map>
#include <utility>
#include <vector>

#include "util/error.h"

namespace diffuse::io {

namespace {

[[noreturn]] void fail(Component component, const std::string& name, const std::string& why) {
  throw Error(std::string("export to the single-file layout: ") + component_name(component) + " tensor '" + name +
              "' " + why);
}

LdmNameMatch original_of(const LdmNameTable& table, Component component, const std::string& name) {
  auto match = table.to_original(component, name);
  if (!match) fail(component, name, "has no place in the single-file layout");
  return *match;
}

// SD 2.x conditions on the penultimate OpenCLIP layer, and diffusers' SD 2.x text encoder ends
// there; the original file holds one layer more, which it never runs.
TensorMap with_unused_last_layer(const TensorMap& text_encoder, int layers) {
  TensorMap padded = text_encoder;
  const std::string last = indexed_name("text_model.encoder.layers.", layers - 1);
  const std::string unused = indexed_name("text_model.encoder.layers.", layers);
  for (auto it = text_encoder.lower_bound(last);
       it != text_encoder.end() && it->first.compare(0, last.size(), last) == 0; ++it) {
    padded.emplace(unused + it->first.substr(last.size()), it->second);
  }
  return padded;
}

// The tensors of every component under their original names, through `table`.
TensorMap export_components(const LdmNameTable& table,
                            const std::vector<std::pair<Component, const TensorMap*>>& components) {
  TensorMap result;
  std::map<std::string, std::pair<Component, std::array<at::Tensor, 3>>> fused;  // by original name
  for (const auto& [component, tensors] : components) {
    for (const auto& [name, tensor] : *tensors) {
      const LdmNameMatch match = original_of(table, component, name);
      if (match.pair->skipped) continue;
      at::Tensor value = tensor;
      switch (match.pair->transform) {
        case Transform::None:
          break;
        case Transform::ConvToLinear:
          if (tensor.dim() == 2) value = tensor.reshape({tensor.size(0), tensor.size(1), 1, 1});
          break;
        case Transform::ChunkOf3: {
          auto& [fused_component, chunks] = fused[match.name];
          fused_component = component;
          chunks[match.pair->chunk] = tensor;
          continue;
        }
        case Transform::Transpose:
          if (tensor.dim() != 2) {
            fail(component, name, "has " + std::to_string(tensor.dim()) + " dimensions, expected 2");
          }
          value = tensor.t();
          break;
      }
      if (!result.emplace(match.name, value).second) {
        fail(component, name, "maps to '" + match.name + "', which another tensor already took");
      }
    }
  }
  for (const auto& [original, parts] : fused) {
    const auto& [component, chunks] = parts;
    for (const auto& chunk : chunks) {
      if (!chunk.defined()) fail(component, original, "lacks one of its q/k/v projections");
    }
    result.emplace(original, at::cat({chunks[0], chunks[1], chunks[2]}, 0));
  }
  return result;
}

}  // namespace

std::string ldm_name(Component component, const std::string& name, const TensorMap& component_tensors,
                     LdmFamily family) {
  const TensorMap none;
  const auto tensors_of = [&](Component of) -> const TensorMap& { return of == component ? component_tensors : none; };
  const TensorMap& unet = tensors_of(Component::Unet);
  const TensorMap& vae = tensors_of(Component::Vae);
  const TensorMap& text_encoder = tensors_of(Component::TextEncoder);
  const LdmStructure structure =
      family == LdmFamily::Sdxl
          ? structure_of_diffusers(unet, vae, text_encoder, tensors_of(Component::TextEncoder2))
          : structure_of_diffusers(unet, vae, text_encoder,
                                   family == LdmFamily::Sd1 ? TextEncoderLayout::Clip : TextEncoderLayout::OpenClip);
  return original_of(ldm_name_table(structure), component, name).name;
}

std::string ldm_name(Component component, const std::string& name, const TensorMap& component_tensors,
                     TextEncoderLayout text_encoder_layout) {
  return ldm_name(component, name, component_tensors,
                  text_encoder_layout == TextEncoderLayout::Clip ? LdmFamily::Sd1 : LdmFamily::Sd2);
}

TensorMap export_ldm_checkpoint(const TensorMap& unet, const TensorMap& vae, const TensorMap& text_encoder,
                                TextEncoderLayout text_encoder_layout) {
  LdmStructure structure = structure_of_diffusers(unet, vae, text_encoder, text_encoder_layout);
  TensorMap text = text_encoder;
  if (structure.family == LdmFamily::Sd2 && structure.text_encoder.layers > 0) {
    text = with_unused_last_layer(text_encoder, structure.text_encoder.layers);
    structure.text_encoder.layers += 1;
    structure.text_encoder.used = structure.text_encoder.layers;  // the repeat is written like any layer
  }
  return export_components(ldm_name_table(structure),
                           {{Component::Unet, &unet}, {Component::Vae, &vae}, {Component::TextEncoder, &text}});
}

TensorMap export_ldm_checkpoint(const TensorMap& unet, const TensorMap& vae, const TensorMap& text_encoder,
                                const TensorMap& text_encoder_2) {
  // SDXL keeps every OpenCLIP layer in diffusers too: nothing to pad.
  const LdmStructure structure = structure_of_diffusers(unet, vae, text_encoder, text_encoder_2);
  return export_components(ldm_name_table(structure), {{Component::Unet, &unet},
                                                       {Component::Vae, &vae},
                                                       {Component::TextEncoder, &text_encoder},
                                                       {Component::TextEncoder2, &text_encoder_2}});
}

}  // namespace diffuse::io
