#include "io/ldm_export.h"

#include <array>

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

}  // namespace

std::string ldm_name(Component component, const std::string& name, const TensorMap& component_tensors,
                     TextEncoderLayout text_encoder_layout) {
  const TensorMap none;
  const auto tensors_of = [&](Component of) -> const TensorMap& { return of == component ? component_tensors : none; };
  const LdmNameTable table =
      ldm_name_table(structure_of_diffusers(tensors_of(Component::Unet), tensors_of(Component::Vae),
                                            tensors_of(Component::TextEncoder), text_encoder_layout));
  return original_of(table, component, name).name;
}

TensorMap export_ldm_checkpoint(const TensorMap& unet, const TensorMap& vae, const TensorMap& text_encoder,
                                TextEncoderLayout text_encoder_layout) {
  LdmStructure structure = structure_of_diffusers(unet, vae, text_encoder, text_encoder_layout);
  TensorMap text = text_encoder;
  if (text_encoder_layout == TextEncoderLayout::OpenClip && structure.text_encoder.layers > 0) {
    text = with_unused_last_layer(text_encoder, structure.text_encoder.layers);
    structure.text_encoder.layers += 1;
    structure.text_encoder.used = structure.text_encoder.layers;  // the repeat is written like any layer
  }
  const LdmNameTable table = ldm_name_table(structure);

  TensorMap result;
  std::map<std::string, std::pair<Component, std::array<at::Tensor, 3>>> fused;  // by original name
  const std::pair<Component, const TensorMap*> components[] = {
      {Component::Unet, &unet}, {Component::Vae, &vae}, {Component::TextEncoder, &text}};
  for (const auto& [component, tensors] : components) {
    for (const auto& [name, tensor] : *tensors) {
      const LdmNameMatch match = original_of(table, component, name);
      if (match.pair->skipped) continue;
      if (match.pair->transform == Transform::ChunkOf3) {
        auto& [fused_component, chunks] = fused[match.name];
        fused_component = component;
        chunks[match.pair->chunk] = tensor;
        continue;
      }
      at::Tensor value = tensor;
      if (match.pair->transform == Transform::ConvToLinear && tensor.dim() == 2) {
        value = tensor.reshape({tensor.size(0), tensor.size(1), 1, 1});
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

}  // namespace diffuse::io
