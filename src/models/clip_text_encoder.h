#pragma once
// CLIP text transformer (transformers' CLIPTextModel): token ids to one vector per token.
#include <set>
#include <string>

#include <torch/torch.h>

#include "models/config.h"
#include "models/linear.h"

namespace diffuse::models {

struct ClipAttentionImpl : torch::nn::Module {
  ClipAttentionImpl(int64_t width, int64_t heads);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& causal_mask);

  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
  int64_t heads;
};
TORCH_MODULE(ClipAttention);

struct ClipEncoderLayerImpl : torch::nn::Module {
  explicit ClipEncoderLayerImpl(const TextEncoderConfig& config);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& causal_mask);

  ClipAttention self_attn{nullptr};
  torch::nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  Linear fc1{nullptr}, fc2{nullptr};  // registered under "mlp"
  bool quick_gelu;
};
TORCH_MODULE(ClipEncoderLayer);

struct TextEncoderOutput {
  // hidden_states[0] is the embedding output, hidden_states[i] the output of layer i (no final norm).
  std::vector<at::Tensor> hidden_states;
  at::Tensor last_hidden_state;  // final_layer_norm(hidden_states.back())
};

struct ClipTextModelImpl : torch::nn::Module {
  explicit ClipTextModelImpl(const TextEncoderConfig& config);
  // ids: [B, T] int64.
  TextEncoderOutput forward(const at::Tensor& ids);
  // The conditioning a pipeline uses: final_layer_norm of the output `skip_last_layers` layers
  // before the last (0 = last_hidden_state; SD 2.x single files use 1, the penultimate layer).
  at::Tensor encode(const at::Tensor& ids, int skip_last_layers = 0);

  // Saved by some transformers versions; our positions are always 0..T-1.
  static const std::set<std::string>& optional_tensors();

  TextEncoderConfig config;
  torch::nn::Embedding token_embedding{nullptr}, position_embedding{nullptr};
  torch::nn::ModuleList layers;
  torch::nn::LayerNorm final_layer_norm{nullptr};
};
TORCH_MODULE(ClipTextModel);

}  // namespace diffuse::models
