#include "pipeline/conditioning.h"

#include <set>

namespace diffuse::pipeline {

namespace {

// SDXL's text_time conditioning, one row per batch entry: original size (h, w), crop top-left
// (top, left), target size (h, w), as diffusers' _get_add_time_ids (the negative row the same).
at::Tensor sdxl_time_ids(const ResolvedRequest& request, int64_t rows) {
  const auto& original = *request.original_size;
  const auto& crop = *request.crop_coords;
  const auto& target = *request.target_size;
  const auto row = at::tensor({static_cast<float>(original.height), static_cast<float>(original.width),
                               static_cast<float>(crop.y), static_cast<float>(crop.x),
                               static_cast<float>(target.height), static_cast<float>(target.width)},
                              at::kFloat);
  return row.unsqueeze(0).repeat({rows, 1});
}

}  // namespace

StepConditioning::StepConditioning(StableDiffusionModel& model, const ResolvedRequest& request, int index,
                                   const ProgressCallback& progress)
    : model_(model), request_(request) {
  guided_ = request.guided();
  // SDXL base: no negative prompt means zero conditioning, not the encoded "".
  zero_negative_ = model.force_zeros_for_empty_prompt && request.negative_text.empty();
  const auto schedule_of = [&](const std::string& prompt) {
    if (!request.prompt_syntax) return std::vector<text::ScheduledPrompt>{{request.sampler.steps, prompt}};
    return text::prompt_schedule(prompt, request.sampler.steps);
  };
  prompt_ = Schedule{schedule_of(request.prompt_text), {}};
  if (guided_ && !zero_negative_) negative_ = Schedule{schedule_of(request.negative_text), {}};
  const auto texts = prompt_.entries.size() + negative_.entries.size();
  PhaseTimer encoding(progress, Phase::Encode, static_cast<int>(texts), index, request.batch_count);
  encoding.report(0);
  int done = 0;
  for (auto* schedule : {&prompt_, &negative_}) {
    for (const auto& entry : schedule->entries) {
      schedule->encoded.push_back(model.encode(entry.text, request.clip_skip, request.prompt_syntax));
      encoding.report(++done);
    }
  }
  const auto chunk_counts = [](const Schedule& s) {
    std::set<int> counts;
    for (const auto& e : s.encoded) counts.insert(e.chunks);
    return counts;
  };
  const auto counts = chunk_counts(prompt_), negative_counts = chunk_counts(negative_);
  if (guided_ && !zero_negative_ && (counts.size() > 1 || counts != negative_counts)) {
    empty_ = model.encode("", request.clip_skip, request.prompt_syntax);
  }
  model.release_text_encoder_if_low_memory();
}

int StepConditioning::Schedule::index_at(int step) const {
  for (size_t i = 0; i < entries.size(); ++i) {
    if (step <= entries[i].end_at_step) return static_cast<int>(i);
  }
  return static_cast<int>(entries.size()) - 1;
}

const Conditioning& StepConditioning::at_step(int step) {
  const int p = prompt_.index_at(step), n = negative_.entries.empty() ? -1 : negative_.index_at(step);
  auto found = built_.find({p, n});
  if (found == built_.end()) found = built_.emplace(std::pair{p, n}, build(p, n)).first;
  return found->second;
}

PromptConditioning StepConditioning::padded(PromptConditioning conditioning, int chunks) const {
  if (conditioning.chunks >= chunks) return conditioning;
  conditioning.context = at::cat({conditioning.context, empty_.context.repeat({1, chunks - conditioning.chunks, 1})}, 1);
  conditioning.chunks = chunks;
  return conditioning;
}

Conditioning StepConditioning::build(int prompt_index, int negative_index) const {
  PromptConditioning both = prompt_.encoded[static_cast<size_t>(prompt_index)];
  if (guided_) {
    PromptConditioning negative = zero_negative_ ? StableDiffusionModel::zeros_like(both)
                                                 : negative_.encoded[static_cast<size_t>(negative_index)];
    const int chunks = std::max(both.chunks, negative.chunks);
    both = padded(both, chunks);
    negative = padded(negative, chunks);
    // The CFG batch is [negative, prompt], as diffusers stacks it.
    both.context = at::cat({negative.context, both.context});
    if (both.pooled.defined()) both.pooled = at::cat({negative.pooled, both.pooled});
  }
  Conditioning result;
  // Conditioning in the UNet's type once, not on every step.
  result.context = both.context.to(model_.unet_dtype());
  if (model_.is_sdxl()) {
    result.added = models::AddedConditioning{both.pooled.to(model_.unet_dtype()),
                                             sdxl_time_ids(request_, both.context.size(0)).to(model_.unet_dtype())};
  }
  return result;
}

}  // namespace diffuse::pipeline
