#include "io/lora_file.h"

#include <map>

#include "io/tensor_file.h"
#include "util/error.h"
#include "util/strings.h"

namespace diffuse::io {

namespace {

enum class Part { Down, Up, Alpha };

struct TensorRole {
  std::string module;  // the file's spelling, up to the part
  Part part;
};

// Which part of which module a tensor is; nullopt for names no layout uses.
std::optional<TensorRole> role_of(const std::string& name) {
  static const std::vector<std::pair<std::string, Part>> endings = {
      {".lora_down.weight", Part::Down},        {".lora_up.weight", Part::Up},
      {".lora.down.weight", Part::Down},        {".lora.up.weight", Part::Up},
      {".lora_linear_layer.down.weight", Part::Down}, {".lora_linear_layer.up.weight", Part::Up},
      {".lora_A.weight", Part::Down},           {".lora_B.weight", Part::Up},
      {"_lora.down.weight", Part::Down},        {"_lora.up.weight", Part::Up},  // attn processors
      {".alpha", Part::Alpha},
  };
  for (const auto& [ending, part] : endings) {
    if (ends_with(name, ending)) return TensorRole{name.substr(0, name.size() - ending.size()), part};
  }
  return std::nullopt;
}

// Names LyCORIS gives the parts of the kinds it adds to LoRA.
bool is_lycoris(const std::string& name) {
  for (const char* part : {".hada_w1_a", ".hada_w1_b", ".lokr_w1", ".lokr_w2", ".lora_mid.", ".oft_", ".dora_scale",
                           ".w_norm"}) {
    if (name.find(part) != std::string::npos) return true;
  }
  return ends_with(name, ".diff") || ends_with(name, ".diff_b");  // LyCORIS "full"
}

// The target and the module path inside it.
void place(LoraModule& module, const std::string& spelling) {
  module.file_name = spelling;
  static const std::vector<std::pair<std::string, LoraTarget>> kohya = {
      {"lora_unet_", LoraTarget::Unet}, {"lora_te1_", LoraTarget::TextEncoder},
      {"lora_te2_", LoraTarget::TextEncoder2}, {"lora_te_", LoraTarget::TextEncoder}};
  for (const auto& [prefix, target] : kohya) {
    if (starts_with(spelling, prefix)) {
      module.target = target;
      module.module = spelling.substr(prefix.size());
      module.underscored = true;
      return;
    }
  }
  std::string path = spelling;
  if (starts_with(path, "base_model.model.")) path = path.substr(17);  // PEFT's own save
  module.target = LoraTarget::Unet;
  if (starts_with(path, "unet.")) {
    path = path.substr(5);
  } else if (starts_with(path, "text_encoder_2.")) {
    module.target = LoraTarget::TextEncoder2;
    path = path.substr(15);
  } else if (starts_with(path, "text_encoder.")) {
    module.target = LoraTarget::TextEncoder;
    path = path.substr(13);
  }
  // The attention processors' names: attn1.processor.to_q_lora -> attn1.to_q, to_out_lora -> to_out.0.
  const auto processor = path.find(".processor.");
  if (processor != std::string::npos) {
    path = path.substr(0, processor) + "." + path.substr(processor + 11);
    if (ends_with(path, "to_out")) path += ".0";
  }
  module.module = path;
}

}  // namespace

LoraFile read_lora_file(const std::filesystem::path& path) {
  const auto file = TensorFile::open(path);  // .safetensors, or an old .pt through the restricted reader
  const auto where = path.string() + ": ";
  struct Parts {
    at::Tensor down, up, alpha;
    std::string down_name, up_name;
  };
  std::map<std::string, Parts> parts;
  std::vector<std::string> order;
  for (const auto& info : file.tensors()) {
    if (is_lycoris(info.name)) {
      throw Error(where + "'" + info.name + "' is a LyCORIS tensor (LoHa, LoKr, LoCon mid, DoRA...): only plain " +
                  "LoRA (down/up/alpha) is supported");
    }
    const auto role = role_of(info.name);
    if (!role) throw Error(where + "'" + info.name + "' is not a LoRA tensor (down, up or alpha of a module)");
    auto [slot, added] = parts.try_emplace(role->module);
    if (added) order.push_back(role->module);
    auto tensor = file.tensor(info.name, at::kFloat);
    switch (role->part) {
      case Part::Down: slot->second.down = tensor, slot->second.down_name = info.name; break;
      case Part::Up: slot->second.up = tensor, slot->second.up_name = info.name; break;
      case Part::Alpha:
        if (tensor.numel() != 1) {
          throw Error(where + "'" + info.name + "' should hold one number, not " + c10::str(tensor.sizes()));
        }
        slot->second.alpha = tensor;
        break;
    }
  }
  LoraFile lora{path, path.stem().string(), {}};
  for (const auto& name : order) {
    const auto& p = parts.at(name);
    if (!p.down.defined() || !p.up.defined()) {
      const auto has = p.down.defined() ? "a down but no up" : p.up.defined() ? "an up but no down" : "only an alpha";
      throw Error(where + "module '" + name + "' has " + has + " weight");
    }
    const bool conv = p.down.dim() == 4;
    const bool chains = (p.down.dim() == 2 || conv) && p.up.dim() == p.down.dim() && p.up.size(1) == p.down.size(0) &&
                        (!conv || (p.up.size(2) == 1 && p.up.size(3) == 1));
    if (!chains) {
      throw Error(where + "module '" + name + "': '" + p.up_name + "' " + c10::str(p.up.sizes()) + " does not follow '" +
                  p.down_name + "' " + c10::str(p.down.sizes()));
    }
    LoraModule module;
    place(module, name);
    module.down = p.down;
    module.up = p.up;
    if (p.alpha.defined()) module.alpha = p.alpha.item<double>();
    lora.modules.push_back(std::move(module));
  }
  if (lora.modules.empty()) throw Error(where + "holds no LoRA modules");
  return lora;
}

}  // namespace diffuse::io
