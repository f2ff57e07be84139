#include "pipeline/component_configs.h"

namespace diffuse::pipeline {

models::TextEncoderHints text_encoder_hints(const io::OriginalConfig::TextEncoder& original) {
  models::TextEncoderHints hints;
  hints.open_clip = original.open_clip;
  hints.num_heads = original.num_heads;
  hints.hidden_act = original.activation;
  hints.bos_token_id = original.bos_token_id;
  hints.eos_token_id = original.eos_token_id;
  hints.pad_token_id = original.pad_token_id;
  return hints;
}

models::UNetHints unet_hints(const io::OriginalConfig& original) {
  models::UNetHints hints;
  // LDM's num_head_channels -1 means "num_heads heads at every level".
  const auto head_channels = original.unet.num_head_channels;
  if (head_channels && *head_channels > 0) {
    hints.head_channels = head_channels;
  } else if (original.unet.num_heads && *original.unet.num_heads > 0) {
    hints.num_heads = original.unet.num_heads;
  }
  hints.sample_size = original.unet.image_size;
  hints.added_conditioning_inputs = original.unet.adm_in_channels;
  hints.addition_time_embed_dim = original.size_embedding_width;
  hints.norm_num_groups = original.unet.norm_num_groups;
  return hints;
}

models::VaeHints vae_hints(const io::OriginalConfig& original) {
  return {original.vae.scale_factor, original.vae.resolution, original.vae.norm_num_groups};
}

models::TextEncoderConfig text_encoder_config(const io::ComponentWeights& weights,
                                              const io::OriginalConfig::TextEncoder& original) {
  return weights.config.is_null() ? models::TextEncoderConfig::infer(weights.tensors, text_encoder_hints(original))
                                  : models::TextEncoderConfig::from_json(weights.config);
}

models::UNetConfig unet_config(const io::ComponentWeights& weights, const io::OriginalConfig& original) {
  return weights.config.is_null() ? models::UNetConfig::infer(weights.tensors, unet_hints(original))
                                  : models::UNetConfig::from_json(weights.config);
}

models::VaeConfig vae_config(const io::ComponentWeights& weights, const io::OriginalConfig& original) {
  return weights.config.is_null() ? models::VaeConfig::infer(weights.tensors, vae_hints(original))
                                  : models::VaeConfig::from_json(weights.config);
}

sampling::SchedulerConfig scheduler_config(const io::ModelFiles& files) {
  if (!files.scheduler_config.is_null()) return sampling::SchedulerConfig::from_json(files.scheduler_config);
  sampling::SchedulerConfig config;
  const auto& original = files.original;
  config.num_train_timesteps = original.train_timesteps.value_or(config.num_train_timesteps);
  config.beta_start = original.beta_start.value_or(config.beta_start);
  config.beta_end = original.beta_end.value_or(config.beta_end);
  if (original.v_prediction) config.prediction = sampling::Prediction::VPrediction;
  return config;
}

}  // namespace diffuse::pipeline
