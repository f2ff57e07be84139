#include "server/generation_worker.h"

#include <chrono>
#include <cstdio>
#include <optional>

#include "explain/step_previews.h"
#include "image/png_file.h"
#include "pipeline/generation.h"
#include "util/error.h"
#include "util/threads.h"

namespace diffuse::server {

using nlohmann::json;

GenerationWorker::GenerationWorker(pipeline::StableDiffusionModel& model, JobQueue& queue, ServeLimits limits,
                                   std::vector<std::filesystem::path> lora_dirs,
                                   std::vector<std::filesystem::path> controlnet_dirs)
    : model_(model),
      queue_(queue),
      limits_(limits),
      lora_dirs_(std::move(lora_dirs)),
      controlnet_dirs_(std::move(controlnet_dirs)) {}

GenerationWorker::~GenerationWorker() { stop(); }

void GenerationWorker::start(int threads) {
  stopping_ = false;
  thread_ = std::thread([this, threads] {
    if (threads > 0) set_cpu_threads(threads);
    while (!stopping_) {
      std::optional<Job> job;
      try {
        job = queue_.take(std::chrono::milliseconds(200));
      } catch (const Error& error) {
        // A shared queue out of reach (Redis restarting): say so, and try again shortly.
        std::fprintf(stderr, "diffuse serve: %s\n", error.what());
        std::this_thread::sleep_for(std::chrono::seconds(1));
        continue;
      }
      if (!job) continue;
      {
        std::lock_guard lock(current_mutex_);
        current_ = job->id;
      }
      const auto status = run(*job);
      queue_.finish(job->id, status);
      std::lock_guard lock(current_mutex_);
      current_.clear();
    }
  });
}

void GenerationWorker::stop() {
  stopping_ = true;
  {
    std::lock_guard lock(current_mutex_);
    if (!current_.empty()) queue_.interrupt(current_);
  }
  if (thread_.joinable()) thread_.join();
}

JobStatus GenerationWorker::run(const Job& job) {
  JobStatus status;
  ApiRequest api;
  pipeline::ResolvedRequest request;
  try {
    api = parse_a1111_request(job.payload, job.kind == "img2img", limits_);
    api.request.lora_dirs = lora_dirs_;
    api.request.controlnet_dirs = controlnet_dirs_;
    request = pipeline::resolve(pipeline::validate(api.request), model_);
  } catch (const InvalidParameter& error) {
    status.state = JobState::Failed;
    status.error = with_a1111_field(error, api).what();
    status.error_status = 422;
    return status;
  } catch (const Error& error) {
    status.state = JobState::Failed;
    status.error = error.what();
    status.error_status = 422;
    return status;
  }

  std::vector<pipeline::GeneratedImage> images;
  std::vector<std::string> pngs;
  const auto on_progress = [&](const pipeline::Progress& p) {
    if (p.phase == pipeline::Phase::Denoise && p.total > 0) {
      const double fraction = (p.image + static_cast<double>(p.done) / p.total) / std::max(1, p.images);
      std::string preview;
      // The live preview AUTOMATIC1111's UI shows: the clean-latent estimate, through the linear map
      // (latent-sized) or a decoder.
      if (preview_ != explain::PreviewMode::Linear && p.denoised) {
        preview = image::encode_png(explain::latents_preview(model_, *p.denoised, preview_));
      } else if (p.denoised && p.denoised->dim() == 4 && p.denoised->size(1) == 4) {
        preview = image::encode_png(explain::latents_to_rgb_linear(*p.denoised));
      }
      queue_.update(job.id,
                    {{"step", p.done}, {"steps", p.total}, {"image", p.image}, {"images", p.images},
                     {"eta_seconds", p.eta_seconds}, {"fraction", fraction}},
                    preview);
    }
    return !queue_.interrupted(job.id);
  };
  try {
    pipeline::generate(model_, request, on_progress, [&](const pipeline::GeneratedImage& image) {
      pngs.push_back(image::encode_png(image.pixels, {{"parameters", image.parameters}}));
      images.push_back(image);
    });
    status.state = JobState::Done;
  } catch (const pipeline::Cancelled&) {
    status.state = JobState::Interrupted;  // with the images finished before the interrupt
  } catch (const Error& error) {
    status.state = JobState::Failed;
    status.error = error.what();
    status.error_status = 500;
    return status;
  }
  status.result = a1111_response(job.payload, api, request, images, pngs, model_.name);
  return status;
}

}  // namespace diffuse::server
