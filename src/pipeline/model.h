#pragma once
// A Stable Diffusion model ready to run: tokenizer, text encoder, UNet, VAE and the noise
// schedule's config, whatever the file layout it came from.
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <torch/torch.h>

#include "models/clip_text_encoder.h"
#include "models/controlnet.h"
#include "models/unet.h"
#include "io/lora_file.h"
#include "io/model_files.h"
#include "models/taesd.h"
#include "models/vae.h"
#include "pipeline/lora.h"
#include "pipeline/progress.h"
#include "sampling/sampling.h"
#include "text/clip_tokenizer.h"
#include "text/prompt_chunks.h"

namespace diffuse::pipeline {

struct LoadOptions {
  // vocab.json + merges.txt folder (or either file), or bpe_simple_vocab_16e6.txt.gz; overrides
  // whatever the model brings.
  std::optional<std::filesystem::path> tokenizer;
  // A diffusers scheduler_config.json that replaces the model's own (or a single file's defaults).
  std::optional<std::filesystem::path> scheduler_config;
  // Type of the UNet's and VAE's weights and activations: at::kFloat (the reference numbers) or
  // at::kBFloat16 (oneDNN's bf16 kernels with fp32 accumulation). The text encoder stays fp32: it
  // runs once per prompt, and its output conditions every step. SDXL's encoders (0.8 G parameters,
  // 3.3 GB in fp32, beside a 5.1 GB bf16 UNet) take this type, to fit 1024x1024 in 8 GiB.
  at::ScalarType dtype = at::kFloat;
  // Frees the text encoder once generate_image has encoded its prompts; a later new prompt loads
  // it again.
  bool low_memory = false;
  // Decodes latents larger than the VAE's training size in overlapping tiles, so memory stays
  // bounded whatever the image size (seams are blended as diffusers' tiled decode does).
  bool vae_tiling = false;
  // TAESD (an AutoencoderTiny folder, or taesd_decoder.safetensors with its encoder beside it; see
  // io/taesd_files.h), loaded beside the model's VAE: for step previews, and with taesd_as_vae for
  // the final decode and img2img's encode too.
  std::optional<std::filesystem::path> taesd;
  bool taesd_as_vae = false;
  // Phase::Load, one unit per component (text encoder, UNet, VAE).
  ProgressCallback progress;
};

// at::kBFloat16 where the CPU class multiplies bf16 natively (AVX512_BF16 / AMX), else at::kFloat;
// DIFFUSE_CPU lowers the class (models/kernel_options.h).
at::ScalarType default_dtype();
// "fp32" or "bf16" -> the type; throws diffuse::InvalidParameter naming `precision` otherwise.
at::ScalarType dtype_from_name(const std::string& name);
std::string dtype_name(at::ScalarType dtype);
// The name a model at `path` goes by (its file name without the extension, or its folder's name), known
// before it is loaded.
std::string model_name_for(const std::filesystem::path& path);

// "taesd:PATH", the one spelling of a TAESD to load (as the VAE, for previews, on the server): its
// PATH, or nullopt for any other text (also a bare "taesd:").
std::optional<std::filesystem::path> taesd_spec_path(const std::string& text);

// What a prompt conditions the UNet with.
struct PromptConditioning {
  at::Tensor context;  // [1, 77 x chunks, dim]: what cross-attention reads
  at::Tensor pooled;   // SDXL: [1, projection_dim], the second encoder's projected pooled output; else undefined
  int chunks = 1;      // 77-token windows the context is made of
};

// A textual-inversion embedding: a word whose token positions the text encoder reads these vectors
// at, instead of the rows of its token table.
struct TextualInversion {
  std::string name;      // the word prompts use (AUTOMATIC1111: the file name without its extension)
  at::Tensor vectors;    // [n, hidden] for the (first) text encoder
  at::Tensor vectors_2;  // SDXL: [n, hidden_2] for the second; else undefined
};

class StableDiffusionModel {
 public:
  // `path`: a diffusers folder or a single-file .safetensors checkpoint. Throws diffuse::Error
  // naming the file or tensor at fault.
  static StableDiffusionModel load(const std::filesystem::path& path, const LoadOptions& options = {});

  // The conditioning of one prompt (already resolved for a step: no [from:to:when]). With
  // `prompt_syntax`, AUTOMATIC1111's reading (pipeline/prompt_encoding.cpp): emphasis weights, 75-token
  // chunks each encoded on its own and concatenated, BREAK, embeddings. Without, the text as it is,
  // truncated to the tokenizer's 77 positions, as diffusers encodes it (for a plain prompt of up to
  // 75 tokens both give the same numbers). `clip_skip` as AUTOMATIC1111 means it: 1 the last layer the
  // model uses, 2 the one before, ... (SD 1.x/2.x: that layer's output through the final layer norm,
  // as diffusers' clip_skip; SDXL: both encoders' hidden states that many layers before their
  // penultimate-layer default, without the norm). Throws diffuse::InvalidParameter("prompt") for a
  // malformed weight.
  PromptConditioning encode(const std::string& prompt, int clip_skip = 1, bool prompt_syntax = true);
  at::Tensor encode_prompt(const std::string& prompt) { return encode(prompt).context; }
  // The chunks `prompt` becomes for the (first) tokenizer, with the model's embeddings.
  text::ChunkedPrompt chunk_prompt(const std::string& prompt) const;

