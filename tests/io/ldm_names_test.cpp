// The one LDM <-> diffusers name table over the real key sets of the tiny fixtures, in both
// directions: loading names, exporting names, and exporting tensors.
#include "io/ldm_names.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <tuple>

#include "io/ldm_export.h"
#include "io/ldm_layout.h"
#include "io/safetensors.h"
#include "support/fixtures.h"
#include "util/error.h"

namespace diffuse::io {
namespace {

namespace fs = std::filesystem;

// A component's tensors exactly as stored (no dtype conversion), so equality is bit equality.
TensorMap read_raw(const fs::path& file) {
  const auto weights = SafetensorsFile::open(file);
  TensorMap tensors;
  for (const auto& info : weights.tensors()) tensors.emplace(info.name, weights.tensor(info.name));
  return tensors;
}

std::vector<std::string> names_of(const TensorMap& tensors) {
  std::vector<std::string> names;
  for (const auto& [name, tensor] : tensors) names.push_back(name);
  return names;
}

std::set<std::string> name_set(const TensorMap& tensors) {
  const auto names = names_of(tensors);
  return {names.begin(), names.end()};
}

// One tiny fixture in both of its layouts.
struct FixtureModel {
  FixtureModel(const std::string& name, LdmFamily family) : family(family) {
    const auto root = test::fixtures_dir() / name;
    single_file = root / (name + ".safetensors");
    original = read_raw(single_file);
    unet = read_raw(root / "diffusers/unet/diffusion_pytorch_model.safetensors");
    vae = read_raw(root / "diffusers/vae/diffusion_pytorch_model.safetensors");
    text_encoder = read_raw(root / "diffusers/text_encoder/model.safetensors");
    if (family == LdmFamily::Sdxl) text_encoder_2 = read_raw(root / "diffusers/text_encoder_2/model.safetensors");
  }
  const TensorMap& component(Component component) const {
    switch (component) {
      case Component::Unet: return unet;
      case Component::Vae: return vae;
      case Component::TextEncoder: return text_encoder;
      case Component::TextEncoder2: return text_encoder_2;
      case Component::ControlNet: break;  // no whole model holds one
    }
    return unet;
  }
  std::vector<Component> components() const {
    std::vector<Component> result{Component::Unet, Component::Vae, Component::TextEncoder};
    if (family == LdmFamily::Sdxl) result.push_back(Component::TextEncoder2);
    return result;
  }
  // SD 1.x / 2.x: the first text encoder's layout.
  TextEncoderLayout layout() const {
    return family == LdmFamily::Sd2 ? TextEncoderLayout::OpenClip : TextEncoderLayout::Clip;
  }
  LdmStructure folder_structure() const {
    return family == LdmFamily::Sdxl ? structure_of_diffusers(unet, vae, text_encoder, text_encoder_2)
                                     : structure_of_diffusers(unet, vae, text_encoder, layout());
  }
  TensorMap exported() const {
    return family == LdmFamily::Sdxl ? export_ldm_checkpoint(unet, vae, text_encoder, text_encoder_2)
                                     : export_ldm_checkpoint(unet, vae, text_encoder, layout());
  }

