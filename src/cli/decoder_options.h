#pragma once
// The flags that choose what turns latents into pictures, shared by `generate` and `serve`:
// --vae taesd:PATH (TAESD for the final decode) and --preview linear|vae|taesd[:PATH].
#include <string>

#include "explain/step_previews.h"
#include "pipeline/model.h"

namespace diffuse::cli {

// Puts the TAESD either flag names into `load` and returns the preview mode. Throws
// diffuse::InvalidParameter ("vae", "preview") for a value that is not one of the forms, a path that
// does not exist, two different TAESD paths, or a taesd preview with no TAESD to load.
explain::PreviewMode apply_decoder_options(const std::string& vae, const std::string& preview,
                                           pipeline::LoadOptions& load);

}  // namespace diffuse::cli
