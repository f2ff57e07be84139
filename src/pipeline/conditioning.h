#pragma once
// What the UNet is conditioned with on each step of a run: the prompts' per-step texts
// ([from:to:when], [a|b]) encoded once before the first step, and each step's CFG batch built from them.
#include <map>
#include <optional>
#include <vector>

#include <ATen/ATen.h>

#include "pipeline/model.h"
#include "pipeline/progress.h"
#include "pipeline/request.h"
#include "text/prompt_schedule.h"

namespace diffuse::pipeline {

struct Conditioning {
  at::Tensor context;  // [negative, prompt] with guidance, else [prompt]; in the UNet's type
  std::optional<models::AddedConditioning> added;  // SDXL
};

// AUTOMATIC1111 picks a step's text by comparing its 0-based step index with the schedule's
// end_at_step (so "[a:b:3]" keeps "a" for four steps) and counts steps from the first one an img2img
// run takes; so does this. The negative prompt and the prompt may differ in chunk count: the shorter
// is padded with the empty prompt's chunk (AUTOMATIC1111's pad_cond_uncond), so both fit one batch.
class StepConditioning {
 public:
  // Encodes every text now (Phase::Encode, one unit per text), then frees a low-memory model's
  // text encoders.
  StepConditioning(StableDiffusionModel& model, const ResolvedRequest& request, int index = 0,
                   const ProgressCallback& progress = {});

  // Guidance > 1: the batch is [negative, prompt]; otherwise [prompt] (diffusers skips the
  // unconditional pass when guidance cannot change the prediction).
  bool guided() const { return guided_; }
  // The conditioning of `step` (0-based, counted from the run's first step).
  const Conditioning& at_step(int step);

  // The per-step texts, and which of them a step uses.
  const std::vector<text::ScheduledPrompt>& prompt_schedule() const { return prompt_.entries; }

 private:
  struct Schedule {
    std::vector<text::ScheduledPrompt> entries;
    std::vector<PromptConditioning> encoded;
    int index_at(int step) const;
  };
  PromptConditioning padded(PromptConditioning conditioning, int chunks) const;
  Conditioning build(int prompt_index, int negative_index) const;

  StableDiffusionModel& model_;
  const ResolvedRequest& request_;
  bool guided_ = false;
  bool zero_negative_ = false;  // SDXL base: no negative prompt means zero conditioning, not the encoded ""
  Schedule prompt_, negative_;
  PromptConditioning empty_;  // the empty prompt, for padding; encoded only when chunk counts differ
  std::map<std::pair<int, int>, Conditioning> built_;
};

}  // namespace diffuse::pipeline
