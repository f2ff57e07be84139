#include "pipeline/model.h"

#include <algorithm>
#include <fstream>

#include <sys/mman.h>
#include <unistd.h>

#include "io/model_files.h"
#include "pipeline/component_configs.h"
#include "io/safetensors.h"
#include "io/taesd_files.h"
#include "models/conv.h"
#include "models/kernel_options.h"
#include "models/parameter_init.h"
#include "models/weights.h"
#include "util/error.h"
#include "util/json.h"
#include "util/memory.h"

namespace diffuse::pipeline {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

text::ClipTokenizer load_tokenizer(const io::ModelFiles& files, const LoadOptions& options,
                                   const std::optional<fs::path>& found, const std::optional<std::string>& pad_token) {
  const auto source = options.tokenizer ? options.tokenizer : found;
  if (!source) {
    throw InvalidParameter("tokenizer", "none beside " + files.path.string() +
                                            "; give a folder holding vocab.json and merges.txt, or CLIP's "
                                            "bpe_simple_vocab_16e6.txt.gz");
  }
  auto tokenizer = text::ClipTokenizer::from_path(*source);
  if (pad_token) tokenizer.set_pad_token(*pad_token);
  return tokenizer;
}

// A weight already copied into a module: unmap its pages of the memory-mapped file now rather than
// when the whole file is done, so the process never holds a component's file pages and its
// parameters at once. Only whole pages inside the tensor; a tensor that is not a file view (a copy)
// is about to be freed anyway. MADV_DONTNEED leaves the clean pages in the page cache, which the
// kernel reclaims when memory is short: the next run reads the file from memory. (MADV_PAGEOUT
// evicted them, so every run read the 2 GB SD 1.5 file from disk again: loading took 3.8 s
// instead of 1.8, at the same peak RSS.)
void release_pages(const at::Tensor& tensor) {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(tensor.data_ptr());
  const uintptr_t first = (begin + page - 1) / page * page, last = (begin + tensor.nbytes()) / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

// Parameters are created directly in `dtype` (no fp32 copy of a bf16 model, even transiently).
template <typename Module, typename Config>
Module build(const io::ComponentWeights& weights, const Config& config, at::ScalarType dtype,
             const std::set<std::string>& optional = {}) {
  auto module = models::make_for_loading<Module>(config, dtype);
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

// TAESD in the model's type, checked against the latents the model's VAE works in.
models::TinyAutoencoder load_taesd(const fs::path& path, at::ScalarType dtype, int latent_channels) {
  const auto files = io::load_taesd_files(path, dtype);
  const auto config = files.config.is_null() ? models::TinyAutoencoderConfig::infer(files.tensors, files.source)
                                             : models::TinyAutoencoderConfig::from_json(files.config);
  if (config.latent_channels != latent_channels) {
    throw InvalidParameter("vae", "TAESD " + files.source + " works on " + std::to_string(config.latent_channels) +
                                      "-channel latents, this model's on " + std::to_string(latent_channels));
  }
  auto taesd = models::make_for_loading<models::TinyAutoencoder>(config, dtype);
  models::load_weights(*taesd, files.tensors, {"taesd: " + files.source, files.file_names, {}});
  taesd->eval();
  // 64 channels at up to the full image size: oneDNN runs these convolutions on channels-last
  // activations without reordering them around every layer (decode() feeds channels-last input).
  for (auto& parameter : taesd->parameters()) {
    if (parameter.dim() == 4) parameter.set_data(parameter.contiguous(at::MemoryFormat::ChannelsLast));
  }
  return taesd;
}

// SD 1.x/2.x text encoders run fp32 in either precision: once per prompt, and their output conditions
// every step. SDXL's pair is as large as a third of its UNet, so it runs in the UNet's type
// (LoadOptions::dtype).
models::ClipTextModel build_text_encoder(const io::ComponentWeights& weights,
                                         const io::OriginalConfig::TextEncoder& original, at::ScalarType dtype) {
  auto encoder = build<models::ClipTextModel>(weights, text_encoder_config(weights, original), dtype,
                                              models::ClipTextModelImpl::optional_tensors());
  pack_for_inference(*encoder, false);
  return encoder;
}

}  // namespace

at::ScalarType default_dtype() {
  return models::kernel_options().cpu >= models::CpuClass::Avx512Bf16 ? at::kBFloat16 : at::kFloat;
}

at::ScalarType dtype_from_name(const std::string& name) {
  if (name == "fp32") return at::kFloat;
  if (name == "bf16") return at::kBFloat16;
  throw InvalidParameter("precision", "'" + name + "' is not fp32 or bf16");
}

std::string dtype_name(at::ScalarType dtype) { return dtype == at::kBFloat16 ? "bf16" : "fp32"; }

std::optional<fs::path> taesd_spec_path(const std::string& text) {
  static const std::string prefix = "taesd:";
  if (text.size() <= prefix.size() || text.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  return fs::path(text.substr(prefix.size()));
}

std::string model_name_for(const fs::path& path) {
  const auto name = path.filename().replace_extension().string();
  return name.empty() ? path.parent_path().filename().string() : name;
}

StableDiffusionModel StableDiffusionModel::load(const fs::path& path, const LoadOptions& options) {
  if (options.dtype != at::kFloat && options.dtype != at::kBFloat16) {
    throw InvalidParameter("precision", "only fp32 and bf16 are supported");
  }
  if (options.dtype == at::kBFloat16 && !models::bf16_supported()) {
    throw InvalidParameter("precision", "bf16 needs a CPU with AVX-512 (this one's class is " +
                                            models::cpu_class_name(models::kernel_options().cpu) + "): use fp32");
  }
  if (options.taesd_as_vae && !options.taesd) throw InvalidParameter("vae", "TAESD in place of the VAE needs its path");
  PhaseTimer loading(options.progress, Phase::Load, 3);
  loading.report(0);
  auto files = io::load_model_files(path, io::loading_dtype(path, options.dtype));
  StableDiffusionModel model(load_tokenizer(files, options, files.tokenizer, files.pad_token));
  if (!files.text_encoder_2.tensors.empty()) {
    // --tokenizer stands for both: SDXL's two tokenizers share CLIP's vocabulary, and differ in padding.
    model.tokenizer_2 = load_tokenizer(files, options, files.tokenizer_2 ? files.tokenizer_2 : files.tokenizer,
                                       files.pad_token_2);
  }
  model.force_zeros_for_empty_prompt = files.force_zeros_for_empty_prompt;
  model.path_ = path;
  model.options_ = options;
  model.options_.progress = nullptr;  // the caller's, for this load only
  model.name = model_name_for(path);
  // --low-memory with a single file: the text encoder is loaded when a prompt needs it, and freed
  // after, so it never sits beside the UNet's loading.
  if (!options.low_memory || fs::is_directory(path)) model.load_text_encoders(files);
  const auto first_config = text_encoder_config(files.text_encoder, files.original.text_encoder);
  model.text_config_layers_ = first_config.num_layers;
  model.text_hidden_size_ = first_config.hidden_size;
  if (!files.text_encoder_2.tensors.empty()) {
    model.text_hidden_size_2_ = text_encoder_config(files.text_encoder_2, files.original.text_encoder_2).hidden_size;
  }
  files.text_encoder.tensors.clear();
  files.text_encoder_2.tensors.clear();
  loading.report(1);
  model.unet = build<models::UNet2DConditionModel>(files.unet, unet_config(files.unet, files.original), options.dtype);
  files.unet.tensors.clear();
  loading.report(2);
  model.vae = build<models::AutoencoderKL>(files.vae, vae_config(files.vae, files.original), options.dtype);
  pack_for_inference(*model.unet, true);
  pack_for_inference(*model.vae, false);
  files.vae.tensors.clear();
  if (options.taesd) model.taesd = load_taesd(*options.taesd, options.dtype, model.latent_channels());
  release_free_memory();  // the dense kernels packing replaced, and loading's conversion buffers
  loading.report(3);
  if (options.scheduler_config) {
    model.scheduler = sampling::SchedulerConfig::from_json(read_json_file(*options.scheduler_config));
  } else {
    model.scheduler = scheduler_config(files);
  }
  return model;
}

void StableDiffusionModel::load_text_encoders(io::ModelFiles& files) {
  const bool sdxl = !files.text_encoder_2.tensors.empty();
  const auto dtype = sdxl ? options_.dtype : at::kFloat;
  text_encoder = build_text_encoder(files.text_encoder, files.original.text_encoder, dtype);
  if (sdxl) text_encoder_2 = build_text_encoder(files.text_encoder_2, files.original.text_encoder_2, dtype);
}

PromptConditioning StableDiffusionModel::zeros_like(const PromptConditioning& like) {
  PromptConditioning zeros;
  zeros.context = at::zeros_like(like.context);
  if (like.pooled.defined()) zeros.pooled = at::zeros_like(like.pooled);
  return zeros;
}

void StableDiffusionModel::release_text_encoder_if_low_memory() {
  if (!options_.low_memory) return;
  text_encoder = models::ClipTextModel(nullptr);
  text_encoder_2 = models::ClipTextModel(nullptr);
  release_free_memory();
}

int StableDiffusionModel::decode_tile_count(const at::Tensor& latents) const {
  // TAESD's activations at 64 channels stay small enough untiled (2048x2048: 0.5 GB in bf16).
  return options_.vae_tiling && !decodes_with_taesd() ? vae->tile_count(latents.size(2), latents.size(3)) : 1;
}

at::Tensor StableDiffusionModel::decode_latents(const at::Tensor& latents, const std::function<void(int, int)>& on_tile) {
  torch::NoGradGuard no_grad;
  // The step loop's freed activations, kept by tcmalloc in sizes the decoder's do not all fit.
  if (options_.low_memory) release_free_memory();
  if (decodes_with_taesd()) {
    auto image = decode_latents_taesd(latents);
    if (on_tile) on_tile(1, 1);
    return image;
  }
  const auto z = (latents / vae->config.scaling_factor).to(options_.dtype);
  if (decode_tile_count(z) > 1) return vae->decode_tiled(z, on_tile);
  auto image = vae->decode(z).to(at::kFloat);
  if (on_tile) on_tile(1, 1);
  return image;
}

at::Tensor StableDiffusionModel::decode_latents_taesd(const at::Tensor& latents) {
  torch::NoGradGuard no_grad;
  if (!taesd) throw InvalidParameter("preview", "taesd: no TAESD loaded; give its path (taesd:PATH), here or as the VAE");
  // Its own scaling factor (1.0 for SD's TAESD): the latents are already in its space, not 1/0.18215 of it.
  const auto z = (latents / taesd->config.scaling_factor).to(options_.dtype).contiguous(at::MemoryFormat::ChannelsLast);
  return taesd->decode(z).to(at::kFloat).contiguous();
}

at::Tensor StableDiffusionModel::encode_image(const at::Tensor& image, at::Generator* generator) {
  torch::NoGradGuard no_grad;
  // TAESD's encoder is deterministic: no draw from the generator (as diffusers' retrieve_latents).
  if (decodes_with_taesd()) {
    const auto input = image.to(options_.dtype).contiguous(at::MemoryFormat::ChannelsLast);
    return taesd->encode(input).to(at::kFloat).contiguous() * taesd->config.scaling_factor;
  }
  const auto distribution = vae->encode(image.to(options_.dtype));
  at::Tensor latents = distribution.mean.to(at::kFloat);
  if (generator) {
    const at::Tensor eps = at::randn(distribution.mean.sizes(), *generator, at::kFloat);
    latents = latents + distribution.std.to(at::kFloat) * eps;
  }
  return latents * vae->config.scaling_factor;
}

}  // namespace diffuse::pipeline
