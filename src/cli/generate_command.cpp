#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <thread>

#include "cli/builtin_model.h"
#include "cli/commands.h"
#include "cli/decoder_options.h"
#include "cli/output_paths.h"
#include "cli/progress_line.h"
#include "explain/step_previews.h"
#include "image/png_file.h"
#include "pipeline/embeddings.h"
#include "pipeline/generation.h"
#include "pipeline/presets.h"
#include "train/shapes_dataset.h"
#include "util/error.h"
#include "util/threads.h"

namespace diffuse::cli {

namespace fs = std::filesystem;

namespace {

struct GenerateOptions {
  std::string model;
  std::string output = "output.png";
  std::string tokenizer;
  std::string scheduler_config;
  std::string save_steps;  // folder for per-step previews; empty: none
  std::string preview = "linear";
  std::string vae;     // "taesd:PATH"; empty: the model's VAE
  std::string preset;  // pipeline/presets.h; fills in what the flags below leave unset
  std::set<std::string> given;  // request fields set by a flag, which a preset leaves alone
  std::string precision;  // empty: bf16 where the CPU has native bf16, else fp32
  bool low_memory = false;
  bool vae_tiling = false;
  int threads = 0;  // 0: one per core
  std::string original_size, crop_coords, target_size;  // "A,B" as typed
  std::string init_image, mask, outpaint;                 // PNG paths; "L,R,T,B" as typed
  std::vector<std::string> loras;                         // "NAME[:WEIGHT]" as typed
  std::vector<std::string> lora_dirs, embeddings, embedding_dirs;
  std::vector<std::string> controls;  // "FILE:IMAGE[:WEIGHT[:START:END]]" as typed
  std::vector<std::string> controlnet_dirs;
  std::string control_preprocess = "none";  // applied to every unit's image
  bool plain_prompt = false;
  bool guidance_embedding = false;  // as --guidance-embedding / --no-guidance-embedding say, when given
  pipeline::HiresFixRequest hires;  // the request's when any --hires-* flag is given
  bool hires_given = false;
  std::string hires_size;           // "WxH" as typed
  pipeline::GenerationRequest request;
};

// "1024,768" -> {1024, 768} (`count` whole numbers with commas between); "" (not given) -> nothing;
// anything else names the request field.
std::optional<std::vector<int>> number_list(const std::string& text, size_t count, const char* parameter,
                                            const char* form) {
  if (text.empty()) return std::nullopt;
  std::vector<int> numbers;
  size_t start = 0;
  try {
    while (numbers.size() < count) {
      const size_t comma = numbers.size() + 1 < count ? text.find(',', start) : text.size();
      if (comma == std::string::npos) throw std::invalid_argument("too few numbers");
      const std::string part = text.substr(start, comma - start);
      size_t end = 0;
      numbers.push_back(std::stoi(part, &end));
      if (end != part.size()) throw std::invalid_argument("trailing text");
      start = comma + 1;
    }
  } catch (const std::logic_error&) {
    const std::string numbers_form = count == 2 ? "two whole numbers and a comma"
                                                : std::to_string(count) + " whole numbers with commas between";
    throw InvalidParameter(parameter, "'" + text + "' is not " + form + " (" + numbers_form + ")");
  }
  return numbers;
}

std::optional<std::pair<int, int>> number_pair(const std::string& text, const char* parameter, const char* form) {
  const auto numbers = number_list(text, 2, parameter, form);
  if (!numbers) return std::nullopt;
  return std::pair{(*numbers)[0], (*numbers)[1]};
}

// The init image and mask files, read before loading so a bad file fails at once.
void read_source_images(GenerateOptions& o) {
  if (!o.init_image.empty()) o.request.init_image = image::read_png(o.init_image).pixels;
  if (!o.mask.empty()) {
    if (o.init_image.empty()) throw InvalidParameter("mask", "needs an init image to repaint (--init-image)");
    o.request.mask = image::read_png(o.mask).pixels;
  }
  if (const auto sides = number_list(o.outpaint, 4, "outpaint", "LEFT,RIGHT,TOP,BOTTOM")) {
    o.request.outpaint = image::Padding{(*sides)[0], (*sides)[1], (*sides)[2], (*sides)[3]};
  }
}

// "style.safetensors:0.8" -> that file at 0.8 for both parts; no ":number" -> weight 1 (a path may
// hold other colons).
pipeline::LoraWeight lora_of_flag(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon != std::string::npos && colon > 0) {
    const auto number = text.substr(colon + 1);
    size_t used = 0;
    try {
      const double weight = std::stod(number, &used);
      if (used == number.size()) return {text.substr(0, colon), weight, weight};
    } catch (const std::logic_error&) {
    }
  }
  return {text, 1, 1};
}

void parse_extra_networks(GenerateOptions& o) {
  for (const auto& text : o.loras) o.request.loras.push_back(lora_of_flag(text));
  o.request.lora_dirs.assign(o.lora_dirs.begin(), o.lora_dirs.end());
  o.request.prompt_syntax = !o.plain_prompt;
  for (const auto& file : o.embeddings) {
    if (!fs::is_regular_file(file)) throw InvalidParameter("embedding", "'" + file + "' is not a file");
  }
}

// "net.safetensors:edges.png:0.8:0:0.6" -> a unit. Numbers are taken from the right (one: the
// weight; three: weight, start, end); of the rest, the file and the image are split at the first
// colon after which an existing image file follows, so paths may hold colons.
pipeline::ControlUnit control_of_flag(const std::string& text, size_t index) {
  const auto fail = [&](const std::string& why) {
    return InvalidParameter("control", "unit " + std::to_string(index + 1) + ": '" + text + "' " + why);
  };
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const size_t colon = text.find(':', start);
    parts.push_back(text.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  const auto number = [](const std::string& part, double& value) {
    size_t used = 0;
    try {
      value = std::stod(part, &used);
    } catch (const std::logic_error&) {
      return false;
    }
    return used == part.size() && !part.empty();
  };
  size_t trailing = 0;
  double probe = 0;
  while (trailing < 3 && parts.size() - trailing > 2 && number(parts[parts.size() - 1 - trailing], probe)) ++trailing;
  if (trailing == 2) throw fail("gives a start without an end (FILE:IMAGE:WEIGHT:START:END)");
  pipeline::ControlUnit unit;
  if (trailing >= 1) number(parts[parts.size() - trailing], unit.weight);
  if (trailing == 3) {
    number(parts[parts.size() - 2], unit.start);
    number(parts[parts.size() - 1], unit.end);
  }
  parts.resize(parts.size() - trailing);
  if (parts.size() < 2) throw fail("is not FILE:IMAGE[:WEIGHT[:START:END]]");
  size_t split = 1;
  for (size_t i = 1; i < parts.size(); ++i) {
    std::string image;
    for (size_t j = i; j < parts.size(); ++j) image += (j > i ? ":" : "") + parts[j];
    if (fs::is_regular_file(image)) {
      split = i;
      break;
    }
  }
  std::string image;
  for (size_t j = 0; j < parts.size(); ++j) {
    if (j < split) {
      unit.model += (j > 0 ? ":" : "") + parts[j];
    } else {
      image += (j > split ? ":" : "") + parts[j];
    }
  }
  if (!fs::is_regular_file(image)) throw fail("names no control image file '" + image + "'");
  try {
    unit.image = image::read_png(image).pixels;
  } catch (const Error& e) {
    throw fail("has a control image that is not a PNG: " + std::string(e.what()));
  }
  return unit;
}

void parse_controls(GenerateOptions& o) {
  image::ControlPreprocessor preprocessor;
  try {
    preprocessor = image::ControlPreprocessor::parse(o.control_preprocess);
  } catch (const Error& e) {
    throw InvalidParameter("control_preprocess", e.what());
  }
  for (size_t i = 0; i < o.controls.size(); ++i) {
    o.request.controls.push_back(control_of_flag(o.controls[i], i));
    o.request.controls.back().preprocessor = preprocessor;
  }
  o.request.controlnet_dirs.assign(o.controlnet_dirs.begin(), o.controlnet_dirs.end());
}

// --hires-size WxH -> the request's hires width and height; either may be 0 (from the aspect ratio).
void parse_hires_size(GenerateOptions& o) {
  if (o.hires_size.empty()) return;
  const auto x = o.hires_size.find('x');
  const auto size = x == std::string::npos ? std::nullopt
                                           : number_pair(o.hires_size.substr(0, x) + "," + o.hires_size.substr(x + 1),
                                                         "hires_size", "WxH");
  if (!size) throw InvalidParameter("hires_size", "'" + o.hires_size + "' is not WxH (two whole numbers and an x)");
  o.hires.width = size->first;
  o.hires.height = size->second;
}

void parse_hires(GenerateOptions& o) {
  parse_hires_size(o);
  if (o.hires_given) o.request.hires = o.hires;
}

void parse_size_conditioning(GenerateOptions& o) {
  if (const auto size = number_pair(o.original_size, "original_size", "W,H")) {
    o.request.original_size = pipeline::ImageSize{size->first, size->second};
  }
  if (const auto corner = number_pair(o.crop_coords, "crop_coords", "X,Y")) {
    o.request.crop_coords = pipeline::CropOffset{corner->first, corner->second};
  }
  if (const auto size = number_pair(o.target_size, "target_size", "W,H")) {
    o.request.target_size = pipeline::ImageSize{size->first, size->second};
  }
}

// What the request cannot check: the files and folders of this front end. Before loading, so bad
// input fails before seconds of it.
void check_files(const GenerateOptions& o) {
  const fs::path output(o.output);
  if (output.extension() != ".png") throw InvalidParameter("output", "'" + o.output + "' must end in .png");
  const auto folder = output.parent_path().empty() ? fs::path(".") : output.parent_path();
  if (!fs::is_directory(folder)) throw InvalidParameter("output", "folder '" + folder.string() + "' does not exist");
  if (!fs::exists(o.model)) throw InvalidParameter("model", "'" + o.model + "' does not exist");
}

void run_generate(GenerateOptions o) {
  const bool builtin = o.model.empty();
  if (builtin) o.model = builtin_model_dir().string();
  if (!o.preset.empty()) pipeline::apply_preset(pipeline::find_preset(o.preset), o.request, o.given);
  parse_size_conditioning(o);
  parse_hires(o);
  parse_extra_networks(o);
  parse_controls(o);
  read_source_images(o);
  const auto validated = pipeline::validate(o.request);
  check_files(o);
  pipeline::LoadOptions load;
  const auto preview = apply_decoder_options(o.vae, o.preview, load);
  if (!o.tokenizer.empty()) load.tokenizer = o.tokenizer;
  if (!o.scheduler_config.empty()) load.scheduler_config = o.scheduler_config;
  load.dtype = o.precision.empty() ? pipeline::default_dtype() : pipeline::dtype_from_name(o.precision);
  load.low_memory = o.low_memory;
  load.vae_tiling = o.vae_tiling;
  // libtorch may start with a single intra-op thread here; every core is what a user expects.
  set_cpu_threads(o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));

  ProgressLine progress;
  if (builtin) {
    for (const auto& word : train::words_outside_shapes_vocabulary(o.request.prompt)) {
      progress.print("warning: the built-in model has never seen the word '" + word +
                     "'; it knows only the words of its shapes captions (docs/training.md)");
    }
  }
  load.progress = [&progress](const pipeline::Progress& p) { return progress(p); };
  auto model = pipeline::StableDiffusionModel::load(o.model, load);
  const auto embeddings = pipeline::add_embeddings(model, {o.embeddings.begin(), o.embeddings.end()},
                                                   {o.embedding_dirs.begin(), o.embedding_dirs.end()});
  for (const auto& skipped : embeddings.skipped) progress.print("warning: embedding skipped: " + skipped);
  const auto request = pipeline::resolve(validated, model);
  for (const auto& warning : request.warnings) progress.print("warning: " + warning);

  // Step pictures of the image being made (DIR/seed-<seed> for each image of a batch).
  std::optional<explain::StepPreviewWriter> steps;
  const pipeline::ProgressCallback on_progress = [&](const pipeline::Progress& p) {
    if (!o.save_steps.empty() && p.phase == pipeline::Phase::Denoise) {
      if (p.done == 0) {
        steps.emplace(model, steps_folder(o.save_steps, request.batch_count, request.seed_of(p.image)), preview);
      } else {
        steps->on_step(p);
      }
    }
    return progress(p);
  };
  auto started = std::chrono::steady_clock::now();
  pipeline::generate(model, request, on_progress, [&](const pipeline::GeneratedImage& image) {
    if (steps) {
      progress.print("wrote steps to " + steps->finish().sheet.parent_path().string());
      steps.reset();
    }
    const auto path = image_path(o.output, request.batch_count, image.seed);
    image::write_png(path, image.pixels, {{"parameters", image.parameters}});
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    char line[64];
    const auto& size = request.hires ? pipeline::ImageSize{request.hires->width, request.hires->height}
                                     : pipeline::ImageSize{request.width, request.height};
    std::snprintf(line, sizeof line, " (%dx%d, seed %llu) in %.1f s", size.width, size.height,
                  static_cast<unsigned long long>(image.seed), seconds);
    progress.print("wrote " + path.string() + line);
    started = std::chrono::steady_clock::now();
  });
}

}  // namespace

