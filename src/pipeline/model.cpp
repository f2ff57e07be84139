#include "pipeline/model.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include <sys/mman.h>
#include <unistd.h>

#include "io/model_files.h"
#include "io/safetensors.h"
#include "models/conv.h"
#include "models/weights.h"
#include "util/error.h"
#include "util/json.h"
#include "util/memory.h"

namespace diffuse::pipeline {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A single file has no scheduler config: as diffusers' from_single_file, take the betas and the
// parameterisation from the original config and the released SD configs' values for the rest
// (notably clip_sample false, which DDIM would otherwise default to true).
json single_file_scheduler_config(const json& original) {
  json params = json::object();
  if (original.is_object() && original.contains("model") && original.at("model").contains("params")) {
    params = original.at("model").at("params");
  }
  const auto get = [&](const char* key, json fallback) { return params.contains(key) ? params.at(key) : fallback; };
  return json{{"num_train_timesteps", get("timesteps", 1000)},
              {"beta_start", get("linear_start", 0.00085)},
              {"beta_end", get("linear_end", 0.012)},
              {"beta_schedule", "scaled_linear"},
              {"prediction_type", get("parameterization", "eps") == "v" ? "v_prediction" : "epsilon"},
              {"timestep_spacing", "leading"},
              {"steps_offset", 1},
              {"set_alpha_to_one", false},
              {"clip_sample", false}};
}

text::ClipTokenizer load_tokenizer(const io::ModelFiles& files, const LoadOptions& options) {
  const auto source = options.tokenizer ? options.tokenizer : files.tokenizer;
  if (!source) {
    throw Error(files.path.string() +
                ": no tokenizer beside the model; pass --tokenizer with a folder holding vocab.json and "
                "merges.txt, or CLIP's bpe_simple_vocab_16e6.txt.gz");
  }
  auto tokenizer = text::ClipTokenizer::from_path(*source);
  // Original checkpoints carry no tokenizer config: OpenCLIP (SD 2.x) pads with "!", CLIP with the end token.
  if (files.layout == io::ModelFiles::Layout::SingleFile) {
    if (files.family == "sd2") {
      tokenizer.set_pad_token("!");
    } else {
      tokenizer.set_pad_id(tokenizer.end_id());
    }
  }
  return tokenizer;
}

// The type a single file stores all its floating-point tensors in, when it is one type: loading
// them as stored makes every tensor a view of the memory-mapped file, converted exactly once, by
// the copy into the module's parameters. Otherwise (mixed types, diffusers folders) `wanted`.
at::ScalarType storage_dtype(const fs::path& path, at::ScalarType wanted) {
  if (fs::is_directory(path)) return wanted;
  std::optional<at::ScalarType> stored;
  const auto file = io::SafetensorsFile::open(path);
  for (const auto& info : file.tensors()) {
    if (!at::isFloatingType(info.scalar_type)) continue;
    if (stored && *stored != info.scalar_type) return wanted;
    stored = info.scalar_type;
  }
  return stored.value_or(wanted);
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
// DIFFUSE_CONV=plain and DIFFUSE_LINEAR=plain keep libtorch's paths, for A/B measurements.
bool packing_wanted(const char* switch_variable) {
  const char* choice = std::getenv(switch_variable);
  return !(choice && std::string(choice) == "plain");
}

void pack_for_inference(torch::nn::Module& module, bool convolutions) {
  if (convolutions && packing_wanted("DIFFUSE_CONV")) models::pack_convolutions(module);
  if (packing_wanted("DIFFUSE_LINEAR")) models::pack_linear_layers(module);
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
  throw Error("--precision: '" + name + "' is not fp32 or bf16");
}

std::string dtype_name(at::ScalarType dtype) { return dtype == at::kBFloat16 ? "bf16" : "fp32"; }

StableDiffusionModel StableDiffusionModel::load(const fs::path& path, const LoadOptions& options) {
  if (options.dtype != at::kFloat && options.dtype != at::kBFloat16) {
    throw Error("--precision: only fp32 and bf16 are supported");
  }
  auto files = io::load_model_files(path, storage_dtype(path, options.dtype));
  StableDiffusionModel model(load_tokenizer(files, options));
  model.path_ = path;
  model.options_ = options;
  model.name = fs::path(path).filename().replace_extension().string();
  if (model.name.empty()) model.name = fs::path(path).parent_path().filename().string();
  // --low-memory with a single file: the text encoder is loaded when a prompt needs it, and freed
  // after, so it never sits beside the UNet's loading.
  if (!options.low_memory || fs::is_directory(path)) {
    model.text_encoder = build_text_encoder(files);
  }
  files.text_encoder.tensors.clear();
  model.unet =
      build<models::UNet2DConditionModel, models::UNetConfig>(files.unet, files.original_config, options.dtype);
  files.unet.tensors.clear();
  model.vae = build<models::AutoencoderKL, models::VaeConfig>(files.vae, files.original_config, options.dtype);
  pack_for_inference(*model.unet, true);
  pack_for_inference(*model.vae, false);
  files.vae.tensors.clear();
  release_free_memory();  // the dense kernels packing replaced, and loading's conversion buffers
  if (options.scheduler_config) {
    model.scheduler = sampling::SchedulerConfig::from_json(read_json_file(*options.scheduler_config));
  } else {
    model.scheduler = sampling::SchedulerConfig::from_json(
        files.scheduler_config.is_null() ? single_file_scheduler_config(files.original_config) : files.scheduler_config);
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
    auto files = io::load_model_files(path_, storage_dtype(path_, at::kFloat));
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

at::Tensor StableDiffusionModel::decode_latents(const at::Tensor& latents) {
  torch::NoGradGuard no_grad;
  // The step loop's freed activations, kept by tcmalloc in sizes the decoder's do not all fit.
  if (options_.low_memory) release_free_memory();
  const auto z = (latents / vae->config.scaling_factor).to(options_.dtype);
  const int64_t tile = vae->config.sample_size / vae_scale_factor();
  if (options_.vae_tiling && (z.size(2) > tile || z.size(3) > tile)) return decode_tiled(z);
  return vae->decode(z).to(at::kFloat);
}

namespace {

// Cross-fades the first `extent` rows (dim 2) or columns (dim 3) of `b` from the last ones of `a`.
void blend_edge(const at::Tensor& a, at::Tensor& b, int64_t dim, int64_t extent) {
  extent = std::min({extent, a.size(dim), b.size(dim)});
  if (extent <= 0) return;
  auto ramp = at::arange(extent, b.options()).div_(static_cast<double>(extent));
  ramp = dim == 2 ? ramp.view({1, 1, extent, 1}) : ramp.view({1, 1, 1, extent});
  auto head = b.narrow(dim, 0, extent);
  const auto tail = a.narrow(dim, a.size(dim) - extent, extent);
  head.copy_(tail * (1 - ramp) + head * ramp);
}

}  // namespace

// diffusers' AutoencoderKL.tiled_decode: tiles of the training size overlapping by a quarter,
// blended over a quarter of a tile, so peak memory is that of one training-size decode.
at::Tensor StableDiffusionModel::decode_tiled(const at::Tensor& z) {
  const int64_t tile = vae->config.sample_size / vae_scale_factor();
  const int64_t stride = tile * 3 / 4;
  const int64_t pixel_tile = tile * vae_scale_factor();
  const int64_t blend = pixel_tile / 4, keep = pixel_tile - blend;
  std::vector<std::vector<at::Tensor>> rows;
  for (int64_t i = 0; i < z.size(2); i += stride) {
    auto& row = rows.emplace_back();
    for (int64_t j = 0; j < z.size(3); j += stride) {
      const auto part = z.slice(2, i, i + tile).slice(3, j, j + tile);
      row.push_back(vae->decode(part).to(at::kFloat));
    }
  }
  std::vector<at::Tensor> joined_rows;
  for (size_t r = 0; r < rows.size(); ++r) {
    std::vector<at::Tensor> pieces;
    for (size_t c = 0; c < rows[r].size(); ++c) {
      auto& piece = rows[r][c];
      if (r > 0) blend_edge(rows[r - 1][c], piece, 2, blend);
      if (c > 0) blend_edge(rows[r][c - 1], piece, 3, blend);
      pieces.push_back(piece.slice(2, 0, keep).slice(3, 0, keep));
    }
    joined_rows.push_back(at::cat(pieces, 3));
  }
  const int64_t factor = vae_scale_factor();
  return at::cat(joined_rows, 2).slice(2, 0, z.size(2) * factor).slice(3, 0, z.size(3) * factor).contiguous();
}

}  // namespace diffuse::pipeline
