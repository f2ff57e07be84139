#include "io/ldm_layout.h"
#include "io/original_config.h"

#include <gtest/gtest.h>

#include <tuple>

#include "util/error.h"

namespace diffuse::io {
namespace {

const std::string kUnet = "model.diffusion_model.";

// Minimal VAE and text encoder so a UNet-focused key list forms a whole checkpoint.
std::vector<std::string> with_other_components(std::vector<std::string> keys) {
  keys.push_back("first_stage_model.decoder.up.0.block.0.nin_shortcut.weight");
  keys.push_back("first_stage_model.decoder.up.1.upsample.conv.weight");
  keys.push_back("first_stage_model.encoder.mid.attn_1.proj_out.weight");
  keys.push_back("first_stage_model.encoder.mid.attn_1.norm.weight");
  keys.push_back("first_stage_model.loss.logvar");
  keys.push_back("cond_stage_model.transformer.text_model.final_layer_norm.weight");
  keys.push_back("model_ema.decay");
  return keys;
}

std::map<std::string, std::string> targets(const LdmPlan& plan) {
  std::map<std::string, std::string> result;
  for (const auto& rename : plan.renames) result[rename.source] = rename.target;
  return result;
}

// Three levels with one res block each, attention on the first two levels only: nothing like
// SD 1.5's four levels of two, so the structure must come from the keys.
std::vector<std::string> three_level_unet() {
  std::vector<std::string> keys;
  for (const char* key : {
           "time_embed.0.weight", "input_blocks.0.0.weight",
           "input_blocks.1.0.in_layers.0.weight", "input_blocks.1.1.proj_in.weight",
           "input_blocks.2.0.op.weight",
           "input_blocks.3.0.skip_connection.weight", "input_blocks.3.1.transformer_blocks.0.attn1.to_q.weight",
           "input_blocks.4.0.op.bias",
           "input_blocks.5.0.emb_layers.1.weight",
           "middle_block.0.in_layers.2.weight", "middle_block.1.norm.weight", "middle_block.2.out_layers.3.bias",
           "output_blocks.0.0.out_layers.0.weight", "output_blocks.1.0.in_layers.0.weight", "output_blocks.1.1.conv.weight",
           "output_blocks.2.0.in_layers.0.weight", "output_blocks.2.1.proj_out.weight",
           "output_blocks.3.0.in_layers.0.weight", "output_blocks.3.1.norm.bias", "output_blocks.3.2.conv.bias",
           "output_blocks.4.0.in_layers.0.weight", "output_blocks.4.1.norm.weight",
           "output_blocks.5.0.in_layers.0.weight", "output_blocks.5.1.proj_in.weight",
           "out.2.weight",
       }) {
    keys.push_back(kUnet + key);
  }
  return keys;
}

TEST(LdmLayout, UnetStructureComesFromTheKeys) {
  const auto plan = plan_ldm_conversion(with_other_components(three_level_unet()), "penultimate", "test.safetensors");
  const auto map = targets(plan);
  const std::map<std::string, std::string> expected = {
      {"time_embed.0.weight", "time_embedding.linear_1.weight"},
      {"input_blocks.0.0.weight", "conv_in.weight"},
      {"input_blocks.1.0.in_layers.0.weight", "down_blocks.0.resnets.0.norm1.weight"},
      {"input_blocks.1.1.proj_in.weight", "down_blocks.0.attentions.0.proj_in.weight"},
      {"input_blocks.2.0.op.weight", "down_blocks.0.downsamplers.0.conv.weight"},
      {"input_blocks.3.0.skip_connection.weight", "down_blocks.1.resnets.0.conv_shortcut.weight"},
      {"input_blocks.3.1.transformer_blocks.0.attn1.to_q.weight",
       "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight"},
      {"input_blocks.4.0.op.bias", "down_blocks.1.downsamplers.0.conv.bias"},
      {"input_blocks.5.0.emb_layers.1.weight", "down_blocks.2.resnets.0.time_emb_proj.weight"},
      {"middle_block.0.in_layers.2.weight", "mid_block.resnets.0.conv1.weight"},
      {"middle_block.1.norm.weight", "mid_block.attentions.0.norm.weight"},
      {"middle_block.2.out_layers.3.bias", "mid_block.resnets.1.conv2.bias"},
      {"output_blocks.0.0.out_layers.0.weight", "up_blocks.0.resnets.0.norm2.weight"},
      {"output_blocks.1.1.conv.weight", "up_blocks.0.upsamplers.0.conv.weight"},
      {"output_blocks.2.1.proj_out.weight", "up_blocks.1.attentions.0.proj_out.weight"},
      {"output_blocks.3.1.norm.bias", "up_blocks.1.attentions.1.norm.bias"},
      {"output_blocks.3.2.conv.bias", "up_blocks.1.upsamplers.0.conv.bias"},
      {"output_blocks.5.1.proj_in.weight", "up_blocks.2.attentions.1.proj_in.weight"},
      {"out.2.weight", "conv_out.weight"},
  };
  for (const auto& [source, target] : expected) EXPECT_EQ(map.at(kUnet + source), target) << source;

  EXPECT_EQ(map.at("first_stage_model.decoder.up.0.block.0.nin_shortcut.weight"),
            "decoder.up_blocks.1.resnets.0.conv_shortcut.weight");
  EXPECT_EQ(map.at("first_stage_model.decoder.up.1.upsample.conv.weight"), "decoder.up_blocks.0.upsamplers.0.conv.weight");
  EXPECT_EQ(map.at("first_stage_model.encoder.mid.attn_1.proj_out.weight"), "encoder.mid_block.attentions.0.to_out.0.weight");
  EXPECT_EQ(map.at("first_stage_model.encoder.mid.attn_1.norm.weight"), "encoder.mid_block.attentions.0.group_norm.weight");
  EXPECT_EQ(map.at("cond_stage_model.transformer.text_model.final_layer_norm.weight"), "text_model.final_layer_norm.weight");
  EXPECT_EQ(plan.family, LdmFamily::Sd1);
  EXPECT_EQ(plan.ignored, (std::vector<std::string>{"first_stage_model.loss.logvar", "model_ema.decay"}));
  for (const auto& rename : plan.renames) {
    const bool conv_attention = rename.source == "first_stage_model.encoder.mid.attn_1.proj_out.weight";
    EXPECT_EQ(rename.transform == Transform::ConvToLinear, conv_attention) << rename.source;
  }
}

TEST(LdmLayout, OpenClipSplitsFusedAttentionAndDropsTheLastLayer) {
  std::vector<std::string> keys = with_other_components(three_level_unet());
  keys.pop_back();  // model_ema.decay
  keys.erase(std::find(keys.begin(), keys.end(), "cond_stage_model.transformer.text_model.final_layer_norm.weight"));
  for (const char* key : {"positional_embedding", "ln_final.bias", "text_projection", "logit_scale",
                          "transformer.resblocks.0.attn.in_proj_weight", "transformer.resblocks.0.mlp.c_fc.bias",
                          "transformer.resblocks.1.ln_2.weight"}) {
    keys.push_back(std::string("cond_stage_model.model.") + key);
  }
  const auto plan = plan_ldm_conversion(keys, "penultimate", "sd2.safetensors");
  EXPECT_EQ(plan.family, LdmFamily::Sd2);
  std::vector<std::pair<std::string, int>> chunks;
  for (const auto& rename : plan.renames) {
    if (rename.transform == Transform::ChunkOf3) chunks.emplace_back(rename.target, rename.chunk);
  }
  EXPECT_EQ(chunks, (std::vector<std::pair<std::string, int>>{
                        {"text_model.encoder.layers.0.self_attn.q_proj.weight", 0},
                        {"text_model.encoder.layers.0.self_attn.k_proj.weight", 1},
                        {"text_model.encoder.layers.0.self_attn.v_proj.weight", 2}}));
  const auto map = targets(plan);
  EXPECT_EQ(map.at("cond_stage_model.model.positional_embedding"), "text_model.embeddings.position_embedding.weight");
  EXPECT_EQ(map.at("cond_stage_model.model.transformer.resblocks.0.mlp.c_fc.bias"), "text_model.encoder.layers.0.mlp.fc1.bias");
  EXPECT_FALSE(map.count("cond_stage_model.model.transformer.resblocks.1.ln_2.weight"));

  // A config that conditions on the last layer keeps it.
  const nlohmann::json last = {{"model", {{"params", {{"cond_stage_config", {{"params", {{"layer", "last"}}}}}}}}}};
  EXPECT_EQ(targets(plan_ldm_conversion(keys, read_original_config(last).open_clip_layer, "sd2.safetensors"))
                .at("cond_stage_model.model.transformer.resblocks.1.ln_2.weight"),
            "text_model.encoder.layers.1.layer_norm2.weight");
}

// Older transformers versions saved CLIPTextModel without its text_model level.
TEST(LdmLayout, ClipNamesWithoutTheTextModelLevelLoadToo) {
  auto keys = three_level_unet();
  keys.push_back("first_stage_model.decoder.conv_in.weight");
  for (const char* key : {"embeddings.token_embedding.weight", "embeddings.position_ids",
                          "encoder.layers.0.mlp.fc1.weight", "text_model.final_layer_norm.bias"}) {
    keys.push_back(std::string("cond_stage_model.transformer.") + key);
  }
  const auto plan = plan_ldm_conversion(keys, "penultimate", "old.safetensors");
  const auto map = targets(plan);
  EXPECT_EQ(map.at("cond_stage_model.transformer.embeddings.token_embedding.weight"),
            "text_model.embeddings.token_embedding.weight");
  EXPECT_EQ(map.at("cond_stage_model.transformer.encoder.layers.0.mlp.fc1.weight"), "text_model.encoder.layers.0.mlp.fc1.weight");
  EXPECT_EQ(map.at("cond_stage_model.transformer.text_model.final_layer_norm.bias"), "text_model.final_layer_norm.bias");
  EXPECT_EQ(plan.ignored, (std::vector<std::string>{"cond_stage_model.transformer.embeddings.position_ids"}));

  keys.push_back("cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight");
  try {
    plan_ldm_conversion(keys, "penultimate", "both.safetensors");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "both.safetensors: two tensors map to text_encoder 'text_model.encoder.layers.0.mlp.fc1.weight' (second: "
              "'cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight')");
  }
}

// SDXL: sgm's conditioner holds both text encoders; the second keeps every layer and its projection.
std::vector<std::string> sdxl_keys() {
  auto keys = three_level_unet();
  keys.push_back(kUnet + "label_emb.0.0.weight");
  keys.push_back("first_stage_model.decoder.conv_in.weight");
  for (const char* key : {"0.transformer.text_model.encoder.layers.0.mlp.fc1.weight",
                          "0.transformer.text_model.embeddings.position_ids",
                          "1.model.transformer.resblocks.0.attn.in_proj_bias",
                          "1.model.transformer.resblocks.1.ln_1.weight", "1.model.text_projection",
                          "1.model.logit_scale"}) {
    keys.push_back(std::string("conditioner.embedders.") + key);
  }
  return keys;
}

TEST(LdmLayout, SdxlConditionerHoldsTwoTextEncoders) {
  // Even a config that says "penultimate" (as sgm's does for embedders.1) drops no SDXL layer.
  const auto plan = plan_ldm_conversion(sdxl_keys(), "penultimate", "sdxl.safetensors");
  EXPECT_EQ(plan.family, LdmFamily::Sdxl);
  EXPECT_EQ(plan.ignored,
            (std::vector<std::string>{"conditioner.embedders.0.transformer.text_model.embeddings.position_ids",
                                      "conditioner.embedders.1.model.logit_scale"}));
  std::vector<std::tuple<std::string, Component, std::string, Transform, int>> renames;
  for (const auto& rename : plan.renames) {
    if (rename.source.rfind("conditioner.", 0) == 0 || rename.source == kUnet + "label_emb.0.0.weight") {
      renames.emplace_back(rename.source, rename.component, rename.target, rename.transform, rename.chunk);
    }
  }
  const std::string te = "conditioner.embedders.0.transformer.", te2 = "conditioner.embedders.1.model.";
  EXPECT_EQ(renames, (std::vector<std::tuple<std::string, Component, std::string, Transform, int>>{
                         {kUnet + "label_emb.0.0.weight", Component::Unet, "add_embedding.linear_1.weight",
                          Transform::None, 0},
                         {te + "text_model.encoder.layers.0.mlp.fc1.weight", Component::TextEncoder,
                          "text_model.encoder.layers.0.mlp.fc1.weight", Transform::None, 0},
                         {te2 + "transformer.resblocks.0.attn.in_proj_bias", Component::TextEncoder2,
                          "text_model.encoder.layers.0.self_attn.q_proj.bias", Transform::ChunkOf3, 0},
                         {te2 + "transformer.resblocks.0.attn.in_proj_bias", Component::TextEncoder2,
                          "text_model.encoder.layers.0.self_attn.k_proj.bias", Transform::ChunkOf3, 1},
                         {te2 + "transformer.resblocks.0.attn.in_proj_bias", Component::TextEncoder2,
                          "text_model.encoder.layers.0.self_attn.v_proj.bias", Transform::ChunkOf3, 2},
                         {te2 + "transformer.resblocks.1.ln_1.weight", Component::TextEncoder2,
                          "text_model.encoder.layers.1.layer_norm1.weight", Transform::None, 0},
                         {te2 + "text_projection", Component::TextEncoder2, "text_projection.weight",
                          Transform::Transpose, 0},
                     }));
}

std::string plan_error(const std::vector<std::string>& keys) {
  try {
    plan_ldm_conversion(keys, "penultimate", "broken.safetensors");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("broken.safetensors"), std::string::npos) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(LdmLayout, UnmappableOrIncompleteCheckpointsAreErrors) {
  auto keys = with_other_components(three_level_unet());
  keys.push_back(kUnet + "input_blocks.1.0.mystery.weight");
  EXPECT_EQ(plan_error(keys),
            "broken.safetensors: tensor 'model.diffusion_model.input_blocks.1.0.mystery.weight' has no diffusers "
            "counterpart (not a known unet tensor)");

  keys = with_other_components(three_level_unet());
  keys.erase(std::find(keys.begin(), keys.end(), kUnet + "output_blocks.5.0.in_layers.0.weight"));
  keys.erase(std::find(keys.begin(), keys.end(), kUnet + "output_blocks.5.1.proj_in.weight"));
  EXPECT_NE(plan_error(keys).find("inconsistent"), std::string::npos);

  keys = with_other_components(three_level_unet());
  keys.erase(std::find(keys.begin(), keys.end(), kUnet + "input_blocks.3.0.skip_connection.weight"));
  keys.erase(std::find(keys.begin(), keys.end(), kUnet + "input_blocks.3.1.transformer_blocks.0.attn1.to_q.weight"));
  EXPECT_NE(plan_error(keys).find("input_blocks.3"), std::string::npos);

  EXPECT_NE(plan_error(three_level_unet()).find("no VAE"), std::string::npos);
  keys = with_other_components({});
  EXPECT_NE(plan_error(keys).find("no UNet"), std::string::npos);
  keys = three_level_unet();
  keys.push_back("first_stage_model.decoder.conv_in.weight");
  EXPECT_NE(plan_error(keys).find("no known text encoder"), std::string::npos);

  // sgm conditioners other than SDXL base's: the refiner's lone OpenCLIP bigG as embedders.0.model.
  keys = three_level_unet();
  keys.push_back("first_stage_model.decoder.conv_in.weight");
  keys.push_back("conditioner.embedders.0.model.transformer.resblocks.0.ln_1.weight");
  EXPECT_EQ(plan_error(keys),
            "broken.safetensors: text encoders under conditioner.embedders.* that are not SDXL base's "
            "(conditioner.embedders.0.transformer.* and conditioner.embedders.1.model.*)");
  keys = sdxl_keys();
  keys.push_back("cond_stage_model.transformer.text_model.final_layer_norm.weight");
  EXPECT_EQ(plan_error(keys),
            "broken.safetensors: text encoders both as cond_stage_model.* and as conditioner.embedders.*");
  keys = sdxl_keys();
  keys.push_back("conditioner.embedders.1.model.transformer.resblocks.0.mystery");
  EXPECT_EQ(plan_error(keys),
            "broken.safetensors: tensor 'conditioner.embedders.1.model.transformer.resblocks.0.mystery' has no "
            "diffusers counterpart (not a known text_encoder_2 tensor)");
}

}  // namespace
}  // namespace diffuse::io
