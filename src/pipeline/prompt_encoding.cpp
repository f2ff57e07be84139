// How StableDiffusionModel turns a prompt into conditioning: AUTOMATIC1111's reading
// (modules/sd_hijack_clip.py) or diffusers' plain one.
#include "pipeline/model.h"

#include <cmath>

#include "io/model_files.h"
#include "util/error.h"

namespace diffuse::pipeline {

namespace {

// Each chunk's embeddings as one encoder reads them.
struct EncoderChunk {
  at::Tensor ids;           // [1, 77]
  at::Tensor token_embeds;  // [1, 77, hidden] with embedding vectors in place, or undefined when there are none
  at::Tensor multipliers;   // [77] float32
  bool weighted = false;    // some multiplier is not 1
};

EncoderChunk encoder_chunk(const text::PromptChunk& chunk, const text::ClipTokenizer& tokenizer,
                           models::ClipTextModelImpl& encoder, const std::vector<at::Tensor>& vectors) {
  EncoderChunk out;
  out.ids = at::tensor(text::encoder_ids(chunk, tokenizer.end_id(), tokenizer.pad_id()), at::kLong).unsqueeze(0);
  // float32 from the Python floats, as torch.asarray(batch_multipliers) gives them.
  out.multipliers = at::tensor(chunk.multipliers, at::kDouble).to(at::kFloat);
  out.weighted = std::any_of(chunk.multipliers.begin(), chunk.multipliers.end(), [](double m) { return m != 1.0; });
  if (!chunk.embeddings.empty()) {
    // AUTOMATIC1111's EmbeddingsWithFixes: the table's rows, then each embedding's vectors over its positions.
    out.token_embeds = encoder.token_embedding(out.ids).clone();
    for (const auto& placement : chunk.embeddings) {
      const auto& v = vectors[static_cast<size_t>(placement.embedding)];
      out.token_embeds[0].narrow(0, placement.position, v.size(0)).copy_(v);
    }
  }
  return out;
}

// AUTOMATIC1111's "Original" emphasis: every token's vector times its multiplier, then the whole
// chunk rescaled so its mean is what it was. An encoder whose final norm has no bias (an untrained
// one) gives a mean of about zero: AUTOMATIC1111 divides by it and gets NaN or noise, so there the
// rescale, which means nothing, is left out.
at::Tensor emphasize(const at::Tensor& z, const EncoderChunk& chunk) {
  if (!chunk.weighted) return z;
  const auto original_mean = z.mean().item<double>();
  auto weighted = z * chunk.multipliers.to(z.scalar_type()).reshape({1, -1, 1}).expand(z.sizes());
  const auto new_mean = weighted.mean().item<double>();
  const auto scale = weighted.abs().mean().item<double>();
  if (std::abs(new_mean) <= 1e-4 * scale) return weighted;
  return weighted * (original_mean / new_mean);
}

std::vector<text::EmbeddingName> embedding_names(const text::ClipTokenizer& tokenizer,
                                                 const std::vector<TextualInversion>& embeddings) {
  std::vector<text::EmbeddingName> names;
  for (const auto& e : embeddings) names.push_back({e.name, tokenizer.tokenize(e.name), static_cast<int>(e.vectors.size(0))});
  return names;
}

}  // namespace

text::ChunkedPrompt StableDiffusionModel::chunk_prompt(const std::string& prompt) const {
  return text::chunk_prompt(tokenizer, prompt, embedding_names(tokenizer, embeddings_),
                            text::chunk_options_for(tokenizer));
}

void StableDiffusionModel::add_embedding(TextualInversion embedding) {
  const auto check = [&](const at::Tensor& vectors, int hidden, const char* encoder) {
    if (!vectors.defined() || vectors.dim() != 2 || vectors.size(0) < 1 || vectors.size(1) != hidden) {
      throw InvalidParameter("embedding", "'" + embedding.name + "' has vectors " +
                                              (vectors.defined() ? c10::str(vectors.sizes()) : std::string("(none)")) +
                                              " for the " + encoder + ", which takes [n, " + std::to_string(hidden) + "]");
    }
  };
  if (embedding.name.empty() || tokenizer.tokenize(embedding.name).empty()) {
    throw InvalidParameter("embedding", "the name '" + embedding.name + "' has no tokens for a prompt to match");
  }
  check(embedding.vectors, text_hidden_size_, text_hidden_size_2_ ? "first text encoder" : "text encoder");
  if (text_hidden_size_2_) {
    check(embedding.vectors_2, text_hidden_size_2_, "second text encoder");
    if (embedding.vectors_2.size(0) != embedding.vectors.size(0)) {
      throw InvalidParameter("embedding", "'" + embedding.name + "' has " + std::to_string(embedding.vectors.size(0)) +
                                              " vectors for one encoder and " +
                                              std::to_string(embedding.vectors_2.size(0)) + " for the other");
    }
  }
  embedding.vectors = embedding.vectors.to(at::kFloat).contiguous();
  if (embedding.vectors_2.defined()) embedding.vectors_2 = embedding.vectors_2.to(at::kFloat).contiguous();
  auto same = std::find_if(embeddings_.begin(), embeddings_.end(), [&](const auto& e) { return e.name == embedding.name; });
  if (same != embeddings_.end()) {
    *same = std::move(embedding);
  } else {
    embeddings_.push_back(std::move(embedding));
  }
  encoded_prompts_.clear();
}

PromptConditioning StableDiffusionModel::encode(const std::string& prompt, int clip_skip, bool prompt_syntax) {
  torch::NoGradGuard no_grad;
  const auto key = std::make_tuple(prompt, clip_skip, prompt_syntax);
  if (options_.low_memory) {
    auto cached = encoded_prompts_.find(key);
    if (cached != encoded_prompts_.end()) return cached->second;
  }
  if (!text_encoder) {  // released: load them again, alone
    auto files = io::load_model_files(path_, io::loading_dtype(path_, at::kFloat));
    load_text_encoders(files);
    apply_loras(true);
  }
  auto encoded = prompt_syntax ? encode_chunks(prompt, clip_skip) : encode_plain(prompt, clip_skip);
  if (options_.low_memory) encoded_prompts_[key] = encoded;
  return encoded;
}

PromptConditioning StableDiffusionModel::encode_plain(const std::string& prompt, int clip_skip) {
  const auto ids_of = [](const text::ClipTokenizer& t, const std::string& text) {
    return at::tensor(t.encode_padded(text), at::kLong).unsqueeze(0);
  };
  PromptConditioning encoded;
  if (text_encoder_2) {
    // diffusers' StableDiffusionXLPipeline.encode_prompt: each encoder's hidden_states[-(clip_skip + 1)]
    // (the penultimate layer by default), without the final norm, side by side; the pooled embedding
    // is the second encoder's projected one.
    const auto ids = ids_of(tokenizer, prompt), ids_2 = ids_of(*tokenizer_2, prompt);
    const auto first = text_encoder->forward(ids);
    const auto second = text_encoder_2->forward(ids_2);
    encoded.context = at::cat({text_encoder->hidden_state(first, clip_skip), text_encoder_2->hidden_state(second, clip_skip)}, -1);
    encoded.pooled = text_encoder_2->pooled(ids_2, second);
  } else {
    encoded.context = text_encoder->encode(ids_of(tokenizer, prompt), clip_skip - 1);
  }
  return encoded;
}

PromptConditioning StableDiffusionModel::encode_chunks(const std::string& prompt, int clip_skip) {
  std::vector<at::Tensor> vectors, vectors_2;
  for (const auto& e : embeddings_) {
    vectors.push_back(e.vectors.to(text_encoder->token_embedding->weight.scalar_type()));
    if (text_encoder_2) vectors_2.push_back(e.vectors_2.to(text_encoder_2->token_embedding->weight.scalar_type()));
  }
  auto chunks = chunk_prompt(prompt).chunks;
  std::vector<text::PromptChunk> chunks_2;
  if (text_encoder_2) {
    // The same vocabulary; only the pad token (an added token, "!") can tokenize differently.
    chunks_2 = text::chunk_prompt(*tokenizer_2, prompt, embedding_names(*tokenizer_2, embeddings_),
                                 text::chunk_options_for(*tokenizer_2))
                   .chunks;
    const auto empty = text::chunk_prompt(tokenizer, "", {}, text::chunk_options_for(tokenizer)).chunks[0];
    while (chunks.size() < chunks_2.size()) chunks.push_back(empty);
    while (chunks_2.size() < chunks.size()) chunks_2.push_back(empty);
  }
  PromptConditioning encoded;
  encoded.chunks = static_cast<int>(chunks.size());
  std::vector<at::Tensor> contexts;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const auto first = encoder_chunk(chunks[i], tokenizer, *text_encoder, vectors);
    if (!text_encoder_2) {
      contexts.push_back(emphasize(text_encoder->encode(first.ids, clip_skip - 1, first.token_embeds), first));
      continue;
    }
    // SDXL as diffusers (see encode_plain), each encoder's chunk weighted on its own as AUTOMATIC1111's
    // two embedders do; the pooled embedding is the first chunk's.
    const auto second = encoder_chunk(chunks_2[i], *tokenizer_2, *text_encoder_2, vectors_2);
    const auto out = text_encoder->forward(first.ids, first.token_embeds);
    const auto out_2 = text_encoder_2->forward(second.ids, second.token_embeds);
    contexts.push_back(at::cat({emphasize(text_encoder->hidden_state(out, clip_skip), first),
                                emphasize(text_encoder_2->hidden_state(out_2, clip_skip), second)},
                               -1));
    if (i == 0) encoded.pooled = text_encoder_2->pooled(second.ids, out_2);
  }
  encoded.context = contexts.size() == 1 ? contexts[0] : at::cat(contexts, 1);
  return encoded;
}

}  // namespace diffuse::pipeline
