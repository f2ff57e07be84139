// StableDiffusionModel's LoRAs (model.h), and finding their files.
#include "pipeline/lora.h"

#include <optional>
#include <unordered_map>

#include "io/ldm_names.h"
#include "models/conv.h"
#include "models/linear.h"
#include "pipeline/model.h"
#include "util/error.h"

namespace diffuse::pipeline {

namespace fs = std::filesystem;

fs::path find_lora_file(const std::string& name, const std::vector<fs::path>& dirs) {
  if (name.empty()) throw InvalidParameter("lora", "a LoRA needs a name or a file");
  std::error_code error;
  if (fs::is_regular_file(name, error)) return name;
  // AUTOMATIC1111's extensions; older LoRAs are .pt or .ckpt, read by the restricted unpickler.
  const std::vector<std::string> wanted = {name + ".safetensors", name + ".ckpt", name + ".pt"};
  const auto in_folder = [&](const fs::path& dir) -> std::optional<fs::path> {
    for (const auto& file : wanted) {
      if (fs::is_regular_file(dir / file, error)) return dir / file;
    }
    return std::nullopt;
  };
  std::string looked;
  for (const auto& dir : dirs) {
    looked += (looked.empty() ? "" : ", ") + dir.string();
    if (const auto found = in_folder(dir)) return *found;
    if (!fs::is_directory(dir, error)) continue;
    for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, error), end;
         !error && it != end; it.increment(error)) {
      if (!it->is_directory(error)) continue;
      if (const auto found = in_folder(it->path())) return *found;
    }
  }
  throw InvalidParameter("lora", "no LoRA file '" + name + "' and no " + wanted[0] + " (.ckpt, .pt) in " +
                                     (looked.empty() ? std::string("any LoRA folder (none given)") : looked));
}

namespace {

struct Layer {
  models::LinearImpl* linear = nullptr;
  models::Conv2dImpl* conv = nullptr;
};

std::string underscored(std::string name) {
  for (auto& c : name) c = c == '.' ? '_' : c;
  return name;
}

// Every Linear and Conv2d of `root` under its dotted and its underscored (kohya) name.
std::unordered_map<std::string, Layer> layers_of(torch::nn::Module& root) {
  std::unordered_map<std::string, Layer> layers;
  for (const auto& item : root.named_modules("", false)) {
    Layer layer{dynamic_cast<models::LinearImpl*>(item.value().get()),
                dynamic_cast<models::Conv2dImpl*>(item.value().get())};
    if (!layer.linear && !layer.conv) continue;
    layers.emplace(item.key(), layer);
    layers.emplace(underscored(item.key()), layer);
  }
  return layers;
}

TensorMap parameters_of(const torch::nn::Module& module) {
  TensorMap tensors;
  for (const auto& item : module.named_parameters(true)) tensors.emplace(item.key(), item.value());
  return tensors;
}

// The UNet's layers under their original (LDM / sgm) names, as kohya names SDXL's: input_blocks_4_1_...
void add_original_unet_names(std::unordered_map<std::string, Layer>& layers, StableDiffusionModel& model) {
  const auto unet = parameters_of(*model.unet);
  const auto structure =
      model.is_sdxl() ? io::structure_of_diffusers(unet, parameters_of(*model.vae), parameters_of(*model.text_encoder),
                                                   parameters_of(*model.text_encoder_2))
                      : io::structure_of_diffusers(unet, parameters_of(*model.vae), parameters_of(*model.text_encoder),
                                                   io::TextEncoderLayout::Clip);
  const auto table = io::ldm_name_table(structure);
  const std::string prefix = "model.diffusion_model.", suffix = ".weight";
  for (const auto& [name, layer] : layers_of(*model.unet)) {
    if (unet.count(name + suffix) == 0) continue;  // an underscored alias
    const auto match = table.to_original(io::Component::Unet, name + suffix);
    if (!match || match->name.rfind(prefix, 0) != 0) continue;
    const auto original = match->name.substr(prefix.size(), match->name.size() - prefix.size() - suffix.size());
    layers.emplace(underscored(original), layer);
  }
}

void clear_updates(torch::nn::Module& root) {
  for (const auto& module : root.modules()) {
    if (auto* linear = dynamic_cast<models::LinearImpl*>(module.get())) linear->clear_low_rank_updates();
    if (auto* conv = dynamic_cast<models::Conv2dImpl*>(module.get())) conv->clear_low_rank_updates();
  }
}

// The file's down/up in the form `layer` runs: a kohya 1x1 conv update on a linear projection (SD 2.x
// uses linear proj_in/proj_out) or the other way round.
models::LowRankUpdate update_for(const Layer& layer, const io::LoraModule& module, double scale) {
  models::LowRankUpdate update{module.down, module.up, scale};
  const bool one_by_one = module.down.dim() == 4 && module.down.size(2) == 1 && module.down.size(3) == 1;
  if (layer.linear && one_by_one) {
    update.down = update.down.flatten(1);
    update.up = update.up.flatten(1);
  } else if (layer.conv && module.down.dim() == 2) {
    update.down = update.down.unsqueeze(-1).unsqueeze(-1);
    update.up = update.up.unsqueeze(-1).unsqueeze(-1);
  }
  return update;
}

}  // namespace

