#include "io/ldm_layout.h"

#include <set>

#include "util/error.h"

namespace diffuse::io {

LdmPlan plan_ldm_conversion(const std::vector<std::string>& keys, const std::string& open_clip_layer,
                            const std::string& file) {
  const LdmStructure structure = structure_of_original(keys, open_clip_layer, file);
  const LdmNameTable table = ldm_name_table(structure);
  LdmPlan plan;
  plan.family = structure.family;
  std::set<std::pair<Component, std::string>> targets;
  for (const auto& key : keys) {
    const auto matches = table.to_diffusers(key);
    if (matches.empty()) {
      if (const LdmSection* section = table.section_of(key)) {
        throw Error(file + ": tensor '" + key + "' has no diffusers counterpart (not a known " +
                    component_name(section->component) + " tensor)");
      }
      plan.ignored.push_back(key);  // outside the components: EMA copies, noise-schedule buffers
      continue;
    }
    if (matches.front().pair->skipped) {
      plan.ignored.push_back(key);
      continue;
    }
    for (const auto& match : matches) {
      const LdmNamePair& pair = *match.pair;
      if (!targets.insert({pair.component, match.name}).second) {
        throw Error(file + ": two tensors map to " + component_name(pair.component) + " '" + match.name +
                    "' (second: '" + key + "')");
      }
      plan.renames.push_back({key, pair.component, match.name, pair.transform, pair.chunk});
    }
  }
  return plan;
}

}  // namespace diffuse::io