  // Makes `embedding.name` a word prompts can use; replaces one of the same name. Throws
  // diffuse::InvalidParameter("embedding") when its vectors do not fit the text encoders.
  void add_embedding(TextualInversion embedding);
  const std::vector<TextualInversion>& embeddings() const { return embeddings_; }
  // Puts exactly these LoRAs on the model (none: the model as loaded). Files are read once and kept;
  // a call with the LoRAs already on changes nothing. Throws diffuse::InvalidParameter("lora")
  // naming the file and every module it has that this model lacks or that does not fit; the model
  // is then left without LoRAs.
  void set_loras(const std::vector<LoraUse>& loras);
  const std::vector<LoraUse>& loras() const { return loras_; }
  // The ControlNet at `path` (a diffusers folder or a single file), loaded once in the UNet's type
  // and kept. Throws diffuse::Error naming the file when it is no ControlNet or is made for another
  // base model (pipeline/control.cpp).
  models::ControlNetModel controlnet(const std::filesystem::path& path);
  // SDXL's unconditional conditioning when force_zeros_for_empty_prompt: zeros shaped like `like`.
  static PromptConditioning zeros_like(const PromptConditioning& like);
  // Layers of the (first) text encoder: the largest clip_skip is this.
  int text_encoder_layers() const { return text_config_layers_; }
  // Scaled latents (as samplers produce them) -> images in about [-1, 1], fp32 whatever the VAE's type.
  // `on_tile(done, total)` after each of decode_tile_count() parts (one, unless tiling).
  at::Tensor decode_latents(const at::Tensor& latents, const std::function<void(int, int)>& on_tile = {});
  int decode_tile_count(const at::Tensor& latents) const;
  // Images in [-1, 1], [1, 3, H, W] fp32 -> scaled latents (fp32, as samplers hold them): a sample of
  // the VAE's latent distribution with eps from `generator` (fp32, as diffusers draws it), or its
  // mean without one.
  at::Tensor encode_image(const at::Tensor& image, at::Generator* generator);
  // TAESD's decode of scaled latents (step previews); needs LoadOptions::taesd. Images in about [-1, 1].
  at::Tensor decode_latents_taesd(const at::Tensor& latents);
  // TAESD decodes (and encodes) instead of the VAE (LoadOptions::taesd_as_vae).
  bool decodes_with_taesd() const { return options_.taesd_as_vae && taesd; }
  // With LoadOptions::low_memory, frees the text encoders (prompts already encoded stay cached).
  void release_text_encoder_if_low_memory();

  // Type of the UNet's (and VAE's) weights: what the step loop feeds the UNet.
  at::ScalarType unet_dtype() const { return options_.dtype; }

  // Pixels per latent along a side, and the image side the model was trained at.
  int vae_scale_factor() const {
    return decodes_with_taesd() ? taesd->config.downscale_factor() : vae->config.downscale_factor();
  }
  int default_image_size() const { return unet->config.sample_size * vae_scale_factor(); }
  int latent_channels() const { return vae->config.latent_channels; }
  // An inpainting model: its UNet also reads the mask and the masked image's latents
  // (1 + latent_channels more input channels, 9 for SD's).
  bool is_inpainting() const { return unet->config.in_channels == 2 * latent_channels() + 1; }
  // SDXL: two text encoders, the pooled embedding and the size conditioning (text_time).
  bool is_sdxl() const { return unet->config.text_time(); }
  // An LCM-distilled UNet: the guidance scale reaches it as an embedding (one batch per step, no CFG).
  bool has_guidance_embedding() const { return unet->config.time_cond_proj_dim > 0; }

  std::string name;  // file or folder name, for the PNG's parameters
  text::ClipTokenizer tokenizer;
  models::ClipTextModel text_encoder{nullptr};
  std::optional<text::ClipTokenizer> tokenizer_2;  // SDXL
  models::ClipTextModel text_encoder_2{nullptr};   // SDXL: OpenCLIP bigG with its projection
  // An empty negative prompt conditions with zeros instead of the encoded "" (SDXL base).
  bool force_zeros_for_empty_prompt = false;
  models::UNet2DConditionModel unet{nullptr};
  models::AutoencoderKL vae{nullptr};
  models::TinyAutoencoder taesd{nullptr};  // LoadOptions::taesd; else null
  sampling::SchedulerConfig scheduler;

 private:
  explicit StableDiffusionModel(text::ClipTokenizer tokenizer_) : tokenizer(std::move(tokenizer_)) {}

  std::filesystem::path path_;
  LoadOptions options_;
  void load_text_encoders(io::ModelFiles& files);
  // LoRA updates onto the text encoders only (after they were loaded again) or onto everything.
  void apply_loras(bool text_encoders_only);

  // The prompt read as AUTOMATIC1111 reads it, or as diffusers does.
  PromptConditioning encode_chunks(const std::string& prompt, int clip_skip);
  PromptConditioning encode_plain(const std::string& prompt, int clip_skip);

  std::vector<TextualInversion> embeddings_;
  std::vector<LoraUse> loras_;
  std::map<std::filesystem::path, std::shared_ptr<const io::LoraFile>> lora_files_;
  std::map<std::filesystem::path, models::ControlNetModel> controlnets_;
  std::map<std::tuple<std::string, int, bool>, PromptConditioning> encoded_prompts_;  // low-memory mode only
  int text_hidden_size_ = 0, text_hidden_size_2_ = 0;  // the encoders' widths, for checking embeddings
  int text_config_layers_ = 0;
};

}  // namespace diffuse::pipeline