namespace {

// The flags whose use the callback needs to know of: given ones override a preset; any hires flag
// turns the hires fix on.
struct GenerateFlags {
  CLI::Option* steps = nullptr;
  CLI::Option* cfg_scale = nullptr;
  CLI::Option* guidance_embedding = nullptr;
  CLI::Option* sampler = nullptr;
  CLI::Option* spacing = nullptr;
  std::vector<CLI::Option*> hires;
};

// The model, the prompts, the size, and guidance.
void add_prompt_and_size_flags(CLI::App* command, GenerateOptions& o, GenerateFlags& flags) {
  auto& p = o.request;
  command->add_option("-m,--model", o.model,
                      "Diffusers folder or single-file .safetensors checkpoint (default: the built-in model)");
  command->add_option("-p,--prompt", p.prompt, "What the image should show")->required();
  command->add_option("-n,--negative-prompt", p.negative_prompt, "What the image should not show");
  flags.steps = command->add_option("--steps", p.steps, "Denoising steps")->capture_default_str();
  flags.cfg_scale = command->add_option("--cfg-scale", p.cfg_scale,
                                        "Classifier-free guidance scale; 1 or less disables guidance (one UNet pass "
                                        "per step, no negative prompt). LCM models: the scale of their guidance "
                                        "embedding")
                        ->capture_default_str();
  command->add_option("--preset", o.preset,
                      "Settings for few-step models: turbo (SD-Turbo: euler_a, trailing, 1 step, CFG 0) or lcm (LCM "
                      "models and LCM-LoRA: lcm, 4 steps, CFG 1); flags given override them. See `diffuse samplers`");
  flags.guidance_embedding =
      command->add_flag("--guidance-embedding,!--no-guidance-embedding", o.guidance_embedding,
                        "Insist on an LCM model's guidance embedding (an error for other models); default: "
                        "whatever the model has");
  command->add_option("-s,--seed", p.seed, "Seed of the random noise; a batch uses seed, seed+1, ...")
      ->capture_default_str();
  command->add_option("-W,--width", p.width, "Image width in pixels, a multiple of 8 (default: the model's)");
  command->add_option("-H,--height", p.height, "Image height in pixels, a multiple of 8 (default: the model's)");
}

// How the noise is removed; SDXL's size conditioning; the image to start from.
void add_sampling_and_source_flags(CLI::App* command, GenerateOptions& o, GenerateFlags& flags) {
  auto& p = o.request;
  flags.sampler = command->add_option("--sampler", p.sampler, "Sampler; see `diffuse samplers`")->capture_default_str();
  command->add_option("--schedule", p.schedule, "Noise schedule: default, karras, exponential or sgm_uniform")
      ->capture_default_str();
  flags.spacing = command->add_option("--timestep-spacing", p.timestep_spacing,
                      "leading, trailing or linspace (default: the scheduler config's)");
  command->add_option("--prediction", p.prediction,
                      "What the model predicts: epsilon or v_prediction (default: the scheduler config's)");
  command->add_option("--eta", p.eta, "DDIM eta: 0 is deterministic, 1 adds full noise each step");
  command->add_option("--clip-skip", p.clip_skip,
                      "Text encoder layer to condition on, counted from the last: 1 the last (as AUTOMATIC1111)")
      ->capture_default_str();
  command->add_option("--original-size", o.original_size,
                      "SDXL size conditioning W,H: the size the picture had before cropping (default: the image's)");
  command->add_option("--crop-coords", o.crop_coords,
                      "SDXL size conditioning X,Y: top-left corner of the crop (default 0,0)");
  command->add_option("--target-size", o.target_size,
                      "SDXL size conditioning W,H: the size asked for (default: the image's)");
  command->add_option("--init-image", o.init_image,
                      "img2img: the PNG to start from (the run takes its size unless --width/--height resize it)");
  command->add_option("--strength", p.strength,
                      "img2img: how much to change the init image, (0, 1]: the last steps x strength steps run "
                      "(default 0.75)");
  command->add_option("--mask", o.mask,
                      "Inpainting: PNG, white repaints and black keeps (greyscale at 128; resized to the init image)");
  command->add_option("--mask-blur", p.mask_blur, "Pixels of blur where the result meets the kept image")
      ->capture_default_str();
  command->add_option("--outpaint", o.outpaint,
                      "Outpainting: pixels to add LEFT,RIGHT,TOP,BOTTOM around the init image, then repaint them");
  command->add_option("--outpaint-fill", p.outpaint_fill, "What the new area starts as: edge (border colours) or noise")
      ->capture_default_str();
}

// What the prompt may call on: LoRAs, embeddings, the prompt language itself.
void add_prompt_addon_flags(CLI::App* command, GenerateOptions& o) {
  command->add_option("--lora", o.loras,
                      "A LoRA as FILE[:WEIGHT] or NAME[:WEIGHT] (NAME.safetensors in a --lora-dir), for the UNet "
                      "and text encoder (default weight 1); repeat for several. The prompt's <lora:NAME:WEIGHT> "
                      "does the same")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  command->add_option("--lora-dir", o.lora_dirs, "Folder (searched with its subfolders) for LoRAs named by NAME")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  command->add_option("--embedding", o.embeddings,
                      "A textual-inversion file (.safetensors, .pt): its file name becomes a word of the prompt")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  command->add_option("--embeddings-dir", o.embedding_dirs,
                      "Folder of textual-inversion files, all made words (those for other models are skipped)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  command->add_flag("--plain-prompt", o.plain_prompt,
                    "Read the prompt as diffusers does: no (weights), [edits], BREAK or <lora:...>, cut at 77 tokens");
}

void add_control_flags(CLI::App* command, GenerateOptions& o) {
  auto& p = o.request;
  command->add_option("--control", o.controls,
                      "A ControlNet unit FILE:IMAGE[:WEIGHT[:START:END]]: the net (file, diffusers folder, or NAME in "
                      "a --controlnet-dir), its control image (PNG, made elsewhere: edges, depth, pose...), the "
                      "weight (default 1) and the fractions of the steps it steers (default 0 and 1); repeat for "
                      "several, their effects add up")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  command->add_option("--controlnet-dir", o.controlnet_dirs, "Folder where --control looks up nets by NAME")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  command->add_option("--control-preprocess", o.control_preprocess,
                      "Make each --control image into its control map first: canny[:LOW:HIGH] (edges, as "
                      "AUTOMATIC1111's canny), invert, threshold[:LEVEL], tile[:FACTOR] or none (the image is the "
                      "map); see `diffuse preprocess`")
      ->capture_default_str();
  command->add_option("--control-mode", p.control_mode,
                      "balanced, prompt (my prompt is more important) or control (ControlNet is more important), "
                      "as AUTOMATIC1111's")
      ->capture_default_str();
  command->add_flag("--control-guess-mode", p.control_guess_mode,
                    "diffusers' guess mode: the nets steer the conditional half only, the deep residuals most");
  command->add_option("--control-resize", p.control_resize,
                      "A control image of another size: stretch (Just Resize), crop (Crop and Resize) or fit "
                      "(Resize and Fill)")
      ->capture_default_str();
}

// How it runs and what it writes; the hires fix.
void add_run_and_output_flags(CLI::App* command, GenerateOptions& o, GenerateFlags& flags) {
  auto& p = o.request;
  command->add_option("--batch-count", p.batch_count, "Images to make; OUT.png becomes OUT-<seed>.png")
      ->capture_default_str();
  command->add_option("--tokenizer", o.tokenizer,
                      "Tokenizer folder (vocab.json + merges.txt) or bpe_simple_vocab_16e6.txt.gz");
  command->add_option("--scheduler-config", o.scheduler_config,
                      "A diffusers scheduler_config.json to use instead of the model's");
  command->add_option("--save-steps", o.save_steps,
                      "Folder for a picture of every step (noisy latents and predicted x0), a sheet and an animation");
  command->add_option("--preview", o.preview,
                      "How --save-steps pictures latents: linear (free), vae (the full decode), or taesd (TAESD's "
                      "decode; taesd:PATH, or the TAESD of --vae)")
      ->capture_default_str();
  command->add_option("--vae", o.vae,
                      "taesd:PATH decodes with TAESD instead of the model's VAE (an AutoencoderTiny folder, or "
                      "taesd_decoder.safetensors with taesd_encoder beside it): ~30x faster at 512x512, a little softer");
  command->add_option("--precision", o.precision,
                      "fp32 or bf16 (default: bf16 where the CPU has AVX512_BF16 or AMX, else fp32)");
  command->add_option("--threads", o.threads, "Threads for the tensor work (default: one per core)");
  command->add_flag("--low-memory", o.low_memory, "Free the text encoder once the prompts are encoded");
  command->add_flag("--vae-tiling", o.vae_tiling,
                    "Decode large images in overlapping tiles, so memory stays that of a 512x512 decode");
  auto& hires = o.hires;
  flags.hires = {
      command->add_option("--hires-scale", hires.scale, "Hires fix: enlarge the first pass this many times")
          ->capture_default_str(),
      command->add_option("--hires-size", o.hires_size,
                          "Hires fix: the result's size, WxH (one side 0: from the aspect ratio); instead of the scale"),
      command->add_option("--hires-upscaler", hires.upscaler,
                          "Hires fix: latent, latent-nearest, latent-bicubic, lanczos, nearest or an ESRGAN file")
          ->capture_default_str(),
      command->add_option("--hires-denoise", hires.denoise, "Hires fix: the second pass's denoising strength, (0, 1]")
          ->capture_default_str(),
      command->add_option("--hires-steps", hires.steps, "Hires fix: second-pass steps (0: as many as the first pass)"),
      command->add_option("--hires-sampler", hires.sampler, "Hires fix: the second pass's sampler (default: --sampler)"),
      command->add_option("--hires-prompt", hires.prompt, "Hires fix: the second pass's prompt (default: --prompt)"),
      command->add_option("--hires-negative,--hires-negative-prompt", hires.negative_prompt,
                          "Hires fix: the second pass's negative prompt (default: --negative-prompt)")};
  command->add_option("-o,--output", o.output, "PNG file to write")->capture_default_str();
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto options = std::make_shared<GenerateOptions>();
  auto* command = app.add_subcommand("generate", "Make an image from a text prompt");
  // A flag given twice takes its last value, as scripts that append overrides expect.
  command->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  GenerateFlags flags;
  add_prompt_and_size_flags(command, *options, flags);
  add_sampling_and_source_flags(command, *options, flags);
  add_prompt_addon_flags(command, *options);
  add_control_flags(command, *options);
  add_run_and_output_flags(command, *options, flags);
  command->callback([=] {
    for (const auto* flag : flags.hires) {
      if (flag->count() > 0) options->hires_given = true;
    }
    const std::pair<const char*, CLI::Option*> given_flags[] = {
        {"sampler", flags.sampler}, {"steps", flags.steps}, {"cfg_scale", flags.cfg_scale},
        {"timestep_spacing", flags.spacing}};
    for (const auto& [field, flag] : given_flags) {
      if (flag->count() > 0) options->given.insert(field);
    }
    if (flags.guidance_embedding->count() > 0) options->request.guidance_embedding = options->guidance_embedding;
    try {
      run_generate(*options);
    } catch (const InvalidParameter& e) {
      // One flag gives both sides.
      if (e.parameter() == "hires_width" || e.parameter() == "hires_height") throw InvalidParameter("hires_size", e.problem());
      throw;
    }
  });
}

}  // namespace diffuse::cli
