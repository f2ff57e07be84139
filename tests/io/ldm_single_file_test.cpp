// Loading SDXL single files (sgm layout) through load_model_files: the same tensors, bit for bit, as
// the diffusers folder's files, for all four components, and the family's defaults that no file
// states. The folder's files are read directly, so these tests stand apart from folder loading.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "io/model_files.h"
#include "io/safetensors.h"
#include "support/fixtures.h"
#include "util/json.h"

namespace diffuse::io {
namespace {

namespace fs = std::filesystem;

using test::tensor_names;

const fs::path& sdxl_root() {
  static const fs::path root = test::fixtures_dir() / "tiny-sdxl";
  return root;
}

// One component of the diffusers folder exactly as stored, without the position_ids buffer that no
// loader keeps.
TensorMap folder_tensors(const std::string& file) {
  const auto weights = SafetensorsFile::open(sdxl_root() / "diffusers" / file);
  TensorMap tensors;
  for (const auto& info : weights.tensors()) {
    if (info.name != "text_model.embeddings.position_ids") tensors.emplace(info.name, weights.tensor(info.name));
  }
  return tensors;
}

// Bit equality: the single file loaded as F16, its own type, so nothing is converted.
void expect_same_weights(const ComponentWeights& single, const std::string& folder_file) {
  SCOPED_TRACE(folder_file);
  const TensorMap diffusers = folder_tensors(folder_file);
  EXPECT_EQ(tensor_names(single.tensors), tensor_names(diffusers));
  for (const auto& [name, tensor] : single.tensors) {
    const auto other = diffusers.find(name);
    if (other == diffusers.end()) continue;  // reported above
    EXPECT_EQ(tensor.scalar_type(), other->second.scalar_type()) << name;
    EXPECT_EQ(tensor.sizes(), other->second.sizes()) << name;
    EXPECT_TRUE(tensor.sizes() == other->second.sizes() && at::equal(tensor, other->second)) << name;
  }
}

TEST(LdmSingleFile, SdxlSingleFileMatchesDiffusersFolder) {
  const fs::path file = sdxl_root() / "tiny-sdxl.safetensors";
  const auto single = load_model_files(file, at::kHalf);
  EXPECT_EQ(single.layout, ModelFiles::Layout::SingleFile);
  EXPECT_EQ(single.family, LdmFamily::Sdxl);
  expect_same_weights(single.unet, "unet/diffusion_pytorch_model.safetensors");
  expect_same_weights(single.vae, "vae/diffusion_pytorch_model.safetensors");
  expect_same_weights(single.text_encoder, "text_encoder/model.safetensors");
  expect_same_weights(single.text_encoder_2, "text_encoder_2/model.safetensors");
  // 702 tensors in the file (single_file_check.json); only CLIP's position_ids buffer is left out.
  EXPECT_EQ(single.unet.tensors.size(), 428u);
  EXPECT_EQ(single.vae.tensors.size(), 124u);
  EXPECT_EQ(single.text_encoder.tensors.size(), 84u);
  EXPECT_EQ(single.text_encoder_2.tensors.size(), 85u);
  EXPECT_EQ(single.ignored,
            std::vector<std::string>{"conditioner.embedders.0.transformer.text_model.embeddings.position_ids"});

  for (const auto* component : {&single.unet, &single.vae, &single.text_encoder, &single.text_encoder_2}) {
    EXPECT_EQ(component->source, file.string());
  }
  EXPECT_EQ(single.text_encoder_2.file_names.at("text_projection.weight"),
            "conditioner.embedders.1.model.text_projection");
  EXPECT_EQ(single.text_encoder_2.file_names.at("text_model.encoder.layers.2.self_attn.k_proj.bias"),
            "conditioner.embedders.1.model.transformer.resblocks.2.attn.in_proj_bias");
  EXPECT_EQ(single.text_encoder.file_names.at("text_model.encoder.layers.2.self_attn.k_proj.bias"),
            "conditioner.embedders.0.transformer.text_model.encoder.layers.2.self_attn.k_proj.bias");
  EXPECT_EQ(single.unet.file_names.at("add_embedding.linear_2.weight"), "model.diffusion_model.label_emb.0.2.weight");
}

// The projection is square in the fixture, so only its values show that it was transposed; the
// loaded weight is an ordinary contiguous matrix, also after a type conversion.
TEST(LdmSingleFile, SdxlTextProjectionIsTransposedOnLoad) {
  const fs::path file = sdxl_root() / "tiny-sdxl.safetensors";
  const at::Tensor stored = SafetensorsFile::open(file).tensor("conditioner.embedders.1.model.text_projection");
  for (const auto dtype : {at::kHalf, at::kFloat}) {
    const auto single = load_model_files(file, dtype);
    const at::Tensor& loaded = single.text_encoder_2.tensors.at("text_projection.weight");
    EXPECT_EQ(loaded.scalar_type(), dtype);
    EXPECT_TRUE(loaded.is_contiguous());
    EXPECT_TRUE(at::equal(loaded, stored.t().to(dtype)));
    EXPECT_FALSE(at::equal(loaded, stored.to(dtype)));
  }
}

TEST(LdmSingleFile, SdxlSingleFileComesWithTheFamilysDefaults) {
  const auto single = load_model_files(sdxl_root() / "tiny-sdxl.safetensors");
  EXPECT_EQ(single.pad_token, "<|endoftext|>");
  EXPECT_EQ(single.pad_token_2, "!");
  EXPECT_TRUE(single.force_zeros_for_empty_prompt);
  EXPECT_EQ(read_json_file(sdxl_root() / "diffusers" / "model_index.json").at("force_zeros_for_empty_prompt"), true);
  // No tokenizer beside the fixture file; where there is one, both encoders share it.
  EXPECT_FALSE(single.tokenizer.has_value());
  EXPECT_EQ(single.tokenizer_2, single.tokenizer);
  EXPECT_EQ(single.original.vae.scale_factor, 0.13025);
  EXPECT_TRUE(single.original.text_encoder_2.open_clip);
  EXPECT_FALSE(single.original.text_encoder.open_clip);
  // The sampling facts come from the sgm config beside the file (pipeline/component_configs.h turns
  // them into the schedule); no scheduler config is made up here.
  EXPECT_TRUE(single.scheduler_config.is_null());
  EXPECT_FALSE(single.original.v_prediction);
}

}  // namespace
}  // namespace diffuse::io
