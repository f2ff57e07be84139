#include "explain/model_inventory.h"

#include <map>
#include <set>
#include <sstream>

#include "io/controlnet_files.h"
#include "io/model_files.h"
#include "pipeline/component_configs.h"
#include "io/tensor_file.h"
#include "util/error.h"

namespace diffuse::explain {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* label_of(const std::string& key) {
  return key == "text_encoder"     ? "text encoder"
         : key == "text_encoder_2" ? "text encoder 2"
         : key == "unet"           ? "UNet"
         : key == "controlnet"     ? "ControlNet"
                                   : "VAE";
}

int64_t product(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (const int64_t size : shape) count *= size;
  return count;
}

// The file's own tensors for one component, in file order. Several diffusers tensors may come from one
// file tensor (SD 2.x's fused q/k/v), which is listed, and counted, once.
ComponentInventory component_from_file(const std::string& key, const io::ComponentWeights& weights) {
  std::set<std::string> names;
  for (const auto& [name, tensor] : weights.tensors) {
    const auto renamed = weights.file_names.find(name);
    names.insert(renamed != weights.file_names.end() ? renamed->second : name);
  }
  ComponentInventory component{key, label_of(key), weights.source, {}};
  const auto file = io::TensorFile::open(weights.source);
  for (const auto& info : file.tensors()) {
    if (names.count(info.name) == 0) continue;
    component.tensors.push_back({info.name, info.shape, info.dtype, product(info.shape)});
  }
  return component;
}

std::string prediction_type_of(const io::ModelFiles& files) {
  return pipeline::scheduler_config(files).prediction == sampling::Prediction::VPrediction ? "v_prediction"
                                                                                        : "epsilon";
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

template <typename T>
std::string list_text(const std::vector<T>& values) {
  std::ostringstream text;
  for (size_t i = 0; i < values.size(); ++i) text << (i ? ", " : "") << values[i];
  return text.str();
}

// "12 layers, width 768, 12 attention heads, MLP 3072": what both text encoders' lines start with.
std::string encoder_layers_text(const models::TextEncoderConfig& te) {
  std::ostringstream out;
  out << te.num_layers << " layers, width " << te.hidden_size << ", " << te.num_heads << " attention heads, MLP "
      << te.intermediate_size;
  return out.str();
}

// A ControlNet's facts: its copied encoder, its hint encoder, what base model it steers.
std::string controlnet_text(const models::ControlNetConfig& c) {
  std::ostringstream out;
  const auto& u = c.unet;
  const std::string base = u.text_time()                     ? "SDXL"
                           : u.cross_attention_dim == 768    ? "SD 1.x"
                           : u.cross_attention_dim == 1024   ? "SD 2.x"
                                                             : "an SD 1.x/2.x-style model";
  out << "Architecture (ControlNet for " << base << ", text width " << u.cross_attention_dim << ")\n"
      << "  copied encoder: channels per level " << list_text(u.block_out_channels) << ", attention heads per level "
      << list_text(u.num_heads) << ", transformer layers per level " << list_text(u.transformer_layers) << ", "
      << u.layers_per_block << " resnet layers per block, latent channels " << u.in_channels
      << (u.text_time() ? ", size conditioning" : "") << "\n"
      << "  hint encoder: " << c.conditioning_channels << " channels in, widths "
      << list_text(c.conditioning_embedding_out_channels) << ", downscale x" << c.hint_downscale_factor()
      << " (must equal the VAE's), channel order " << c.conditioning_channel_order << "\n"
      << "  residuals: " << u.levels() * u.layers_per_block + u.levels() << " skip connections and the middle block"
      << (c.global_pool_conditions ? ", pooled over the image" : "") << "\n";
  return out.str();
}

std::string architecture_text(const Architecture& a) {
  if (a.controlnet) return controlnet_text(*a.controlnet);
  std::ostringstream out;
  const auto& te = a.text_encoder;
  const auto& u = a.unet;
  const auto& v = a.vae;
  std::vector<int> attention;
  for (const bool has : u.cross_attention) attention.push_back(has ? 1 : 0);
  const int latent = u.sample_size;
  out << "Architecture (family " << a.family << ")\n"
      << "  text encoder: " << encoder_layers_text(te) << ", vocabulary " << te.vocab_size << ", "
      << te.max_positions << " positions, " << te.hidden_act << "\n";
  if (a.text_encoder_2) {
    const auto& te2 = *a.text_encoder_2;
    out << "  text encoder 2: " << encoder_layers_text(te2) << ", " << te2.hidden_act << ", projection "
        << te2.projection_dim << "\n";
  }
  out
      << "  UNet: channels per level " << list_text(u.block_out_channels) << ", attention heads per level "
      << list_text(u.num_heads) << ", cross-attention at levels (1 = yes) " << list_text(attention)
      << ", transformer layers per level " << list_text(u.transformer_layers) << ", " << u.layers_per_block
      << " resnet layers per block, cross-attention width " << u.cross_attention_dim << ", "
      << (u.use_linear_projection ? "linear" : "1x1 conv") << " projections, in/out channels " << u.in_channels
      << "/" << u.out_channels << "\n"
      << "  VAE: channels per level " << list_text(v.block_out_channels) << ", " << v.layers_per_block
      << " resnet layers per block, downscale x" << v.downscale_factor() << ", latent channels "
      << v.latent_channels << ", scaling factor " << v.scaling_factor << "\n"
      << "  latents: " << v.latent_channels << " x " << latent << " x " << latent << " for a "
      << latent * v.downscale_factor() << " x " << latent * v.downscale_factor() << " image\n"
      << "  prediction type: " << a.prediction_type << "\n";
  return out.str();
}

}  // namespace

bool is_matrix(const TensorEntry& entry) { return entry.shape.size() >= 2; }

int64_t ComponentInventory::parameters() const {
  int64_t total = 0;
  for (const auto& t : tensors) total += t.parameters;
  return total;
}

int64_t ComponentInventory::matrices() const {
  int64_t total = 0;
  for (const auto& t : tensors) total += is_matrix(t) ? 1 : 0;
  return total;
}

int64_t ModelInventory::parameters() const {
  int64_t total = 0;
  for (const auto& c : components) total += c.parameters();
  return total;
}

int64_t ModelInventory::matrices() const {
  int64_t total = 0;
  for (const auto& c : components) total += c.matrices();
  return total;
}

int64_t ModelInventory::tensor_count() const {
  int64_t total = 0;
  for (const auto& c : components) total += static_cast<int64_t>(c.tensors.size());
  return total;
}

namespace {

ModelInventory inspect_controlnet(const fs::path& path) {
  const auto files = io::load_controlnet_files(path, at::kHalf);
  ModelInventory inventory;
  inventory.path = path.string();
  inventory.layout = fs::is_directory(path) ? "ControlNet, diffusers folder" : "ControlNet, single file";
  inventory.components.push_back(component_from_file("controlnet", files));
  inventory.architecture.family = "controlnet";
  inventory.architecture.controlnet = files.config.is_null() ? models::ControlNetConfig::infer(files.tensors)
                                                             : models::ControlNetConfig::from_json(files.config);
  return inventory;
}

}  // namespace

ModelInventory inspect_model(const fs::path& path) {
  if (io::is_controlnet_path(path)) return inspect_controlnet(path);
  // Half keeps F16 files as views of the mapping; only the shapes matter here.
  const auto files = io::load_model_files(path, at::kHalf);
  ModelInventory inventory;
  inventory.path = path.string();
  inventory.layout = files.layout == io::ModelFiles::Layout::Diffusers ? "diffusers folder" : "single file";
  inventory.components.push_back(component_from_file("text_encoder", files.text_encoder));
  if (!files.text_encoder_2.tensors.empty()) {
    inventory.components.push_back(component_from_file("text_encoder_2", files.text_encoder_2));
  }
  inventory.components.push_back(component_from_file("unet", files.unet));
  inventory.components.push_back(component_from_file("vae", files.vae));
  inventory.not_loaded = files.ignored;
  auto& a = inventory.architecture;
  a.family = io::ldm_family_name(files.family);
  a.text_encoder = pipeline::text_encoder_config(files.text_encoder, files.original.text_encoder);
  if (!files.text_encoder_2.tensors.empty()) {
    a.text_encoder_2 = pipeline::text_encoder_config(files.text_encoder_2, files.original.text_encoder_2);
  }
  a.unet = pipeline::unet_config(files.unet, files.original);
  a.vae = pipeline::vae_config(files.vae, files.original);
  a.prediction_type = prediction_type_of(files);
  return inventory;
}

ComponentInventory inventory_of_module(const std::string& key, const torch::nn::Module& module) {
  ComponentInventory component{key, label_of(key), "(built in memory)", {}};
  for (const auto& item : module.named_parameters()) {
    const auto& tensor = item.value();
    component.tensors.push_back({item.key(), tensor.sizes().vec(), std::string(c10::toString(tensor.scalar_type())),
                                 tensor.numel()});
  }
  return component;
}

std::string with_thousands(int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(static_cast<size_t>(i), ",");
  return (value < 0 ? "-" : "") + digits;
}

json to_json(const ModelInventory& inventory) {
  json out{{"path", inventory.path}, {"layout", inventory.layout}};
  out["matrix_definition"] = "a tensor with 2 or more dimensions (linear weights, embeddings, conv kernels)";
  json components = json::array();
  for (const auto& c : inventory.components) {
    json tensors = json::array();
    for (const auto& t : c.tensors) {
      tensors.push_back({{"name", t.name}, {"shape", t.shape}, {"dtype", t.dtype}, {"parameters", t.parameters}});
    }
    components.push_back({{"component", c.key}, {"source", c.source}, {"tensors", tensors},
                          {"tensor_count", c.tensors.size()}, {"matrices", c.matrices()},
                          {"parameters", c.parameters()}});
  }
  out["components"] = components;
  out["total"] = {{"tensor_count", inventory.tensor_count()},
                  {"matrices", inventory.matrices()},
                  {"parameters", inventory.parameters()}};
  out["not_loaded"] = inventory.not_loaded;
  const auto& a = inventory.architecture;
  if (a.controlnet) {
    out["architecture"] = {{"family", a.family}, {"controlnet", a.controlnet->to_json()}};
    return out;
  }
  out["architecture"] = {
      {"family", a.family},
      {"prediction_type", a.prediction_type},
      {"text_encoder",
       {{"layers", a.text_encoder.num_layers}, {"hidden_size", a.text_encoder.hidden_size},
        {"attention_heads", a.text_encoder.num_heads}, {"intermediate_size", a.text_encoder.intermediate_size},
        {"vocab_size", a.text_encoder.vocab_size}, {"max_positions", a.text_encoder.max_positions},
        {"hidden_act", a.text_encoder.hidden_act}}},
      {"unet",
       {{"block_out_channels", a.unet.block_out_channels}, {"attention_heads", a.unet.num_heads},
        {"cross_attention", a.unet.cross_attention}, {"transformer_layers", a.unet.transformer_layers},
        {"layers_per_block", a.unet.layers_per_block}, {"cross_attention_dim", a.unet.cross_attention_dim},
        {"use_linear_projection", a.unet.use_linear_projection}, {"in_channels", a.unet.in_channels},
        {"out_channels", a.unet.out_channels}, {"sample_size", a.unet.sample_size}}},
      {"vae",
       {{"block_out_channels", a.vae.block_out_channels}, {"layers_per_block", a.vae.layers_per_block},
        {"latent_channels", a.vae.latent_channels}, {"downscale_factor", a.vae.downscale_factor()},
        {"scaling_factor", a.vae.scaling_factor}}},
  };
  return out;
}

std::string to_text(const ModelInventory& inventory, bool list_tensors) {
  std::ostringstream out;
  out << "Model: " << inventory.path << " (" << inventory.layout << ")\n\n";
  if (list_tensors) {
    for (const auto& c : inventory.components) {
      out << c.label << " — " << c.source << "\n";
      char line[512];
      std::snprintf(line, sizeof line, "  %-72s %-22s %-5s %13s\n", "tensor", "shape", "dtype", "parameters");
      out << line;
      for (const auto& t : c.tensors) {
        std::snprintf(line, sizeof line, "  %-72s %-22s %-5s %13s\n", t.name.c_str(), shape_text(t.shape).c_str(),
                      t.dtype.c_str(), with_thousands(t.parameters).c_str());
        out << line;
      }
      out << "\n";
    }
  }
  char line[256];
  std::snprintf(line, sizeof line, "%-14s %8s %9s %15s\n", "component", "tensors", "matrices", "parameters");
  out << line;
  for (const auto& c : inventory.components) {
    std::snprintf(line, sizeof line, "%-14s %8zu %9lld %15s\n", c.label.c_str(), c.tensors.size(),
                  static_cast<long long>(c.matrices()), with_thousands(c.parameters()).c_str());
    out << line;
  }
  std::snprintf(line, sizeof line, "%-14s %8lld %9lld %15s\n", "all", static_cast<long long>(inventory.tensor_count()),
                static_cast<long long>(inventory.matrices()), with_thousands(inventory.parameters()).c_str());
  out << line;
  out << "A matrix is counted as any tensor with 2 or more dimensions: linear weights [out, in], embedding\n"
         "tables [vocabulary, width] and convolution kernels [out, in, kh, kw]; the rest are biases and\n"
         "normalisation scales (1 dimension).\n";
  if (!inventory.not_loaded.empty()) {
    out << inventory.not_loaded.size() << " tensor(s) in the files are not parameters and not counted:";
    for (size_t i = 0; i < inventory.not_loaded.size() && i < 5; ++i) out << (i ? ", " : " ") << inventory.not_loaded[i];
    out << (inventory.not_loaded.size() > 5 ? ", ...\n" : "\n");
  }
  out << "\n" << architecture_text(inventory.architecture);
  return out.str();
}

}  // namespace diffuse::explain