void StableDiffusionModel::set_loras(const std::vector<LoraUse>& loras) {
  if (loras == loras_) return;
  for (const auto& use : loras) {
    if (lora_files_.count(use.file)) continue;
    try {
      lora_files_[use.file] = std::make_shared<const io::LoraFile>(io::read_lora_file(use.file));
    } catch (const InvalidParameter&) {
      throw;
    } catch (const Error& error) {
      throw InvalidParameter("lora", error.what());
    }
  }
  loras_ = loras;
  encoded_prompts_.clear();  // they were encoded with the text encoders' old updates
  try {
    apply_loras(false);
  } catch (...) {
    loras_.clear();
    apply_loras(false);
    throw;
  }
}

void StableDiffusionModel::apply_loras(bool text_encoders_only) {
  torch::NoGradGuard no_grad;
  struct Target {
    torch::nn::Module* root;
    std::unordered_map<std::string, Layer> layers;
    bool built = false;
  };
  std::map<io::LoraTarget, Target> targets;
  targets[io::LoraTarget::TextEncoder].root = text_encoder ? text_encoder.get() : nullptr;
  targets[io::LoraTarget::TextEncoder2].root = text_encoder_2 ? text_encoder_2.get() : nullptr;
  targets[io::LoraTarget::Unet].root = text_encoders_only ? nullptr : unet.get();
  for (auto& [kind, target] : targets) {
    if (target.root) clear_updates(*target.root);
  }
  bool original_unet_names = false;
  for (const auto& use : loras_) {
    const auto& file = *lora_files_.at(use.file);
    std::vector<std::string> unmatched, misfits;
    for (const auto& module : file.modules) {
      auto& target = targets[module.target];
      const bool unet_module = module.target == io::LoraTarget::Unet;
      if (!target.root) {
        // A UNet-only pass, or released text encoders: they take theirs when they are loaded again.
        if (module.target == io::LoraTarget::TextEncoder2 && !is_sdxl()) unmatched.push_back(module.file_name);
        continue;
      }
      if (!target.built) target.layers = layers_of(*target.root), target.built = true;
      auto found = target.layers.find(module.module);
      if (found == target.layers.end() && unet_module && module.underscored && !original_unet_names) {
        add_original_unet_names(target.layers, *this);
        original_unet_names = true;
        found = target.layers.find(module.module);
      }
      if (found == target.layers.end()) {
        unmatched.push_back(module.file_name);
        continue;
      }
      const double weight = unet_module ? use.unet_weight : use.text_encoder_weight;
      if (weight == 0) continue;
      try {
        const auto update = update_for(found->second, module, weight * module.multiplier());
        if (found->second.linear) found->second.linear->add_low_rank_update(update);
        else found->second.conv->add_low_rank_update(update);
      } catch (const Error& error) {
        misfits.push_back(module.file_name + " (" + error.what() + ")");
      }
    }
    const auto list = [](const std::vector<std::string>& names) {
      std::string text;
      for (size_t i = 0; i < names.size() && i < 8; ++i) text += (i ? ", " : "") + names[i];
      if (names.size() > 8) text += " and " + std::to_string(names.size() - 8) + " more";
      return text;
    };
    if (!unmatched.empty()) {
      throw InvalidParameter("lora", use.file.string() + ": " + std::to_string(unmatched.size()) + " of its " +
                                         std::to_string(file.modules.size()) +
                                         " modules match no layer of this model (a LoRA for another model?): " +
                                         list(unmatched));
    }
    if (!misfits.empty()) {
      throw InvalidParameter("lora", use.file.string() + ": " + std::to_string(misfits.size()) +
                                         " modules do not fit their layers: " + list(misfits));
    }
  }
}

}  // namespace diffuse::pipeline
