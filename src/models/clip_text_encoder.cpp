#include "models/clip_text_encoder.h"

#include <limits>

#include "models/attention.h"
#include "models/parameter_init.h"
#include "util/error.h"

namespace diffuse::models {

namespace {

torch::nn::LayerNorm layer_norm(int64_t width, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(eps));
}

}  // namespace

ClipAttentionImpl::ClipAttentionImpl(int64_t width, int64_t heads_) : heads(heads_) {
  q_proj = register_module("q_proj", Linear(width, width));
  k_proj = register_module("k_proj", Linear(width, width));
  v_proj = register_module("v_proj", Linear(width, width));
  out_proj = register_module("out_proj", Linear(width, width));
}

at::Tensor ClipAttentionImpl::forward(const at::Tensor& x, const at::Tensor& causal_mask) {
  return out_proj(scaled_dot_product_attention(q_proj(x), k_proj(x), v_proj(x), heads, causal_mask));
}

ClipEncoderLayerImpl::ClipEncoderLayerImpl(const TextEncoderConfig& c) : quick_gelu(c.hidden_act == "quick_gelu") {
  self_attn = register_module("self_attn", ClipAttention(c.hidden_size, c.num_heads));
  layer_norm1 = register_module("layer_norm1", layer_norm(c.hidden_size, c.layer_norm_eps));
  auto mlp = std::make_shared<torch::nn::Module>("CLIPMLP");
  fc1 = mlp->register_module("fc1", Linear(c.hidden_size, c.intermediate_size));
  fc2 = mlp->register_module("fc2", Linear(c.intermediate_size, c.hidden_size));
  register_module("mlp", mlp);
  layer_norm2 = register_module("layer_norm2", layer_norm(c.hidden_size, c.layer_norm_eps));
}

at::Tensor ClipEncoderLayerImpl::forward(const at::Tensor& x, const at::Tensor& causal_mask) {
  auto h = x + self_attn(layer_norm1(x), causal_mask);
  auto inner = fc1(layer_norm2(h));
  inner = quick_gelu ? inner * at::sigmoid(1.702 * inner) : at::gelu(inner);
  return h + fc2(inner);
}

namespace {

// Under SkipParameterInit the table is left uninitialized: 49408 x 768 normal draws are not free.
torch::nn::Embedding embedding_table(int64_t rows, int64_t width) {
  if (!SkipParameterInit::active()) return torch::nn::Embedding(rows, width);
  torch::nn::Embedding table(1, width);
  table->options.num_embeddings(rows);
  table->weight.set_data(torch::empty({rows, width}));
  return table;
}

}  // namespace

const std::set<std::string>& ClipTextModelImpl::optional_tensors() {
  static const std::set<std::string> names{"text_model.embeddings.position_ids"};
  return names;
}

ClipTextModelImpl::ClipTextModelImpl(const TextEncoderConfig& c) : config(c) {
  auto text_model = std::make_shared<torch::nn::Module>("CLIPTextTransformer");
  auto embeddings = std::make_shared<torch::nn::Module>("CLIPTextEmbeddings");
  token_embedding = embeddings->register_module("token_embedding", embedding_table(c.vocab_size, c.hidden_size));
  position_embedding = embeddings->register_module("position_embedding", embedding_table(c.max_positions, c.hidden_size));
  text_model->register_module("embeddings", embeddings);
  auto encoder = std::make_shared<torch::nn::Module>("CLIPEncoder");
  for (int i = 0; i < c.num_layers; ++i) layers->push_back(ClipEncoderLayer(c));
  encoder->register_module("layers", layers);
  text_model->register_module("encoder", encoder);
  final_layer_norm = text_model->register_module("final_layer_norm", layer_norm(c.hidden_size, c.layer_norm_eps));
  register_module("text_model", text_model);
  if (c.projection_dim > 0) {
    text_projection = register_module(
        "text_projection", Linear(torch::nn::LinearOptions(c.hidden_size, c.projection_dim).bias(false)));
  }
}