  LdmFamily family;
  fs::path single_file;
  TensorMap original, unet, vae, text_encoder, text_encoder_2;
};

using LevelShape = std::tuple<int, bool, bool>;  // resnets, attention, resampler
std::vector<LevelShape> shapes(const std::vector<UnetLevel>& levels) {
  std::vector<LevelShape> result;
  for (const auto& level : levels) result.emplace_back(level.resnets, level.attention, level.resampler);
  return result;
}

// Every fixture (tiny-sd1, tiny-sd2v, tiny-sdxl): UNet levels (32, 64) of 2 res blocks with attention at level 1 only; VAE (32, 64)
// with 1 res block per encoder level, 2 per decoder level.
void expect_tiny_structure(const LdmStructure& structure) {
  EXPECT_EQ(shapes(structure.unet.down), (std::vector<LevelShape>{{2, false, true}, {2, true, false}}));
  EXPECT_EQ(shapes(structure.unet.up), (std::vector<LevelShape>{{3, true, true}, {3, false, false}}));
  EXPECT_EQ(structure.unet.mid_resnets, 2);
  EXPECT_TRUE(structure.unet.mid_attention);
  EXPECT_EQ(structure.vae.encoder, 2);
  EXPECT_EQ(structure.vae.decoder, 2);
  EXPECT_EQ(structure.vae.resnets, 2);
}

// Every key of the single file -> diffusers -> the same key, through the table built from the
// file's names and through the one built from the diffusers folder's names; the diffusers names
// reached are exactly the folder's. Returns the keys the table knows but does not load.
std::vector<std::string> check_round_trip(const FixtureModel& model) {
  const LdmStructure from_file = structure_of_original(names_of(model.original), "penultimate", model.single_file);
  const LdmStructure from_folder = model.folder_structure();
  expect_tiny_structure(from_file);
  expect_tiny_structure(from_folder);
  EXPECT_EQ(from_file.family, model.family);
  EXPECT_EQ(from_folder.family, model.family);
  EXPECT_EQ(from_file.text_encoder.layout, model.layout());
  EXPECT_EQ(from_file.text_encoder_2.has_value(), model.family == LdmFamily::Sdxl);
  const LdmNameTable file_table = ldm_name_table(from_file);
  const LdmNameTable folder_table = ldm_name_table(from_folder);

  std::map<Component, std::set<std::string>> reached;
  std::vector<std::string> skipped;
  for (const auto& [key, tensor] : model.original) {
    const auto matches = file_table.to_diffusers(key);
    if (matches.empty()) ADD_FAILURE() << key << " is not in the table";
    if (matches.empty() || matches.front().pair->skipped) {
      skipped.push_back(key);
      continue;
    }
    for (const auto& match : matches) {
      const Component component = match.pair->component;
      reached[component].insert(match.name);
      for (const LdmNameTable* table : {&file_table, &folder_table}) {
        const auto back = table->to_original(component, match.name);
        if (!back) {
          ADD_FAILURE() << match.name << " has no original name";
          continue;
        }
        EXPECT_EQ(back->name, key) << match.name;
        EXPECT_EQ(back->pair->transform, match.pair->transform) << match.name;
        EXPECT_EQ(back->pair->chunk, match.pair->chunk) << match.name;
      }
    }
  }
  for (const Component component : model.components()) {
    auto expected = name_set(model.component(component));
    if (component == Component::TextEncoder || component == Component::TextEncoder2) {
      EXPECT_EQ(expected.erase("text_model.embeddings.position_ids"), 1u);
    }
    EXPECT_EQ(reached[component], expected) << component_name(component);
  }
  return skipped;
}

void expect_translations(const FixtureModel& model, const std::vector<std::tuple<std::string, Component, std::string>>& pairs) {
  const LdmNameTable table = ldm_name_table(structure_of_original(names_of(model.original), "penultimate", "fixture"));
  for (const auto& [original, component, diffusers] : pairs) {
    const auto matches = table.to_diffusers(original);
    ASSERT_FALSE(matches.empty()) << original;
    EXPECT_EQ(matches.front().pair->component, component) << original;
    EXPECT_EQ(matches.front().name, diffusers) << original;
    EXPECT_EQ(ldm_name(component, diffusers, model.component(component), model.family), original) << diffusers;
  }
}

const std::vector<std::tuple<std::string, Component, std::string>> kUnetAndVaeNames = {
    {"model.diffusion_model.input_blocks.0.0.weight", Component::Unet, "conv_in.weight"},
    {"model.diffusion_model.input_blocks.2.0.out_layers.3.bias", Component::Unet, "down_blocks.0.resnets.1.conv2.bias"},
    {"model.diffusion_model.input_blocks.3.0.op.weight", Component::Unet, "down_blocks.0.downsamplers.0.conv.weight"},
    {"model.diffusion_model.input_blocks.5.1.proj_in.weight", Component::Unet, "down_blocks.1.attentions.1.proj_in.weight"},
    {"model.diffusion_model.middle_block.2.emb_layers.1.weight", Component::Unet, "mid_block.resnets.1.time_emb_proj.weight"},
    {"model.diffusion_model.output_blocks.2.2.conv.bias", Component::Unet, "up_blocks.0.upsamplers.0.conv.bias"},
    {"model.diffusion_model.output_blocks.3.0.skip_connection.weight", Component::Unet,
     "up_blocks.1.resnets.0.conv_shortcut.weight"},
    {"model.diffusion_model.out.0.weight", Component::Unet, "conv_norm_out.weight"},
    {"first_stage_model.decoder.up.0.block.1.conv2.weight", Component::Vae, "decoder.up_blocks.1.resnets.1.conv2.weight"},
    {"first_stage_model.decoder.up.1.upsample.conv.weight", Component::Vae, "decoder.up_blocks.0.upsamplers.0.conv.weight"},
    {"first_stage_model.encoder.down.0.downsample.conv.bias", Component::Vae,
     "encoder.down_blocks.0.downsamplers.0.conv.bias"},
    {"first_stage_model.encoder.mid.attn_1.proj_out.weight", Component::Vae,
     "encoder.mid_block.attentions.0.to_out.0.weight"},
    {"first_stage_model.decoder.mid.block_2.norm1.bias", Component::Vae, "decoder.mid_block.resnets.1.norm1.bias"},
    {"first_stage_model.encoder.norm_out.weight", Component::Vae, "encoder.conv_norm_out.weight"},
};

TEST(LdmNames, Sd1SingleFileRoundTripsThroughTheDiffusersNames) {
  const FixtureModel model("tiny-sd1", LdmFamily::Sd1);
  EXPECT_EQ(check_round_trip(model),
            (std::vector<std::string>{"cond_stage_model.transformer.text_model.embeddings.position_ids"}));
  expect_translations(model, kUnetAndVaeNames);
  expect_translations(model, {{"cond_stage_model.transformer.text_model.encoder.layers.1.self_attn.k_proj.bias",
                               Component::TextEncoder, "text_model.encoder.layers.1.self_attn.k_proj.bias"}});
}

TEST(LdmNames, Sd2SingleFileRoundTripsThroughTheDiffusersNames) {
  const FixtureModel model("tiny-sd2v", LdmFamily::Sd2);
  // Resblock 5 is the layer SD 2.x skips (penultimate): the diffusers folder has layers 0-4.
  std::vector<std::string> unused_layer;
  for (const auto& [key, tensor] : model.original) {
    if (key.rfind("cond_stage_model.model.transformer.resblocks.5.", 0) == 0) unused_layer.push_back(key);
  }
  EXPECT_EQ(unused_layer.size(), 12u);
  EXPECT_EQ(check_round_trip(model), unused_layer);
  expect_translations(model, kUnetAndVaeNames);
  expect_translations(model, {
      {"cond_stage_model.model.positional_embedding", Component::TextEncoder,
       "text_model.embeddings.position_embedding.weight"},
      {"cond_stage_model.model.ln_final.bias", Component::TextEncoder, "text_model.final_layer_norm.bias"},
      {"cond_stage_model.model.transformer.resblocks.4.mlp.c_proj.weight", Component::TextEncoder,
       "text_model.encoder.layers.4.mlp.fc2.weight"},
  });

  const LdmNameTable table = ldm_name_table(structure_of_original(names_of(model.original), "penultimate", "fixture"));
  std::vector<std::pair<std::string, int>> chunks;
  for (const auto& match : table.to_diffusers("cond_stage_model.model.transformer.resblocks.3.attn.in_proj_bias")) {
    EXPECT_EQ(match.pair->transform, Transform::ChunkOf3);
    chunks.emplace_back(match.name, match.pair->chunk);
  }
  EXPECT_EQ(chunks, (std::vector<std::pair<std::string, int>>{{"text_model.encoder.layers.3.self_attn.q_proj.bias", 0},
                                                             {"text_model.encoder.layers.3.self_attn.k_proj.bias", 1},
                                                             {"text_model.encoder.layers.3.self_attn.v_proj.bias", 2}}));
  EXPECT_EQ(ldm_name(Component::TextEncoder, "text_model.encoder.layers.3.self_attn.v_proj.weight", model.text_encoder,
                     TextEncoderLayout::OpenClip),
            "cond_stage_model.model.transformer.resblocks.3.attn.in_proj_weight");
}

// SDXL (sgm layout): label_emb, per-level transformer depth (2 blocks at level 1 and in the middle),
// CLIP ViT-L as conditioner.embedders.0.transformer, OpenCLIP bigG as conditioner.embedders.1.model
// with its transposed text_projection and every one of its 5 layers (SDXL drops none).
TEST(LdmNames, SdxlSingleFileRoundTripsThroughTheDiffusersNames) {
  const FixtureModel model("tiny-sdxl", LdmFamily::Sdxl);
  EXPECT_EQ(check_round_trip(model),
            (std::vector<std::string>{"conditioner.embedders.0.transformer.text_model.embeddings.position_ids"}));
  expect_translations(model, kUnetAndVaeNames);
  expect_translations(model, {
      {"model.diffusion_model.label_emb.0.0.weight", Component::Unet, "add_embedding.linear_1.weight"},
      {"model.diffusion_model.label_emb.0.2.bias", Component::Unet, "add_embedding.linear_2.bias"},
      {"model.diffusion_model.input_blocks.4.1.transformer_blocks.1.attn2.to_k.weight", Component::Unet,
       "down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k.weight"},
      {"model.diffusion_model.middle_block.1.transformer_blocks.1.ff.net.2.bias", Component::Unet,
       "mid_block.attentions.0.transformer_blocks.1.ff.net.2.bias"},
      {"model.diffusion_model.output_blocks.2.1.transformer_blocks.1.norm3.weight", Component::Unet,
       "up_blocks.0.attentions.2.transformer_blocks.1.norm3.weight"},
      {"conditioner.embedders.0.transformer.text_model.encoder.layers.4.mlp.fc1.weight", Component::TextEncoder,
       "text_model.encoder.layers.4.mlp.fc1.weight"},
      {"conditioner.embedders.0.transformer.text_model.final_layer_norm.bias", Component::TextEncoder,
       "text_model.final_layer_norm.bias"},
      {"conditioner.embedders.1.model.positional_embedding", Component::TextEncoder2,
       "text_model.embeddings.position_embedding.weight"},
      {"conditioner.embedders.1.model.token_embedding.weight", Component::TextEncoder2,
       "text_model.embeddings.token_embedding.weight"},
      {"conditioner.embedders.1.model.ln_final.weight", Component::TextEncoder2, "text_model.final_layer_norm.weight"},
      {"conditioner.embedders.1.model.transformer.resblocks.4.ln_2.weight", Component::TextEncoder2,
       "text_model.encoder.layers.4.layer_norm2.weight"},
      {"conditioner.embedders.1.model.transformer.resblocks.4.attn.out_proj.bias", Component::TextEncoder2,
       "text_model.encoder.layers.4.self_attn.out_proj.bias"},
      {"conditioner.embedders.1.model.text_projection", Component::TextEncoder2, "text_projection.weight"},
  });

  const LdmStructure structure = structure_of_original(names_of(model.original), "penultimate", "fixture");
  EXPECT_EQ(structure.text_encoder.prefix, "conditioner.embedders.0.transformer.");
  ASSERT_TRUE(structure.text_encoder_2.has_value());
  EXPECT_EQ(structure.text_encoder_2->layout, TextEncoderLayout::OpenClip);
  EXPECT_EQ(structure.text_encoder_2->prefix, "conditioner.embedders.1.model.");
  EXPECT_EQ(structure.text_encoder_2->layers, 5);
  EXPECT_EQ(structure.text_encoder_2->used, 5);
  EXPECT_TRUE(structure.text_encoder_2->projection);

  const LdmNameTable table = ldm_name_table(structure);
  const auto projection = table.to_diffusers("conditioner.embedders.1.model.text_projection");
  ASSERT_EQ(projection.size(), 1u);
  EXPECT_EQ(projection.front().pair->transform, Transform::Transpose);
  std::vector<std::pair<std::string, int>> chunks;
  const std::string in_proj = "conditioner.embedders.1.model.transformer.resblocks.4.attn.in_proj_weight";
  for (const auto& match : table.to_diffusers(in_proj)) {
    EXPECT_EQ(match.pair->component, Component::TextEncoder2);
    EXPECT_EQ(match.pair->transform, Transform::ChunkOf3);
    chunks.emplace_back(match.name, match.pair->chunk);
  }
  EXPECT_EQ(chunks, (std::vector<std::pair<std::string, int>>{
                        {"text_model.encoder.layers.4.self_attn.q_proj.weight", 0},
                        {"text_model.encoder.layers.4.self_attn.k_proj.weight", 1},
                        {"text_model.encoder.layers.4.self_attn.v_proj.weight", 2}}));
  // Real SDXL files also hold OpenCLIP's logit_scale (the fixture does not): known, never loaded.
  const auto logit_scale = table.to_diffusers("conditioner.embedders.1.model.logit_scale");
  ASSERT_EQ(logit_scale.size(), 1u);
  EXPECT_TRUE(logit_scale.front().pair->skipped);
  // The two encoders are separate components: the same diffusers name reaches two original names.
  EXPECT_EQ(table.to_original(Component::TextEncoder, "text_model.final_layer_norm.weight")->name,
            "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight");
  EXPECT_EQ(table.to_original(Component::TextEncoder2, "text_model.final_layer_norm.weight")->name,
            "conditioner.embedders.1.model.ln_final.weight");
  EXPECT_FALSE(table.to_original(Component::TextEncoder, "text_projection.weight").has_value());
}

TEST(LdmNames, Sd2OpenClipHasNoProjectionAndNoSecondEncoder) {
  const FixtureModel model("tiny-sd2v", LdmFamily::Sd2);
  const LdmNameTable table = ldm_name_table(structure_of_original(names_of(model.original), "penultimate", "fixture"));
  const auto projection = table.to_diffusers("cond_stage_model.model.text_projection");
  ASSERT_EQ(projection.size(), 1u);
  EXPECT_TRUE(projection.front().pair->skipped);
  EXPECT_FALSE(table.to_original(Component::TextEncoder, "text_projection.weight").has_value());
  EXPECT_FALSE(table.to_original(Component::TextEncoder2, "text_model.final_layer_norm.weight").has_value());
}

// ---- Export ---------------------------------------------------------------------------------------

TEST(LdmExport, TinySd1ExportsToTheReleasedSingleFileBitForBit) {
  const FixtureModel model("tiny-sd1", LdmFamily::Sd1);
  const auto exported = export_ldm_checkpoint(model.unet, model.vae, model.text_encoder);
  size_t compared = 0;
  for (const auto& [name, want] : model.original) {
    if (name.find("position_ids") != std::string::npos) continue;
    auto it = exported.find(name);
    ASSERT_NE(it, exported.end()) << "export lacks " << name;
    EXPECT_EQ(it->second.scalar_type(), want.scalar_type()) << name;
    EXPECT_EQ(it->second.sizes(), want.sizes()) << name;
    EXPECT_TRUE(at::equal(it->second, want)) << name << " differs";
    ++compared;
  }
  EXPECT_EQ(compared, exported.size()) << "export has tensors the single file lacks";
  EXPECT_EQ(compared, 512u);
}

TEST(LdmExport, TinySd2FusesQkvAndRepeatsTheLastLayerAsTheUnusedOne) {
  const FixtureModel model("tiny-sd2v", LdmFamily::Sd2);
  const auto exported = export_ldm_checkpoint(model.unet, model.vae, model.text_encoder, TextEncoderLayout::OpenClip);
  EXPECT_EQ(name_set(exported), name_set(model.original));
  const std::string unused = "cond_stage_model.model.transformer.resblocks.5.";
  const std::string last = "cond_stage_model.model.transformer.resblocks.4.";
  for (const auto& [name, tensor] : exported) {
    const bool repeated = name.rfind(unused, 0) == 0;
    const at::Tensor& want = repeated ? exported.at(last + name.substr(unused.size())) : model.original.at(name);
    EXPECT_EQ(tensor.scalar_type(), want.scalar_type()) << name;
    EXPECT_EQ(tensor.sizes(), want.sizes()) << name;
    EXPECT_TRUE(at::equal(tensor, want)) << name << " differs";
  }
  EXPECT_EQ(exported.at(last + "attn.in_proj_weight").sizes(), (std::vector<int64_t>{96, 32}));

  // Loading the export gives back the very layers exported.
  const auto plan = plan_ldm_conversion(names_of(exported), "penultimate", "exported");
  EXPECT_EQ(plan.family, LdmFamily::Sd2);
  EXPECT_EQ(plan.ignored.size(), 12u);
  for (const auto& key : plan.ignored) EXPECT_EQ(key.rfind(unused, 0), 0u) << key;
}

// The fixture file is what diffusers' own converters invert exactly (single_file_check.json): the
// export gives it back bit for bit, all but the CLIP position_ids buffer, which export leaves out as
// loading ignores it.
TEST(LdmExport, TinySdxlExportsToTheReleasedSingleFileBitForBit) {
  const FixtureModel model("tiny-sdxl", LdmFamily::Sdxl);
  const auto exported = model.exported();
  auto expected_names = name_set(model.original);
  EXPECT_EQ(expected_names.erase("conditioner.embedders.0.transformer.text_model.embeddings.position_ids"), 1u);
  EXPECT_EQ(name_set(exported), expected_names);
  EXPECT_EQ(exported.size(), 701u);
  for (const auto& [name, tensor] : exported) {
    const auto want = model.original.find(name);
    if (want == model.original.end()) continue;  // reported above
    EXPECT_EQ(tensor.scalar_type(), want->second.scalar_type()) << name;
    EXPECT_EQ(tensor.sizes(), want->second.sizes()) << name;
    EXPECT_TRUE(tensor.sizes() == want->second.sizes() && at::equal(tensor, want->second)) << name << " differs";
  }
  // The projection is square here, so only its values show the transpose: the file's is the
  // transpose of diffusers' (and not equal to it).
  const at::Tensor& projection = model.text_encoder_2.at("text_projection.weight");
  const at::Tensor& stored = model.original.at("conditioner.embedders.1.model.text_projection");
  EXPECT_TRUE(at::equal(stored, projection.t()));
  EXPECT_FALSE(at::equal(stored, projection));
  EXPECT_EQ(exported.at("conditioner.embedders.1.model.transformer.resblocks.4.attn.in_proj_weight").sizes(),
            (std::vector<int64_t>{96, 32}));

  // Loading the export gives back every exported tensor under its diffusers name.
  const auto keys = names_of(exported);
  const auto plan = plan_ldm_conversion(keys, "penultimate", "exported");
  EXPECT_EQ(plan.family, LdmFamily::Sdxl);
  EXPECT_TRUE(plan.ignored.empty());
  std::map<Component, std::set<std::string>> targets;
  for (const auto& rename : plan.renames) {
    EXPECT_TRUE(model.component(rename.component).count(rename.target)) << rename.source << " -> " << rename.target;
    EXPECT_EQ(ldm_name(rename.component, rename.target, model.component(rename.component), LdmFamily::Sdxl),
              rename.source);
    targets[rename.component].insert(rename.target);
  }
  for (const Component component : model.components()) {
    auto expected = name_set(model.component(component));
    expected.erase("text_model.embeddings.position_ids");
    EXPECT_EQ(targets[component], expected) << component_name(component);
  }
}

TEST(LdmExport, SdxlNamesNeedTheSdxlLayout) {
  const FixtureModel model("tiny-sdxl", LdmFamily::Sdxl);
  EXPECT_EQ(ldm_name(Component::TextEncoder, "text_model.encoder.layers.0.mlp.fc2.bias", model.text_encoder,
                     LdmFamily::Sdxl),
            "conditioner.embedders.0.transformer.text_model.encoder.layers.0.mlp.fc2.bias");
  EXPECT_EQ(ldm_name(Component::TextEncoder, "text_model.encoder.layers.0.mlp.fc2.bias", model.text_encoder),
            "cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc2.bias");
  EXPECT_EQ(ldm_name(Component::TextEncoder2, "text_projection.weight", model.text_encoder_2, LdmFamily::Sdxl),
            "conditioner.embedders.1.model.text_projection");
  try {
    ldm_name(Component::TextEncoder2, "text_projection.weight", model.text_encoder_2, TextEncoderLayout::OpenClip);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "export to the single-file layout: text_encoder_2 tensor 'text_projection.weight' has no place in the "
              "single-file layout");
  }
  // SD 2.x's text encoder (CLIPTextModel) has no projection to write.
  TensorMap text_encoder = model.text_encoder_2;
  try {
    export_ldm_checkpoint(model.unet, model.vae, text_encoder, TextEncoderLayout::OpenClip);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "export to the single-file layout: text_encoder tensor 'text_projection.weight' has no place in the "
              "single-file layout");
  }
}

