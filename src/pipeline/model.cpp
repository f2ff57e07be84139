#include "pipeline/model.h"

#include <algorithm>
#include <fstream>

#include <sys/mman.h>
#include <unistd.h>

#include "io/model_files.h"
#include "io/safetensors.h"
#include "models/conv.h"
#include "models/kernel_options.h"
#include "models/weights.h"
#include "util/error.h"
#include "util/json.h"
#include "util/memory.h"

namespace diffuse::pipeline {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

text::ClipTokenizer load_tokenizer(const io::ModelFiles& files, const LoadOptions& options) {
  const auto source = options.tokenizer ? options.tokenizer : files.tokenizer;
  if (!source) {
    throw InvalidParameter("tokenizer", "none beside " + files.path.string() +
                                            "; give a folder holding vocab.json and merges.txt, or CLIP's "
                                            "bpe_simple_vocab_16e6.txt.gz");
  }
  auto tokenizer = text::ClipTokenizer::from_path(*source);
  if (files.pad_token) tokenizer.set_pad_token(*files.pad_token);
  return tokenizer;
}

// A weight already copied into a module: hand its pages of the memory-mapped file back now rather
// than when the whole file is done, so loading never holds a component's file pages and its
// parameters at once. Only whole pages inside the tensor; clean file pages are simply dropped, and
// a tensor that is not a file view (a copy) is about to be freed anyway.
void release_pages(const at::Tensor& tensor) {
#ifdef MADV_PAGEOUT
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(tensor.data_ptr());
  const uintptr_t first = (begin + page - 1) / page * page, last = (begin + tensor.nbytes()) / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_PAGEOUT);
#else
  (void)tensor;
#endif
}

// Parameters are created directly in `dtype` (no fp32 copy of a bf16 model, even transiently).
template <typename Module, typename Config>
Module build(const io::ComponentWeights& weights, const json& original_config, at::ScalarType dtype,
             const std::set<std::string>& optional = {}) {
  const auto config = weights.config.is_null() ? Config::infer(weights.tensors, original_config)
                                               : Config::from_json(weights.config);
  const auto previous_default = c10::get_default_dtype();
  c10::set_default_dtype(caffe2::TypeMeta::fromScalarType(dtype));
  Module module(nullptr);
  try {
    module = Module(config);
  } catch (...) {
    c10::set_default_dtype(previous_default);
    throw;
  }
  c10::set_default_dtype(previous_default);
  models::load_weights(*module, weights.tensors, {weights.source, weights.file_names, optional}, release_pages);
  module->eval();
  return module;
}

// The UNet's convolution kernels reordered once into oneDNN's layout (models/conv.h). A 256x256 bf16
// UNet step on one thread: 1808 ms instead of 2031 (3558 -> 2357 ms under glibc's malloc, whose page
// faults the per-call reorder pays too). The VAE stays on libtorch's path: its convolutions run on
// few channels at high resolution, where converting the activations to and from oneDNN's layout
// costs more than reordering the small kernels (512x512 decode, 2 threads: bf16 4.3 s packed, 3.9 s
// plain; fp32 at 256x256 2.3 s vs 2.0 s), and the converted copies raise the decoder's peak memory.
// Linear layers need no conversion of their activations, so every model packs them (models/linear.h).
// models::kernel_options() can keep libtorch's paths, for A/B measurements.
void pack_for_inference(torch::nn::Module& module, bool convolutions) {
  if (convolutions && models::kernel_options().packed_convolutions) models::pack_convolutions(module);
  if (models::kernel_options().packed_linear_layers) models::pack_linear_layers(module);
}

// The text encoder runs fp32 in either precision: once per prompt, and its output conditions every step.
models::ClipTextModel build_text_encoder(const io::ModelFiles& files) {
  auto encoder = build<models::ClipTextModel, models::TextEncoderConfig>(
      files.text_encoder, files.original_config, at::kFloat, models::ClipTextModelImpl::optional_tensors());
  pack_for_inference(*encoder, false);
  return encoder;
}

}  // namespace

at::ScalarType default_dtype() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    const bool native_bf16 = line.find(" avx512_bf16") != std::string::npos || line.find(" amx_bf16") != std::string::npos;
    return native_bf16 ? at::kBFloat16 : at::kFloat;
  }
  return at::kFloat;
}

