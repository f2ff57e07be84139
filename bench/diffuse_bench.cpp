// diffuse-bench: times a full-size random-weight model section by section against this machine's
// own ceiling. Prints figures; asserts nothing about time.
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include "flop_count.h"
#include "measure.h"
#include "models/attention.h"
#include "models/kernel_options.h"
#include "util/memory.h"
#include "image/png_file.h"
#include "pipeline/generation.h"
#include "pipeline/upscale.h"
#include "random_model.h"
#include "report.h"
#include "util/error.h"
#include "util/threads.h"

namespace diffuse::bench {

namespace fs = std::filesystem;

namespace {

struct BenchOptions {
  std::string arch = "sd15";
  std::string model;  // default: bench-models/<arch>-random-fp16.safetensors
  std::string tokenizer = std::string(DIFFUSE_BENCH_SHARED_DIR) + "/clip";
  std::string fixture = std::string(DIFFUSE_BENCH_SHARED_DIR) + "/fixtures/tiny-sd1/diffusers";
  std::string precision = "both";
  int steps = 2;
  int threads = 0;
  bool skip_512 = false;
  bool skip_generation = false;
  bool skip_fast = false;
  bool vae_tiling = false;
  bool low_memory_run = false;
  bool upscaler_only = false;
  std::string upscaler;  // default: bench-models/rrdbnet-x4plus-random.safetensors
  std::string json;
};

std::string read_first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

std::string utc_now() {
  char text[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  return text;
}

// Times one section: resets the peak-memory mark first so each row's peak is its own. Steady-state
// sections (one network evaluation) run once untimed after the reset: the first call creates
// oneDNN's primitives and, since the reset hands freed memory back, page-faults in every activation,
// which a sampler's second and later steps do not pay (512x512 UNet step: 3.7 s cold, 3.2 s warm).
enum class Warmup { none, once };

template <typename Run>
Row timed(const std::string& section, at::ScalarType dtype, double flops, double ceiling, Warmup warmup, Run&& run) {
  std::fprintf(stderr, "  %s (%s) ...\n", section.c_str(), pipeline::dtype_name(dtype).c_str());
  reset_peak_rss();
  Row row;
  row.section = section;
  row.precision = pipeline::dtype_name(dtype);
  row.seconds = time_best(run, 1, warmup == Warmup::once ? 1 : 0);
  row.gflop = flops / 1e9;
  row.ceiling_gflops = ceiling;
  row.peak_rss_mib = peak_rss_mib();
  std::fprintf(stderr, "    %.0f ms, peak %.0f MiB\n", 1000 * row.seconds, row.peak_rss_mib);
  return row;
}

struct PrecisionResult {
  std::vector<Row> rows;
  at::Tensor pixels;  // the whole generation's image, for PSNR against the other precision
  double generation_peak_mib = 0;  // load + generation, the process's peak for this precision
};

// The image sides timed: half the model's training size and (without --skip-512) the size itself.
std::vector<int> sides(const Architecture& arch, const BenchOptions& o) {
  if (o.skip_512) return {arch.side / 2};
  return {arch.side / 2, arch.side};
}

// The few-step path: the model loaded again with a random full-size TAESD as its decoder (written
// beside the checkpoint when absent), TAESD's decode, and whole images text to PNG bytes: SD-Turbo's
// settings (1 euler_a step, trailing spacing, CFG 0: one UNet evaluation at batch 1) and LCM's
// (4 steps, CFG 1). Each image row twice: the first after loading (oneDNN creates its primitives),
// then the next.
void add_fast_rows(const BenchOptions& o, const Architecture& arch, at::ScalarType dtype, const Ceiling& ceiling,
                   std::optional<pipeline::StableDiffusionModel>& model, std::vector<Row>& rows) {
  const fs::path taesd = fs::path(o.model).parent_path() / "taesd-random";
  if (!fs::exists(taesd / "taesd_decoder.safetensors")) {
    std::fprintf(stderr, "writing %s (random full-size TAESD) ...\n", taesd.c_str());
    write_random_taesd(taesd);
  }
  model.reset();
  release_free_memory();
  pipeline::LoadOptions load;
  load.tokenizer = fs::path(o.tokenizer);
  load.dtype = dtype;
  load.taesd = taesd / "taesd_decoder.safetensors";
  load.taesd_as_vae = true;
  rows.push_back(timed("load with --vae taesd", dtype, 0, 0, Warmup::none,
                       [&] { model.emplace(pipeline::StableDiffusionModel::load(o.model, load)); }));
  const int latent = arch.side / 8;
  const std::string size = std::to_string(arch.side) + "x" + std::to_string(arch.side);
  const double taesd_flops = taesd_decode_flops(model->taesd->config, 1, latent, latent).total();
  const auto z = at::randn({1, 4, latent, latent});
  rows.push_back(timed("taesd decode " + size, dtype, taesd_flops, ceiling.conv_gflops, Warmup::once,
                       [&] { model->decode_latents(z); }));
  double text_flops = text_encoder_flops(arch.text_encoder, 1).total();
  if (arch.text_encoder_2) text_flops += text_encoder_flops(*arch.text_encoder_2, 1).total();
  struct FastRun {
    const char* label;
    const char* sampler;
    const char* spacing;
    int steps;
    double cfg;
  };
  for (const auto& run : {FastRun{"1 step euler_a trailing, CFG 0", "euler_a", "trailing", 1, 0.0},
                          FastRun{"4 steps lcm, CFG 1", "lcm", "", 4, 1.0}}) {
    pipeline::GenerationRequest request;
    request.prompt = "a photo of a cat";
    request.sampler = run.sampler;
    request.timestep_spacing = run.spacing;
    request.steps = run.steps;
    request.cfg_scale = run.cfg;
    request.width = request.height = arch.side;
    const auto params = pipeline::resolve(request, *model);
    const double flops = text_flops + run.steps * unet_flops(arch.unet, 1, latent, latent).total() + taesd_flops;
    const auto make_png = [&] {
      const auto image = pipeline::generate_image(*model, params);
      return image::encode_png(image.pixels, {{"parameters", image.parameters}});
    };
    const std::string section = "text to PNG " + size + ", " + run.label + ", TAESD";
    rows.push_back(timed(section + " (first image)", dtype, flops, ceiling.conv_gflops, Warmup::none, make_png));
    rows.push_back(timed(section, dtype, flops, ceiling.conv_gflops, Warmup::none, make_png));
  }
}

PrecisionResult run_precision(const BenchOptions& o, const Architecture& arch, at::ScalarType dtype,
                              const Ceiling& ceiling, bool low_memory) {
  torch::NoGradGuard no_grad;
  PrecisionResult result;
  auto& rows = result.rows;
  const std::string suffix = low_memory ? " (--low-memory)" : "";
  pipeline::LoadOptions load;
  load.tokenizer = fs::path(o.tokenizer);
  load.dtype = dtype;
  load.low_memory = low_memory;
  load.vae_tiling = o.vae_tiling;
  std::optional<pipeline::StableDiffusionModel> model;
  rows.push_back(timed("load" + suffix, dtype, 0, 0, Warmup::none, [&] { model.emplace(pipeline::StableDiffusionModel::load(o.model, load)); }));
  double process_peak = rows.back().peak_rss_mib;
  const auto options = at::TensorOptions().dtype(dtype);

  if (!low_memory) {
    at::Tensor context;
    double text_flops = text_encoder_flops(arch.text_encoder, 2).total();
    if (arch.text_encoder_2) text_flops += text_encoder_flops(*arch.text_encoder_2, 2).total();
    rows.push_back(timed(std::string(arch.text_encoder_2 ? "text encoders" : "text encoder") + " x2 (prompt, negative)",
                         dtype, text_flops, ceiling.conv_gflops, Warmup::once, [&] {
                           context = at::cat({model->encode_prompt(""), model->encode_prompt("a photo of a cat")});
                         }));
    context = context.to(dtype);
    const auto t = at::tensor({500.0f});
    for (const int side : sides(arch, o)) {
      const int latent = side / 8;
      const auto x = at::randn({2, 4, latent, latent}, options);
      // SDXL: the pooled embedding and the size conditioning of a side x side picture.
      std::optional<models::AddedConditioning> added;
      if (arch.unet.addition_embed_type == "text_time") {
        const float s = static_cast<float>(side);
        added = models::AddedConditioning{
            at::randn({2, arch.unet.projection_class_embeddings_input_dim - 6 * arch.unet.addition_time_embed_dim}, options),
            at::tensor({s, s, 0.0f, 0.0f, s, s}).repeat({2, 1}).to(dtype)};
      }
      rows.push_back(timed("unet cfg step " + std::to_string(side) + "x" + std::to_string(side), dtype,
                           unet_flops(arch.unet, 2, latent, latent).total(), ceiling.conv_gflops, Warmup::once,
                           [&] { model->unet->forward(x, t, context, added ? &*added : nullptr); }));
    }
    for (const int side : sides(arch, o)) {
      const int latent = side / 8;
      const auto z = at::randn({1, 4, latent, latent});
      rows.push_back(timed("vae decode " + std::to_string(side) + "x" + std::to_string(side), dtype,
                           vae_decode_flops(arch.vae, 1, latent, latent).total(), ceiling.conv_gflops, Warmup::once,
                           [&] { model->decode_latents(z); }));
    }
    // The UNet's top-level self-attention at 512x512: 4096 tokens, 8 heads of 40, batch 2.
    const int64_t tokens = 4096, width = 320, heads = 8;
    const auto q = at::randn({2, tokens, width}, options), k = at::randn_like(q), v = at::randn_like(q);
    release_free_memory();  // blocks tcmalloc keeps are not the op's working memory
    const double before = current_rss_mib();
    rows.push_back(timed("self-attention 4096 tokens, 8x40, batch 2", dtype, 4.0 * tokens * tokens * width * 2,
                         ceiling.matmul_gflops, Warmup::once,
                         [&] { models::scaled_dot_product_attention(q, k, v, heads); }));
    rows.back().peak_rss_mib -= before;  // the attention's own working memory
    rows.back().section += " [MiB: working memory]";
  }

  if (!o.skip_generation && !o.skip_512) {
    pipeline::GenerationRequest request;
    request.prompt = "a photo of a cat";
    request.steps = o.steps;
    request.width = request.height = arch.side;
    const auto params = pipeline::resolve(request, *model);
    const int latent = arch.side / 8;
    double flops = text_encoder_flops(arch.text_encoder, 2).total() + o.steps * unet_flops(arch.unet, 2, latent, latent).total() +
                   vae_decode_flops(arch.vae, 1, latent, latent).total();
    if (arch.text_encoder_2) flops += text_encoder_flops(*arch.text_encoder_2, 2).total();
    const std::string size = std::to_string(arch.side) + "x" + std::to_string(arch.side);
    rows.push_back(timed("generate " + size + ", " + std::to_string(o.steps) + " steps" + suffix, dtype, flops,
                         ceiling.conv_gflops, Warmup::none,
                         [&] { result.pixels = pipeline::generate_image(*model, params).pixels; }));
    process_peak = std::max(process_peak, rows.back().peak_rss_mib);
  }
  result.generation_peak_mib = process_peak;
  if (!low_memory && !o.skip_512 && !o.skip_fast) add_fast_rows(o, arch, dtype, ceiling, model, rows);
  return result;
}

// Real-ESRGAN x4plus's network (random weights, loaded through the upscaler's own path) on a 256x256
// input, whole and in 128-pixel tiles with 10 pixels of context (the work counted is the tiles' own,
// overlap included).
void add_upscaler_rows(const BenchOptions& o, at::ScalarType dtype, const Ceiling& ceiling, std::vector<Row>& rows) {
  models::RrdbNetConfig x4plus;  // the defaults: num_feat 64, num_block 23, num_grow_ch 32, x4
  const fs::path path = o.upscaler.empty() ? fs::path("bench-models/rrdbnet-x4plus-random.safetensors") : fs::path(o.upscaler);
  if (!fs::exists(path)) {
    std::fprintf(stderr, "writing %s (random RRDBNet x4plus) ...\n", path.c_str());
    const auto parameters = write_random_upscaler(x4plus, path);
    std::fprintf(stderr, "  %.1f M parameters\n", parameters / 1e6);
  }
  std::optional<pipeline::NeuralUpscaler> upscaler;
  rows.push_back(timed("load rrdbnet x4plus", dtype, 0, 0, Warmup::none,
                       [&] { upscaler.emplace(pipeline::NeuralUpscaler::load(path, dtype)); }));
  const int side = 256;
  const auto image = at::rand({1, 3, side, side});
  pipeline::UpscaleOptions whole;
  rows.push_back(timed("rrdbnet x4plus 256x256 -> 1024x1024", dtype, rrdbnet_flops(upscaler->config(), 1, side, side).total(),
                       ceiling.conv_gflops, Warmup::once, [&] { upscaler->run(image, whole); }));
  pipeline::UpscaleOptions tiled;
  tiled.tile = 128;
  tiled.tile_pad = 10;
  double tiled_flops = 0;
  for (const auto& t : pipeline::upscale_tiles(side, side, tiled.tile, tiled.tile_pad)) {
    tiled_flops += rrdbnet_flops(upscaler->config(), 1, t.padded_y1 - t.padded_y0, t.padded_x1 - t.padded_x0).total();
  }
  rows.push_back(timed("rrdbnet x4plus 256x256, tiles 128 + 10", dtype, tiled_flops, ceiling.conv_gflops, Warmup::once,
                       [&] { upscaler->run(image, tiled); }));
}

// PSNR of bf16 against fp32 on the small fixture model, where fp32 matches diffusers.
double fixture_psnr(const BenchOptions& o) {
  std::map<at::ScalarType, at::Tensor> images;
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    pipeline::LoadOptions load;
    load.dtype = dtype;
    auto model = pipeline::StableDiffusionModel::load(o.fixture, load);
    pipeline::GenerationRequest request;
    request.prompt = "a photo of a cat";
    request.steps = 10;
    images[dtype] = pipeline::generate_image(model, pipeline::resolve(request, model)).pixels;
  }
  return psnr(images[at::kFloat], images[at::kBFloat16]);
}

int run(const BenchOptions& o_in) {
  BenchOptions o = o_in;
  // Large tensors always come from (and go back to) mmap, so freeing a model shows in RSS and one
  // precision's peak does not inherit the other's heap.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  if (o.threads > 0) set_cpu_threads(o.threads);
  const auto arch = find_architecture(o.arch);
  if (o.model.empty()) o.model = "bench-models/" + o.arch + "-random-fp16.safetensors";
  std::vector<at::ScalarType> precisions;
  if (o.precision == "both" || o.precision == "fp32") precisions.push_back(at::kFloat);
  if (o.precision == "both" || o.precision == "bf16") precisions.push_back(at::kBFloat16);
  if (precisions.empty()) throw Error("--precision: '" + o.precision + "' is not fp32, bf16 or both");

  nlohmann::json report;
  const auto blas = blas_info();
  report["date"] = utc_now();
  report["cpu"] = cpu_model();
  report["threads"] = at::get_num_threads();
  report["load_average_at_start"] = read_first_line("/proc/loadavg");
  report["native_bf16"] = pipeline::default_dtype() == at::kBFloat16;
  report["cpu_class"] = models::cpu_class_name(models::kernel_options().cpu);
  report["blas"] = {{"libtorch_build", blas.configured},
                    {"loaded", blas.loaded},
                    {"system_libblas", blas.system},
                    {"openblas_core", blas.openblas_core}};
  report["allocator"] = allocator_library();
  std::printf("diffuse-bench %s, %s\n%s, CPU class %s, %d threads, native bf16: %s\nload average: %s\n",
              o.arch.c_str(), report["date"].get<std::string>().c_str(), report["cpu"].get<std::string>().c_str(),
              report["cpu_class"].get<std::string>().c_str(), at::get_num_threads(),
              report["native_bf16"].get<bool>() ? "yes" : "no",
              report["load_average_at_start"].get<std::string>().c_str());
  std::printf("BLAS: libtorch built with %s; loaded: %s; libblas.so.3 -> %s; OpenBLAS kernels: %s\n",
              blas.configured.c_str(), blas.loaded.c_str(), blas.system.c_str(),
              blas.openblas_core.empty() ? "none" : blas.openblas_core.c_str());
  std::printf("allocator: %s\n", report["allocator"].get<std::string>().c_str());
  std::fflush(stdout);

  if (!o.upscaler_only && !fs::exists(o.model)) {
    std::fprintf(stderr, "writing %s (random weights, fp16, original key names) ...\n", o.model.c_str());
    const auto start = std::chrono::steady_clock::now();
    const auto parameters = write_random_checkpoint(arch, o.model);
    std::fprintf(stderr, "  %.2f G parameters in %.0f s\n", parameters / 1e9,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }

  std::vector<Row> rows;
  std::map<at::ScalarType, PrecisionResult> results;
  for (const auto dtype : precisions) {
    std::fprintf(stderr, "ceiling (%s) ...\n", pipeline::dtype_name(dtype).c_str());
    const auto ceiling = measure_ceiling(dtype);
    report["ceiling"][pipeline::dtype_name(dtype)] = {{"conv_gflops", ceiling.conv_gflops},
                                                      {"matmul_gflops", ceiling.matmul_gflops}};
    std::printf("ceiling %s: 3x3 convolution %.1f GFLOP/s, matrix product %.1f GFLOP/s\n",
                pipeline::dtype_name(dtype).c_str(), ceiling.conv_gflops, ceiling.matmul_gflops);
    std::fflush(stdout);
    if (o.upscaler_only) {
      add_upscaler_rows(o, dtype, ceiling, rows);
      continue;
    }
    results[dtype] = run_precision(o, arch, dtype, ceiling, false);
    rows.insert(rows.end(), results[dtype].rows.begin(), results[dtype].rows.end());
    report["peak_rss_generation_mib"][pipeline::dtype_name(dtype)] = results[dtype].generation_peak_mib;
    add_upscaler_rows(o, dtype, ceiling, rows);
    if (o.low_memory_run) {
      auto low = run_precision(o, arch, dtype, ceiling, true);
      rows.insert(rows.end(), low.rows.begin(), low.rows.end());
      report["peak_rss_generation_low_memory_mib"][pipeline::dtype_name(dtype)] = low.generation_peak_mib;
    }
  }

  std::printf("\n%s\n", format_table(rows).c_str());
  for (const auto& [dtype, result] : results) {
    std::printf("peak RSS over load + %dx%d generation, %s: %.0f MiB\n", arch.side, arch.side,
                pipeline::dtype_name(dtype).c_str(), result.generation_peak_mib);
  }
  if (results.size() == 2 && results[at::kFloat].pixels.defined() && results[at::kBFloat16].pixels.defined()) {
    const double db = psnr(results[at::kFloat].pixels, results[at::kBFloat16].pixels);
    report["psnr_bf16_vs_fp32_db"][o.arch] = db;
    std::printf("PSNR bf16 vs fp32, %s random weights, %dx%d, same seed: %.1f dB\n", o.arch.c_str(), arch.side, arch.side, db);
  }
  if (!o.upscaler_only && !o.fixture.empty() && fs::exists(o.fixture)) {
    const double db = fixture_psnr(o);
    report["psnr_bf16_vs_fp32_db"]["fixture"] = db;
    std::printf("PSNR bf16 vs fp32, %s, same seed: %.1f dB\n", o.fixture.c_str(), db);
  }
  report["load_average_at_end"] = read_first_line("/proc/loadavg");
  report["rows"] = rows_json(rows);
  std::printf("load average at end: %s\n\nJSON:\n%s\n", report["load_average_at_end"].get<std::string>().c_str(),
              report.dump(2).c_str());
  if (!o.json.empty()) std::ofstream(o.json) << report.dump(2) << '\n';
  return 0;
}

}  // namespace

}  // namespace diffuse::bench

int main(int argc, char** argv) {
  // DIFFUSE_CPU=avx2 measures the paths of that class, libtorch's and oneDNN's included.
  diffuse::models::limit_libraries_to_cpu_class();
  diffuse::bench::BenchOptions o;
  CLI::App app{"diffuse-bench: time a full-size random-weight model, section by section"};
  app.add_option("--arch", o.arch, "Architecture: sd15, sd21 or sdxl")->capture_default_str();
  app.add_option("--model", o.model, "Checkpoint to time; written with random weights if absent "
                                     "(default: bench-models/<arch>-random-fp16.safetensors)");
  app.add_option("--tokenizer", o.tokenizer, "CLIP tokenizer folder")->capture_default_str();
  app.add_option("--fixture", o.fixture, "Small model for the bf16-vs-fp32 PSNR check ('' to skip)")
      ->capture_default_str();
  app.add_option("--precision", o.precision, "fp32, bf16 or both")->capture_default_str();
  app.add_option("--steps", o.steps, "Steps of the whole generation at the model's size")->capture_default_str();
  app.add_option("--threads", o.threads, "Intra-op threads (default: libtorch's, one per core)");
  app.add_flag("--skip-fast", o.skip_fast, "No few-step rows (TAESD decode, 1-step and 4-step images text to PNG)");
  app.add_flag("--skip-512", o.skip_512, "Only the sections at half the model's size (256x256 for SD 1.5; a quick run)");
  app.add_flag("--skip-generation", o.skip_generation, "No whole generation");
  app.add_flag("--vae-tiling", o.vae_tiling, "Decode in tiles (as generate --vae-tiling), for every decode timed");
  app.add_flag("--low-memory-run", o.low_memory_run, "Also load and generate with --low-memory");
  app.add_flag("--upscaler-only", o.upscaler_only, "Only the RRDBNet x4plus rows (Real-ESRGAN's size, random weights)");
  app.add_option("--upscaler", o.upscaler, "RRDBNet file to time; written with random x4plus weights if absent "
                                           "(default: bench-models/rrdbnet-x4plus-random.safetensors)");
  app.add_option("--json", o.json, "Also write the JSON report to this file");
  CLI11_PARSE(app, argc, argv);
  try {
    return diffuse::bench::run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "diffuse-bench: %s\n", e.what());
    return 1;
  }
}