TextEncoderOutput ClipTextModelImpl::forward(const at::Tensor& ids, const at::Tensor& token_embeds) {
  const auto tokens = ids.size(1);
  if (tokens > config.max_positions) {
    throw Error("text encoder: " + std::to_string(tokens) + " tokens exceed the model's " +
                std::to_string(config.max_positions) + " positions");
  }
  const auto weight = token_embedding->weight;
  auto positions = at::arange(tokens, at::TensorOptions().dtype(at::kLong));
  if (token_embeds.defined() && (token_embeds.dim() != 3 || token_embeds.size(0) != ids.size(0) ||
                                 token_embeds.size(1) != tokens || token_embeds.size(2) != weight.size(1))) {
    throw Error("text encoder: token embeddings of shape " + c10::str(token_embeds.sizes()) + " for ids " +
                c10::str(ids.sizes()) + " (hidden size " + std::to_string(weight.size(1)) + ")");
  }
  auto x = (token_embeds.defined() ? token_embeds : token_embedding(ids)) + position_embedding(positions).unsqueeze(0);
  // Each token sees only itself and the tokens before it.
  // transformers' torch.finfo(dtype).min: the lowest value the type holds (fp32's overflows bf16).
  const double lowest = weight.scalar_type() == at::kBFloat16 ? static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest())
                                                              : static_cast<double>(std::numeric_limits<float>::lowest());
  auto causal_mask = at::full({tokens, tokens}, lowest, weight.options()).triu(1);
  TextEncoderOutput out;
  out.hidden_states.push_back(x);
  for (const auto& layer : *layers) {
    x = layer->as<ClipEncoderLayerImpl>()->forward(x, causal_mask);
    out.hidden_states.push_back(x);
  }
  out.last_hidden_state = final_layer_norm(x);
  return out;
}

at::Tensor ClipTextModelImpl::encode(const at::Tensor& ids, int skip_last_layers, const at::Tensor& token_embeds) {
  auto out = forward(ids, token_embeds);
  if (skip_last_layers <= 0) return out.last_hidden_state;
  if (skip_last_layers >= config.num_layers) {
    throw Error("text encoder: cannot skip " + std::to_string(skip_last_layers) + " of " +
                std::to_string(config.num_layers) + " layers");
  }
  return final_layer_norm(out.hidden_states[out.hidden_states.size() - 1 - skip_last_layers]);
}

at::Tensor ClipTextModelImpl::hidden_state(const TextEncoderOutput& output, int from_last) const {
  const auto size = static_cast<int>(output.hidden_states.size());
  if (from_last < 0 || from_last >= size) {
    throw Error("text encoder: no hidden state " + std::to_string(from_last) + " from the last; this encoder has " +
                std::to_string(size) + " (the embeddings and " + std::to_string(size - 1) + " layers)");
  }
  return output.hidden_states[size - 1 - from_last];
}

at::Tensor ClipTextModelImpl::pooled(const at::Tensor& ids, const TextEncoderOutput& output) {
  const auto& last = output.last_hidden_state;
  if (ids.dim() != 2 || !last.defined() || ids.size(0) != last.size(0) || ids.size(1) != last.size(1)) {
    throw Error("text encoder: pooling ids of shape " + c10::str(ids.sizes()) + " do not match the output " +
                (last.defined() ? c10::str(last.sizes()) : std::string("(none)")));
  }
  // transformers: eos_token_id 2 is the legacy configs' value, meaning "pool at argmax(ids)"
  // (CLIP's end-of-text token has the highest id); argmax takes the first of equal maxima.
  at::Tensor positions;
  if (config.eos_token_id == 2) {
    positions = ids.to(at::kLong).argmax(-1);
  } else {
    const auto is_eos = ids.to(at::kLong).eq(config.eos_token_id);
    if (!is_eos.any(-1).all().item<bool>()) {
      throw Error("text encoder: a prompt has no end-of-text token (id " + std::to_string(config.eos_token_id) +
                  ") to pool at");
    }
    positions = is_eos.to(at::kLong).argmax(-1);
  }
  auto pooled = last.index({at::arange(last.size(0), positions.options()), positions});
  return text_projection ? text_projection(pooled) : pooled;
}

}  // namespace diffuse::models