at::ScalarType dtype_from_name(const std::string& name) {
  if (name == "fp32") return at::kFloat;
  if (name == "bf16") return at::kBFloat16;
  throw InvalidParameter("precision", "'" + name + "' is not fp32 or bf16");
}

std::string dtype_name(at::ScalarType dtype) { return dtype == at::kBFloat16 ? "bf16" : "fp32"; }

StableDiffusionModel StableDiffusionModel::load(const fs::path& path, const LoadOptions& options) {
  if (options.dtype != at::kFloat && options.dtype != at::kBFloat16) {
    throw InvalidParameter("precision", "only fp32 and bf16 are supported");
  }
  PhaseTimer loading(options.progress, Phase::Load, 3);
  loading.report(0);
  auto files = io::load_model_files(path, io::loading_dtype(path, options.dtype));
  StableDiffusionModel model(load_tokenizer(files, options));
  model.path_ = path;
  model.options_ = options;
  model.options_.progress = nullptr;  // the caller's, for this load only
  model.name = fs::path(path).filename().replace_extension().string();
  if (model.name.empty()) model.name = fs::path(path).parent_path().filename().string();
  // --low-memory with a single file: the text encoder is loaded when a prompt needs it, and freed
  // after, so it never sits beside the UNet's loading.
  if (!options.low_memory || fs::is_directory(path)) {
    model.text_encoder = build_text_encoder(files);
  }
  files.text_encoder.tensors.clear();
  loading.report(1);
  model.unet =
      build<models::UNet2DConditionModel, models::UNetConfig>(files.unet, files.original_config, options.dtype);
  files.unet.tensors.clear();
  loading.report(2);
  model.vae = build<models::AutoencoderKL, models::VaeConfig>(files.vae, files.original_config, options.dtype);
  pack_for_inference(*model.unet, true);
  pack_for_inference(*model.vae, false);
  files.vae.tensors.clear();
  release_free_memory();  // the dense kernels packing replaced, and loading's conversion buffers
  loading.report(3);
  if (options.scheduler_config) {
    model.scheduler = sampling::SchedulerConfig::from_json(read_json_file(*options.scheduler_config));
  } else {
    model.scheduler = sampling::SchedulerConfig::from_json(files.scheduler_config);
  }
  return model;
}

at::Tensor StableDiffusionModel::encode_prompt(const std::string& prompt) {
  torch::NoGradGuard no_grad;
  if (options_.low_memory) {
    auto cached = encoded_prompts_.find(prompt);
    if (cached != encoded_prompts_.end()) return cached->second;
  }
  if (!text_encoder) {  // released: load it again, alone
    auto files = io::load_model_files(path_, io::loading_dtype(path_, at::kFloat));
    text_encoder = build_text_encoder(files);
  }
  const auto ids = tokenizer.encode_padded(prompt);
  auto encoded = text_encoder->encode(at::tensor(ids, at::kLong).unsqueeze(0));
  if (options_.low_memory) encoded_prompts_[prompt] = encoded;
  return encoded;
}

void StableDiffusionModel::release_text_encoder_if_low_memory() {
  if (!options_.low_memory) return;
  text_encoder = models::ClipTextModel(nullptr);
  release_free_memory();
}

bool StableDiffusionModel::tiles(const at::Tensor& latents) const {
  return options_.vae_tiling && vae->tile_count(latents.size(2), latents.size(3)) > 1;
}

int StableDiffusionModel::decode_tile_count(const at::Tensor& latents) const {
  return tiles(latents) ? vae->tile_count(latents.size(2), latents.size(3)) : 1;
}

at::Tensor StableDiffusionModel::decode_latents(const at::Tensor& latents, const std::function<void(int, int)>& on_tile) {
  torch::NoGradGuard no_grad;
  // The step loop's freed activations, kept by tcmalloc in sizes the decoder's do not all fit.
  if (options_.low_memory) release_free_memory();
  const auto z = (latents / vae->config.scaling_factor).to(options_.dtype);
  if (tiles(z)) return vae->decode_tiled(z, on_tile);
  auto image = vae->decode(z).to(at::kFloat);
  if (on_tile) on_tile(1, 1);
  return image;
}

}  // namespace diffuse::pipeline
