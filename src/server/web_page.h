#pragma once
// The page `diffuse serve` shows at /: one self-contained HTML file (no CDN, no fonts, no scripts
// from elsewhere) that drives /diffuse/v1/jobs and /sdapi/v1/samplers.
#include <string>

namespace diffuse::server {

const std::string& web_page();

}  // namespace diffuse::server