TEST(LdmExport, LoaderPlanMapsEveryExportedNameBackToItsDiffusersName) {
  const FixtureModel model("tiny-sd1", LdmFamily::Sd1);
  const auto exported = export_ldm_checkpoint(model.unet, model.vae, model.text_encoder);
  const auto keys = names_of(exported);
  const auto plan = plan_ldm_conversion(keys, "penultimate", "exported");
  EXPECT_EQ(plan.family, LdmFamily::Sd1);
  EXPECT_TRUE(plan.ignored.empty());
  ASSERT_EQ(plan.renames.size(), keys.size());
  for (const auto& rename : plan.renames) {
    const TensorMap& component = model.component(rename.component);
    EXPECT_TRUE(component.count(rename.target)) << rename.source << " -> " << rename.target;
    EXPECT_EQ(ldm_name(rename.component, rename.target, component), rename.source);
  }
}

TEST(LdmExport, VaeAttentionWeightsBecomeOneByOneConvolutions) {
  const FixtureModel model("tiny-sd1", LdmFamily::Sd1);
  const auto exported = export_ldm_checkpoint(model.unet, model.vae, model.text_encoder);
  const auto& q = exported.at("first_stage_model.decoder.mid.attn_1.q.weight");
  EXPECT_EQ(q.sizes(), (std::vector<int64_t>{64, 64, 1, 1}));
  EXPECT_EQ(exported.at("first_stage_model.decoder.mid.attn_1.q.bias").dim(), 1);
  EXPECT_EQ(exported.at("first_stage_model.decoder.mid.attn_1.norm.weight").dim(), 1);
}

