// Fuzzes the readers of diffusers config.json files: util/json.cpp's parse_json (Python's NaN and
// Infinity allowed), then UNetConfig, VaeConfig and TextEncoderConfig::from_json (src/models/config.cpp)
// and SchedulerConfig::from_json (src/sampling/scheduler_config.cpp), and the original (LDM / sgm)
// config reader beside single files (src/io/original_config.cpp) on the same document. A
// diffuse::Error (malformed JSON included) is a refusal. Any other exception (a stray
// nlohmann::json::exception included), a sanitizer report, or an accepted config whose derived sizes
// cannot be computed or that does not read back from its own to_json() is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_support.h"
#include "io/original_config.h"
#include "models/config.h"
#include "sampling/sampling.h"
#include "util/error.h"
#include "util/json.h"

namespace {

using namespace diffuse::models;

void check_unet(const UNetConfig& c) {
  const size_t levels = c.block_out_channels.size();
  FUZZ_CHECK(c.cross_attention.size() == levels && c.num_heads.size() == levels &&
             c.transformer_layers.size() == levels);
  (void)c.time_embed_dim();
  const nlohmann::json written = c.to_json();
  FUZZ_CHECK(UNetConfig::from_json(written).to_json() == written);
}

void check_vae(const VaeConfig& c) {
  (void)c.downscale_factor();
  const nlohmann::json written = c.to_json();
  FUZZ_CHECK(VaeConfig::from_json(written).to_json() == written);
}

void check_text_encoder(const TextEncoderConfig& c) {
  FUZZ_CHECK(c.num_heads > 0 && c.hidden_size % c.num_heads == 0);
  const nlohmann::json written = c.to_json();
  FUZZ_CHECK(TextEncoderConfig::from_json(written).to_json() == written);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json config;
  try {
    config = diffuse::parse_json(std::string(reinterpret_cast<const char*>(data), size), "fuzz/config.json");
  } catch (const diffuse::Error&) {
    return 0;  // malformed JSON: a refusal
  }
  try {
    check_unet(UNetConfig::from_json(config));
  } catch (const diffuse::Error&) {
  }
  try {
    check_vae(VaeConfig::from_json(config));
  } catch (const diffuse::Error&) {
  }
  try {
    check_text_encoder(TextEncoderConfig::from_json(config));
  } catch (const diffuse::Error&) {
  }
  try {
    (void)diffuse::sampling::SchedulerConfig::from_json(config);
  } catch (const diffuse::Error&) {
  }
  try {
    // What convert writes from the facts must read back to the same facts.
    const auto facts = diffuse::io::read_original_config(config);
    const auto again = diffuse::io::read_original_config(diffuse::io::original_config_json(facts, diffuse::io::LdmFamily::Sd1));
    FUZZ_CHECK(again.unet.image_size == facts.unet.image_size && again.vae.scale_factor == facts.vae.scale_factor &&
               again.text_encoder.num_heads == facts.text_encoder.num_heads && again.v_prediction == facts.v_prediction);
  } catch (const diffuse::Error&) {
  }
  return 0;
}
