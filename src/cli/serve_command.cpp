#include <csignal>
#include <cstdio>
#include <memory>
#include <thread>

#include "cli/builtin_model.h"
#include "cli/commands.h"
#include "cli/decoder_options.h"
#include "pipeline/embeddings.h"
#include "pipeline/model.h"
#include "server/a1111_api.h"
#include "server/generation_worker.h"
#include "server/http_server.h"
#include "server/redis_queue.h"
#include "util/error.h"
#include "util/threads.h"

namespace diffuse::cli {

namespace {

struct ServeOptions {
  std::string model, host = "127.0.0.1", precision, tokenizer;
  int port = 7860;
  int threads = 0;
  server::ServeLimits limits;
  int max_request_mb = 64;
  std::vector<std::string> lora_dirs, embedding_dirs, controlnet_dirs;
  std::string queue;
  std::string vae, preview = "linear";
  double claim_after = 30;
  double keep_finished = 3600;
};

server::HttpFront* running_front = nullptr;

void on_signal(int) {
  if (running_front) running_front->stop();
}

void serve(ServeOptions& o) {
  const bool builtin = o.model.empty();
  if (builtin) o.model = builtin_model_dir().string();
  o.limits.max_request_bytes = static_cast<size_t>(o.max_request_mb) << 20;
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  set_cpu_threads(threads);
  pipeline::LoadOptions load;
  if (!o.tokenizer.empty()) load.tokenizer = o.tokenizer;
  load.dtype = o.precision.empty() ? pipeline::default_dtype() : pipeline::dtype_from_name(o.precision);
  const auto preview = apply_decoder_options(o.vae, o.preview, load);

  // The port and the queue come first: a port in use or an unreachable Redis is named at once, not after
  // a load of seconds, and clients that connect while the model loads wait in the listen backlog.
  std::unique_ptr<server::JobQueue> queue;
  if (o.queue.empty()) {
    queue = server::make_local_queue();
  } else {
    server::RedisQueueOptions redis;
    redis.url = o.queue;
    redis.claim_after = std::chrono::milliseconds(static_cast<int64_t>(o.claim_after * 1000));
    redis.keep_finished = std::chrono::seconds(static_cast<int64_t>(o.keep_finished));
    queue = server::make_redis_queue(redis);
  }
  server::FrontOptions front_options;
  front_options.host = o.host;
  front_options.port = o.port;
  front_options.limits = o.limits;
  front_options.model_name = pipeline::model_name_for(o.model);
  front_options.model_path = o.model;
  front_options.controlnet_dirs.assign(o.controlnet_dirs.begin(), o.controlnet_dirs.end());
  const auto limits = o.limits;
  const auto controlnet_dirs = front_options.controlnet_dirs;
  front_options.check = [limits, controlnet_dirs](const nlohmann::json& payload, bool img2img) {
    server::ApiRequest api;
    try {
      api = server::parse_a1111_request(payload, img2img, limits);
      api.request.controlnet_dirs = controlnet_dirs;
      pipeline::validate(api.request);
    } catch (const InvalidParameter& error) {
      throw server::with_a1111_field(error, api);
    }
  };
  server::HttpFront front(*queue, front_options);
  const int port = front.bind();

  std::fprintf(stderr, "loading %s\n", o.model.c_str());
  auto model = pipeline::StableDiffusionModel::load(o.model, load);
  const auto embeddings = pipeline::add_embeddings(model, {}, {o.embedding_dirs.begin(), o.embedding_dirs.end()});
  for (const auto& skipped : embeddings.skipped) std::fprintf(stderr, "warning: embedding skipped: %s\n", skipped.c_str());
  server::GenerationWorker worker(model, *queue, o.limits, {o.lora_dirs.begin(), o.lora_dirs.end()},
                                 front_options.controlnet_dirs);
  worker.set_preview(preview);
  worker.start(threads);
  running_front = &front;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  // Tests and scripts read this line for the port (with --port 0, any free one).
  std::printf("diffuse: serving %s on http://%s:%d\n", model.name.c_str(), o.host.c_str(), port);
  std::fflush(stdout);
  front.serve();
  running_front = nullptr;
  worker.stop();
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  auto* command = app.add_subcommand(
      "serve", "Keep a model loaded and generate over HTTP: a web page at /, AUTOMATIC1111's API at /sdapi/v1");
  command->add_option("-m,--model", o->model, "Diffusers folder or single file (default: the built-in model)");
  command->add_option("--host", o->host, "Address to listen on (default 127.0.0.1: this machine only)");
  command->add_option("--port", o->port, "Port (default 7860; 0: any free port)")->check(CLI::Range(0, 65535));
  command->add_option("--threads", o->threads, "CPU threads for generation (default: every core)")->check(CLI::PositiveNumber);
  command->add_option("--precision", o->precision, "fp32 or bf16 (default: bf16 where the CPU has it)");
  command->add_option("--tokenizer", o->tokenizer, "Tokenizer folder or CLIP's bpe .gz, for single files");
  command->add_option("--vae", o->vae, "taesd:PATH: decode with TAESD instead of the model's VAE (~30x faster at 512x512)");
  command->add_option("--preview", o->preview,
                      "Live previews: linear (free, latent-sized), vae, or taesd (taesd:PATH, or --vae's TAESD)");
  command->add_option("--lora-dir", o->lora_dirs, "Folder of LoRAs for <lora:name:weight> tags (repeatable)");
  command->add_option("--controlnet-dir", o->controlnet_dirs,
                      "Folder of ControlNets that AUTOMATIC1111 payloads' alwayson_scripts.controlnet units name "
                      "(repeatable; GET /controlnet/model_list lists them)");
  command->add_option("--embeddings-dir", o->embedding_dirs, "Folder of textual-inversion embeddings (repeatable)");
  command->add_option("--max-width", o->limits.max_width, "Largest width a request may ask for (default 2048)")->check(CLI::PositiveNumber);
  command->add_option("--max-height", o->limits.max_height, "Largest height (default 2048)")->check(CLI::PositiveNumber);
  command->add_option("--max-steps", o->limits.max_steps, "Most steps (default 150)")->check(CLI::PositiveNumber);
  command->add_option("--max-images", o->limits.max_images, "Most images per request, batch_size x n_iter (default 16)")
      ->check(CLI::PositiveNumber);
  command->add_option("--max-request-mb", o->max_request_mb, "Largest request body in MiB (default 64)")->check(CLI::PositiveNumber);
  command->add_option("--queue", o->queue,
                      "redis://HOST:PORT: be one of several workers sharing a job queue in Redis (default: this process's own)");
  command->add_option("--queue-claim-after", o->claim_after,
                      "Seconds a worker may be silent before another takes its job again (default 30)")
      ->check(CLI::PositiveNumber);
  command->add_option("--queue-keep", o->keep_finished, "Seconds finished jobs stay in Redis (default 3600)")
      ->check(CLI::PositiveNumber);
  command->callback([o] { serve(*o); });
}

}  // namespace diffuse::cli