std::string export_error(const TensorMap& unet, const TensorMap& vae, const TensorMap& text_encoder,
                         TextEncoderLayout layout) {
  try {
    export_ldm_checkpoint(unet, vae, text_encoder, layout);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an error";
  return "";
}

TEST(LdmExport, NameWithNoOriginalPlaceIsRejectedByName) {
  FixtureModel model("tiny-sd1", LdmFamily::Sd1);
  model.unet.emplace("down_blocks.0.mystery.weight", at::zeros({1}));
  EXPECT_EQ(export_error(model.unet, model.vae, model.text_encoder, TextEncoderLayout::Clip),
            "export to the single-file layout: unet tensor 'down_blocks.0.mystery.weight' has no place in the "
            "single-file layout");
}

TEST(LdmExport, OpenClipLayerWithoutAllOfQkvIsRejectedByName) {
  FixtureModel model("tiny-sd2v", LdmFamily::Sd2);
  model.text_encoder.erase("text_model.encoder.layers.2.self_attn.k_proj.weight");
  EXPECT_EQ(export_error(model.unet, model.vae, model.text_encoder, TextEncoderLayout::OpenClip),
            "export to the single-file layout: text_encoder tensor "
            "'cond_stage_model.model.transformer.resblocks.2.attn.in_proj_weight' lacks one of its q/k/v projections");
}

}  // namespace
}  // namespace diffuse::io
