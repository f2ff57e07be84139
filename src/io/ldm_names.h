// The one table between original single-file (LDM / CompVis) tensor names and the diffusers names
// our modules use, built once from the block structure (io/ldm_structure.h). Loading
// (io/ldm_layout.h) and export (io/ldm_export.h) are lookups over it in opposite directions, so
// the two cannot disagree. A layout with more components (SDXL's two text encoders, label_emb) is
// more sections and rows, not new lookup code.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/ldm_structure.h"

namespace diffuse::io {

// TextEncoder2: SDXL's second text encoder (diffusers' text_encoder_2). ControlNet: a ControlNet
// file's one component (diffusers' ControlNetModel).
enum class Component { Unet, Vae, TextEncoder, TextEncoder2, ControlNet };
// The diffusers folder's name: "unet", ..., "text_encoder_2"; "controlnet".
const char* component_name(Component component);

enum class Transform {
  None,
  ConvToLinear,  // [C, C, 1, 1] 1x1 conv weight in the file <-> [C, C] linear weight (VAE mid attention)
  ChunkOf3,      // the file's fused q/k/v projection (OpenCLIP in_proj) <-> its row block `chunk`
  Transpose,     // [in, out] matrix in the file (OpenCLIP's x @ text_projection) <-> [out, in] linear weight
};

// One tensor, or one module when the names end in '.': then it stands for every name under it,
// the rest of the name kept.
struct LdmNamePair {
  std::string original;   // full name in the file; empty where only diffusers has the tensor
  Component component;
  std::string diffusers;  // inside the component; empty where only the file has the tensor
  Transform transform = Transform::None;
  int chunk = 0;          // ChunkOf3: 0 = q, 1 = k, 2 = v
  bool skipped = false;   // known, but neither loaded nor written: buffers, unused heads and layers
  bool alias = false;     // an older spelling of the original name: read, never written
};

// A name translated through one pair.
struct LdmNameMatch {
  const LdmNamePair* pair;
  std::string name;  // the full name on the other side; empty when that side has none
};

// Where a component's tensors sit in the file: a name under a section that no pair knows is an
// error, while names outside every section (EMA copies, schedule buffers) are just not ours.
struct LdmSection {
  std::string prefix;
  Component component;
};

class LdmNameTable {
 public:
  LdmNameTable(std::vector<LdmSection> sections, std::vector<LdmNamePair> pairs);

  // The pairs `original` matches, the most specific one (an exact name before a module) only:
  // none when the table does not know it, three for a fused q/k/v projection.
  std::vector<LdmNameMatch> to_diffusers(const std::string& original) const;
  std::optional<LdmNameMatch> to_original(Component component, const std::string& diffusers) const;
  const LdmSection* section_of(const std::string& original) const;

 private:
  std::vector<LdmSection> sections_;
  std::vector<LdmNamePair> pairs_;
  std::unordered_map<std::string, std::vector<size_t>> by_original_;
  std::map<std::pair<Component, std::string>, size_t> by_diffusers_;
};

LdmNameTable ldm_name_table(const LdmStructure& structure);
// A ControlNet file's table: one section (the structure's prefix), Component::ControlNet.
LdmNameTable ldm_controlnet_name_table(const ControlNetStructure& structure);

}  // namespace diffuse::io
