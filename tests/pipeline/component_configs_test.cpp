// The "config or infer" rule and the original config's facts turned into models' hints and the
// schedule: a single file must come out as the diffusers folder it was made from.
#include "pipeline/component_configs.h"

#include <gtest/gtest.h>

#include "support/fixtures.h"
#include "util/json.h"

namespace diffuse::pipeline {
namespace {

namespace fs = std::filesystem;

// Every field that changes sampling.
void expect_same_schedule(const sampling::SchedulerConfig& a, const sampling::SchedulerConfig& b) {
  EXPECT_EQ(a.num_train_timesteps, b.num_train_timesteps);
  EXPECT_EQ(a.beta_start, b.beta_start);
  EXPECT_EQ(a.beta_end, b.beta_end);
  EXPECT_EQ(a.beta_schedule, b.beta_schedule);
  EXPECT_EQ(a.trained_betas, b.trained_betas);
  EXPECT_EQ(a.prediction, b.prediction);
  EXPECT_EQ(a.timestep_spacing, b.timestep_spacing);
  EXPECT_EQ(a.steps_offset, b.steps_offset);
  EXPECT_EQ(a.clip_sample_range, b.clip_sample_range);
  EXPECT_EQ(a.rescale_betas_zero_snr, b.rescale_betas_zero_snr);
  EXPECT_EQ(a.use_karras_sigmas, b.use_karras_sigmas);
}

TEST(ComponentConfigs, SingleFilesSampleAsTheirFolders) {
  for (const char* model : {"tiny-sd1", "tiny-sd2v", "tiny-sdxl"}) {
    SCOPED_TRACE(model);
    const fs::path root = test::fixtures_dir() / model;
    const auto single = io::load_model_files(root / (std::string(model) + ".safetensors"));
    const auto folder = io::load_model_files(root / "diffusers");
    expect_same_schedule(scheduler_config(single), scheduler_config(folder));
    // As SD's released configs and diffusers' from_single_file: DDIM without clipping, its final
    // alpha the trained one (the tiny SDXL folder leaves both to the scheduler class).
    EXPECT_EQ(scheduler_config(single).set_alpha_to_one, false);
    EXPECT_EQ(scheduler_config(single).clip_sample, false);
  }
  const auto sd2 = io::load_model_files(test::fixtures_dir() / "tiny-sd2v" / "tiny-sd2v.safetensors");
  EXPECT_EQ(scheduler_config(sd2).prediction, sampling::Prediction::VPrediction);
}

TEST(ComponentConfigs, SingleFilesInferTheirFoldersArchitecture) {
  for (const char* model : {"tiny-sd1", "tiny-sd2v", "tiny-sdxl"}) {
    SCOPED_TRACE(model);
    const fs::path root = test::fixtures_dir() / model;
    const auto single = io::load_model_files(root / (std::string(model) + ".safetensors"));
    const auto folder = io::load_model_files(root / "diffusers");
    EXPECT_TRUE(single.unet.config.is_null());
    // sample_size is the training resolution, not architecture: the tiny folders say 32, their
    // original configs (or the families' defaults) more.
    const auto architecture = [](nlohmann::json config) {
      config.erase("sample_size");
      return config;
    };
    EXPECT_EQ(architecture(unet_config(single.unet, single.original).to_json()),
              architecture(unet_config(folder.unet, folder.original).to_json()));
    EXPECT_EQ(architecture(vae_config(single.vae, single.original).to_json()),
              architecture(vae_config(folder.vae, folder.original).to_json()));
    EXPECT_EQ(text_encoder_config(single.text_encoder, single.original.text_encoder).num_heads,
              text_encoder_config(folder.text_encoder, folder.original.text_encoder).num_heads);
    EXPECT_EQ(text_encoder_config(single.text_encoder, single.original.text_encoder).hidden_act,
              text_encoder_config(folder.text_encoder, folder.original.text_encoder).hidden_act);
  }
}

TEST(ComponentConfigs, HeadsFromTheOriginalConfig) {
  io::OriginalConfig original;
  original.unet.num_heads = 5;
  original.unet.num_head_channels = -1;  // LDM: "num_heads at every level"
  EXPECT_EQ(unet_hints(original).num_heads, 5);
  EXPECT_FALSE(unet_hints(original).head_channels.has_value());
  original.unet.num_head_channels = 16;
  EXPECT_EQ(unet_hints(original).head_channels, 16);
  EXPECT_FALSE(unet_hints(original).num_heads.has_value());
  original.size_embedding_width = 128;
  EXPECT_EQ(unet_hints(original).addition_time_embed_dim, 128);
}

}  // namespace
}  // namespace diffuse::pipeline
