#pragma once
// CLIP text transformer (transformers' CLIPTextModel, or CLIPTextModelWithProjection when the config
// has a projection_dim): token ids to one vector per token, and one pooled vector per prompt.
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
  // ids: [B, T] int64. `token_embeds` [B, T, hidden], when given, replaces token_embedding(ids): the
  // table's rows with textual-inversion vectors written over some positions.
  TextEncoderOutput forward(const at::Tensor& ids, const at::Tensor& token_embeds = {});
  // The conditioning a pipeline uses: final_layer_norm of the output `skip_last_layers` layers
  // before the last (0 = last_hidden_state; SD 2.x single files use 1, the penultimate layer).
  at::Tensor encode(const at::Tensor& ids, int skip_last_layers = 0, const at::Tensor& token_embeds = {});
  // hidden_states[size - 1 - from_last] as it is, WITHOUT the final layer norm: SDXL conditions on
  // from_last = 1 (hidden_states[-2]) of both encoders. from_last 0 is the last layer's output
  // before the norm; from_last = num_layers the embedding output.
  at::Tensor hidden_state(const TextEncoderOutput& output, int from_last) const;
  // The pooled embedding: last_hidden_state at each prompt's pooling position (config.eos_token_id
  // 2: the highest id, i.e. the first end-of-text token; otherwise the first position holding
  // eos_token_id), times text_projection when there is one. `ids` [B, T] as given to forward().
  // Returns [B, projection_dim] (transformers' text_embeds) or [B, hidden] (pooler_output).
  at::Tensor pooled(const at::Tensor& ids, const TextEncoderOutput& output);

  // Saved by some transformers versions; our positions are always 0..T-1.
  static const std::set<std::string>& optional_tensors();

  TextEncoderConfig config;
  torch::nn::Embedding token_embedding{nullptr}, position_embedding{nullptr};
  torch::nn::ModuleList layers;
  torch::nn::LayerNorm final_layer_norm{nullptr};
  // CLIPTextModelWithProjection only (config.projection_dim > 0): bias-free, [projection_dim, hidden].
  Linear text_projection{nullptr};
};
TORCH_MODULE(ClipTextModel);

}  // namespace diffuse::models
