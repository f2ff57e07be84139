#include "cli/decoder_options.h"

#include "util/error.h"

namespace diffuse::cli {

namespace fs = std::filesystem;

namespace {

fs::path existing(const std::string& parameter, const fs::path& path) {
  std::error_code error;
  if (!fs::exists(path, error)) throw InvalidParameter(parameter, "'" + path.string() + "' does not exist");
  return path;
}

}  // namespace

explain::PreviewMode apply_decoder_options(const std::string& vae, const std::string& preview,
                                           pipeline::LoadOptions& load) {
  if (!vae.empty()) {
    const auto taesd = pipeline::taesd_spec_path(vae);
    if (!taesd) {
      throw InvalidParameter("vae", "'" + vae + "' is not taesd:PATH (a TAESD folder or taesd_decoder.safetensors; "
                                                "the model's own VAE is used otherwise)");
    }
    load.taesd = existing("vae", *taesd);
    load.taesd_as_vae = true;
  }
  const auto choice = explain::parse_preview(preview);
  if (choice.taesd) {
    const auto path = existing("preview", *choice.taesd);
    if (load.taesd && fs::weakly_canonical(*load.taesd) != fs::weakly_canonical(path)) {
      throw InvalidParameter("preview", "taesd:" + path.string() + " is not the TAESD of --vae (" +
                                            load.taesd->string() + "); one TAESD serves both");
    }
    load.taesd = path;
  } else if (choice.mode == explain::PreviewMode::Taesd && !load.taesd) {
    throw InvalidParameter("preview", "taesd needs a TAESD to load: --preview taesd:PATH, or --vae taesd:PATH");
  }
  return choice.mode;
}

}  // namespace diffuse::cli
