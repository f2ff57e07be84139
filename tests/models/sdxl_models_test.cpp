// SDXL's model pieces: both text encoders (penultimate states, the pooled projected embedding), the
// UNet with its text_time added conditioning, and the VAE, against tiny-sdxl's references (diffusers
// 0.27.2 / transformers, float32), loaded from the diffusers folder through io::load_model_files.
// Tolerance: 1e-4 of the reference's largest magnitude, as for every fp32 component output.
// Also: configs read and inferred for SDXL, the errors a text_time UNet gives, and the parameter
// counts of full-size SDXL networks built from their configs.
#include <gtest/gtest.h>

#include "io/model_files.h"
#include "models/clip_text_encoder.h"
#include "models/kernel_options.h"
#include "models/unet.h"
#include "models/vae.h"
#include "models/weights.h"
#include "support/fixtures.h"
#include "util/error.h"

namespace diffuse::models {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::fixtures_dir;
using test::read_json;
using test::read_reference;
using test::relative_max_error;

using test::kComponentTolerance;

fs::path sdxl_dir() { return fixtures_dir() / "tiny-sdxl"; }
fs::path refs() { return sdxl_dir() / "refs"; }
at::Tensor ref(const json& name) { return read_reference(refs() / name.get<std::string>()); }

// The diffusers folder, read once for every test here.
const io::ModelFiles& sdxl_files() {
  static const io::ModelFiles files = io::load_model_files(sdxl_dir() / "diffusers");
  return files;
}

template <typename Module, typename Config>
Module build(const io::ComponentWeights& component) {
  Module module(Config::from_json(component.config));
  load_weights(*module, component.tensors,
               {component.source, component.file_names, ClipTextModelImpl::optional_tensors()});
  module->eval();
  return module;
}

at::Tensor ids_of(const json& list) { return at::tensor(list.get<std::vector<int64_t>>(), at::kLong).unsqueeze(0); }

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t total = 0;
  for (const auto& p : module.parameters()) total += p.numel();
  return total;
}

// Builds full-size networks with bf16 parameters (SDXL's UNet: 5 GiB instead of 10 in fp32).
struct DefaultDtype {
  explicit DefaultDtype(at::ScalarType dtype) : previous(c10::get_default_dtype()) {
    c10::set_default_dtype(caffe2::TypeMeta::fromScalarType(dtype));
  }
  ~DefaultDtype() { c10::set_default_dtype(previous); }
  caffe2::TypeMeta previous;
};

class Sdxl : public ::testing::Test {
 protected:
  json manifest() const { return read_json(sdxl_dir() / "manifest.json"); }
  torch::NoGradGuard no_grad;
};

TEST_F(Sdxl, FolderHasBothTextEncoders) {
  const auto& files = sdxl_files();
  EXPECT_EQ(files.family, io::LdmFamily::Sdxl);
  ASSERT_FALSE(files.text_encoder_2.tensors.empty());
  EXPECT_EQ(files.text_encoder_2.tensors.count("text_projection.weight"), 1u);
}

TEST_F(Sdxl, TextEncoderConfigs) {
  const auto te1 = TextEncoderConfig::from_json(sdxl_files().text_encoder.config);
  const auto te2 = TextEncoderConfig::from_json(sdxl_files().text_encoder_2.config);
  // CLIPTextModel's config names a projection_dim it does not have.
  EXPECT_EQ(te1.projection_dim, 0);
  EXPECT_EQ(te1.hidden_act, "quick_gelu");
  EXPECT_EQ(te2.projection_dim, 32);
  EXPECT_EQ(te2.hidden_act, "gelu");
  EXPECT_EQ(te2.eos_token_id, 2);
  EXPECT_EQ(te2.num_layers, 5);
}

// Single files reach infer() with diffusers-named tensors and hints for what shapes cannot show (the
// tiny encoders' 8-wide heads; pipeline/component_configs.h takes them from the sgm config).
TEST_F(Sdxl, TextEncoderConfigsInferredFromShapes) {
  for (const auto* component : {&sdxl_files().text_encoder, &sdxl_files().text_encoder_2}) {
    const auto expected = TextEncoderConfig::from_json(component->config);
    TextEncoderHints hints;
    hints.num_heads = expected.num_heads;
    const auto inferred = TextEncoderConfig::infer(component->tensors, hints);
    EXPECT_EQ(inferred.vocab_size, expected.vocab_size);
    EXPECT_EQ(inferred.hidden_size, expected.hidden_size);
    EXPECT_EQ(inferred.intermediate_size, expected.intermediate_size);
    EXPECT_EQ(inferred.num_layers, expected.num_layers);
    EXPECT_EQ(inferred.num_heads, expected.num_heads);
    EXPECT_EQ(inferred.max_positions, expected.max_positions);
    EXPECT_EQ(inferred.hidden_act, expected.hidden_act);
    EXPECT_EQ(inferred.projection_dim, expected.projection_dim);
    EXPECT_EQ(inferred.eos_token_id, expected.eos_token_id);
  }
  // Where no hint names the activation: OpenCLIP's exact GELU (the encoder with a projection, or
  // one hinted as OpenCLIP), CLIP's quick_gelu.
  TextEncoderHints heads;
  heads.num_heads = 4;
  EXPECT_EQ(TextEncoderConfig::infer(sdxl_files().text_encoder.tensors, heads).hidden_act, "quick_gelu");
  EXPECT_EQ(TextEncoderConfig::infer(sdxl_files().text_encoder_2.tensors, heads).hidden_act, "gelu");
  heads.open_clip = true;
  EXPECT_EQ(TextEncoderConfig::infer(sdxl_files().text_encoder.tensors, heads).hidden_act, "gelu");
  heads.hidden_act = "relu";
  EXPECT_THROW(TextEncoderConfig::infer(sdxl_files().text_encoder.tensors, heads), Error);
  // Without hints a 32-wide encoder's heads cannot be told (full-size ones: 64-wide heads).
  EXPECT_THROW(TextEncoderConfig::infer(sdxl_files().text_encoder_2.tensors), Error);
}

TEST_F(Sdxl, UNetConfig) {
  const auto c = UNetConfig::from_json(sdxl_files().unet.config);
  EXPECT_TRUE(c.text_time());
  EXPECT_EQ(c.addition_time_embed_dim, 8);
  EXPECT_EQ(c.projection_class_embeddings_input_dim, 80);
  EXPECT_EQ(c.cross_attention, (std::vector<bool>{false, true}));
  EXPECT_EQ(c.transformer_layers, (std::vector<int>{1, 2}));
  EXPECT_EQ(c.num_heads, (std::vector<int>{2, 4}));
  EXPECT_EQ(c.cross_attention_dim, 64);
  EXPECT_TRUE(c.use_linear_projection);

  UNetHints hints;  // what the tiny model's sgm config says
  hints.head_channels = 16;
  hints.addition_time_embed_dim = 8;
  hints.added_conditioning_inputs = 80;
  const auto inferred = UNetConfig::infer(sdxl_files().unet.tensors, hints);
  EXPECT_EQ(inferred.addition_embed_type, "text_time");
  EXPECT_EQ(inferred.addition_time_embed_dim, c.addition_time_embed_dim);
  EXPECT_EQ(inferred.projection_class_embeddings_input_dim, c.projection_class_embeddings_input_dim);
  EXPECT_EQ(inferred.block_out_channels, c.block_out_channels);
  EXPECT_EQ(inferred.cross_attention, c.cross_attention);
  EXPECT_EQ(inferred.transformer_layers, c.transformer_layers);
  EXPECT_EQ(inferred.num_heads, c.num_heads);
  EXPECT_EQ(inferred.layers_per_block, c.layers_per_block);
  EXPECT_EQ(inferred.cross_attention_dim, c.cross_attention_dim);
  EXPECT_EQ(inferred.use_linear_projection, c.use_linear_projection);
  // No original config: SDXL's own size embedding width (256) and 64-wide heads.
  const auto bare = UNetConfig::infer(sdxl_files().unet.tensors);
  EXPECT_EQ(bare.addition_time_embed_dim, 256);
  EXPECT_EQ(bare.sample_size, 128);
}

TEST_F(Sdxl, UNetConfigRejectsOtherAddedEmbeddings) {
  auto config = sdxl_files().unet.config;
  config["addition_embed_type"] = "text_image";
  EXPECT_THROW(UNetConfig::from_json(config), Error);
  config = sdxl_files().unet.config;
  config["class_embed_type"] = "projection";
  EXPECT_THROW(UNetConfig::from_json(config), Error);
  config = sdxl_files().unet.config;
  config.erase("addition_time_embed_dim");
  EXPECT_THROW(UNetConfig::from_json(config), Error);
}

TEST_F(Sdxl, TextEncoderStates) {
  auto te1 = build<ClipTextModel, TextEncoderConfig>(sdxl_files().text_encoder);
  auto te2 = build<ClipTextModel, TextEncoderConfig>(sdxl_files().text_encoder_2);
  EXPECT_FALSE(te1->text_projection);
  ASSERT_TRUE(te2->text_projection);
  const auto prompts = manifest().at("text_encoder");
  ASSERT_FALSE(prompts.empty());
  for (const auto& prompt : prompts) {
    const auto ids1 = ids_of(prompt.at("input_ids"));
    const auto ids2 = ids_of(prompt.at("input_ids_2"));
    const auto out1 = te1->forward(ids1);
    const auto out2 = te2->forward(ids2);
    const auto penultimate1 = te1->hidden_state(out1, 1);
    const auto penultimate2 = te2->hidden_state(out2, 1);
    const double errors[] = {
        relative_max_error(out1.last_hidden_state, ref(prompt.at("te1_last_hidden_state"))),
        relative_max_error(penultimate1, ref(prompt.at("te1_penultimate"))),
        relative_max_error(te1->pooled(ids1, out1), ref(prompt.at("te1_pooled"))),
        relative_max_error(out2.last_hidden_state, ref(prompt.at("te2_last_hidden_state"))),
        relative_max_error(penultimate2, ref(prompt.at("te2_penultimate"))),
        relative_max_error(te2->pooled(ids2, out2), ref(prompt.at("te2_text_embeds"))),
        // What the pipeline conditions on: both penultimate states side by side, and te2's pooled one.
        relative_max_error(at::cat({penultimate1, penultimate2}, -1), ref(prompt.at("prompt_embeds"))),
        relative_max_error(te2->pooled(ids2, out2), ref(prompt.at("pooled_prompt_embeds"))),
    };
    const char* names[] = {"te1 last",     "te1 penultimate", "te1 pooled",    "te2 last",
                           "te2 penultimate", "te2 text_embeds", "prompt_embeds", "pooled_prompt_embeds"};
    for (size_t i = 0; i < std::size(errors); ++i) {
      EXPECT_LT(errors[i], kComponentTolerance) << names[i] << ", prompt " << prompt.at("prompt");
      std::printf("[tiny-sdxl] '%s' %s: %.2e\n", prompt.at("prompt").get<std::string>().c_str(), names[i], errors[i]);
    }
  }
}

TEST_F(Sdxl, HiddenStateIndexing) {
  auto te1 = build<ClipTextModel, TextEncoderConfig>(sdxl_files().text_encoder);
  const auto out = te1->forward(ids_of(manifest().at("text_encoder")[0].at("input_ids")));
  EXPECT_TRUE(te1->hidden_state(out, 0).equal(out.hidden_states.back()));
  EXPECT_TRUE(te1->hidden_state(out, 5).equal(out.hidden_states.front()));
  EXPECT_THROW(te1->hidden_state(out, 6), Error);
  EXPECT_THROW(te1->hidden_state(out, -1), Error);
}

TEST_F(Sdxl, PooledAtFirstEosTokenWhenConfigured) {
  auto config = sdxl_files().text_encoder_2.config;
  config["eos_token_id"] = 49407;
  ClipTextModel te2(TextEncoderConfig::from_json(config));
  load_weights(*te2, sdxl_files().text_encoder_2.tensors,
               {"text_encoder_2", {}, ClipTextModelImpl::optional_tensors()});
  te2->eval();
  const auto prompt = manifest().at("text_encoder")[0];
  // The fixture's te2 pads with 0, so its first 49407 is also the highest id: the same pooled state.
  const auto ids = ids_of(prompt.at("input_ids_2"));
  const double error = relative_max_error(te2->pooled(ids, te2->forward(ids)), ref(prompt.at("te2_text_embeds")));
  EXPECT_LT(error, kComponentTolerance);
  const auto no_eos = at::zeros({1, 77}, at::kLong);
  EXPECT_THROW(te2->pooled(no_eos, te2->forward(no_eos)), Error);
}

TEST_F(Sdxl, UNetEvaluationWithAddedConditioning) {
  auto unet = build<UNet2DConditionModel, UNetConfig>(sdxl_files().unet);
  const auto evaluations = manifest().at("unet");
  ASSERT_FALSE(evaluations.empty());
  for (const auto& e : evaluations) {
    const auto latent = ref(e.at("latent"));
    const auto context = ref(e.at("encoder_hidden_states"));
    AddedConditioning added{ref(e.at("text_embeds")), ref(e.at("time_ids"))};
    EXPECT_TRUE(added.time_ids.equal(
        at::tensor(e.at("time_ids_values").get<std::vector<float>>()).unsqueeze(0)));
    const auto out = unet->forward(latent, at::tensor({e.at("timestep").get<double>()}), context, &added);
    const double error = relative_max_error(out, ref(e.at("output")));
    std::printf("[tiny-sdxl] unet t=%d with text_time conditioning: %.2e\n", e.at("timestep").get<int>(), error);
    EXPECT_LT(error, kComponentTolerance);
    // The added conditioning matters: other sizes give another prediction.
    AddedConditioning other{added.text_embeds, at::tensor({64.f, 64.f, 0.f, 0.f, 64.f, 64.f}).unsqueeze(0)};
    const auto moved = unet->forward(latent, at::tensor({e.at("timestep").get<double>()}), context, &other);
    EXPECT_GT(relative_max_error(moved, ref(e.at("output"))), 1e-3);
  }
}

// bf16 weights and activations, with the added conditioning in float32 as the text encoders give it:
// cast like the timestep embedding, so the whole step stays bf16. Tolerance: bf16's 8-bit mantissa.
TEST_F(Sdxl, UNetBf16WithFloatConditioning) {
  if (!bf16_supported()) GTEST_SKIP() << "bf16 is refused below CPU class avx512 (models/kernel_options.h)";
  UNet2DConditionModel unet(nullptr);
  {
    DefaultDtype bf16(at::kBFloat16);
    unet = UNet2DConditionModel(UNetConfig::from_json(sdxl_files().unet.config));
  }
  load_weights(*unet, sdxl_files().unet.tensors, {"unet", {}, {}});
  unet->eval();
  const auto e = manifest().at("unet")[0];
  AddedConditioning added{ref(e.at("text_embeds")), ref(e.at("time_ids"))};
  const auto out = unet->forward(ref(e.at("latent")).to(at::kBFloat16), at::tensor({e.at("timestep").get<double>()}),
                                 ref(e.at("encoder_hidden_states")).to(at::kBFloat16), &added);
  EXPECT_EQ(out.scalar_type(), at::kBFloat16);
  const double error = relative_max_error(out, ref(e.at("output")));
  std::printf("[tiny-sdxl] unet bf16 t=%d: %.2e\n", e.at("timestep").get<int>(), error);
  EXPECT_LT(error, 3e-2);
}

TEST_F(Sdxl, UNetBroadcastsOneRowOfAddedConditioning) {
  auto unet = build<UNet2DConditionModel, UNetConfig>(sdxl_files().unet);
  const auto e = manifest().at("unet")[0];
  const auto latent = ref(e.at("latent"));
  const auto context = ref(e.at("encoder_hidden_states"));
  AddedConditioning one{ref(e.at("text_embeds")), ref(e.at("time_ids"))};
  AddedConditioning two{one.text_embeds.repeat({2, 1}), one.time_ids.repeat({2, 1})};
  const auto t = at::tensor({e.at("timestep").get<double>()});
  const auto a = unet->forward(latent.repeat({2, 1, 1, 1}), t, context.repeat({2, 1, 1}), &one);
  const auto b = unet->forward(latent.repeat({2, 1, 1, 1}), t, context.repeat({2, 1, 1}), &two);
  EXPECT_LT(relative_max_error(a, b), 1e-6);
  EXPECT_LT(relative_max_error(a[1].unsqueeze(0), ref(e.at("output"))), kComponentTolerance);
}

TEST_F(Sdxl, UNetNamesMissingOrMisshapenConditioning) {
  auto unet = build<UNet2DConditionModel, UNetConfig>(sdxl_files().unet);
  const auto latent = at::zeros({1, 4, 8, 8});
  const auto context = at::zeros({1, 77, 64});
  const auto t = at::tensor({500.0});
  const auto message = [&](const AddedConditioning* added) -> std::string {
    try {
      unet->forward(latent, t, context, added);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(message(nullptr).find("'text_embeds' (the pooled text embedding) is missing"), std::string::npos)
      << message(nullptr);
  AddedConditioning no_time{at::zeros({1, 32}), at::Tensor()};
  EXPECT_NE(message(&no_time).find("'time_ids'"), std::string::npos) << message(&no_time);
  AddedConditioning wide{at::zeros({1, 40}), at::zeros({1, 6})};
  EXPECT_NE(message(&wide).find("40 + 6 x 8 = 88 inputs, add_embedding takes 80"), std::string::npos)
      << message(&wide);
  AddedConditioning batch3{at::zeros({3, 32}), at::zeros({1, 6})};
  EXPECT_NE(message(&batch3).find("'text_embeds' has shape [3, 32], expected [1, n]"), std::string::npos)
      << message(&batch3);
}

TEST_F(Sdxl, VaeDecodeAndEncode) {
  auto vae = build<AutoencoderKL, VaeConfig>(sdxl_files().vae);
  EXPECT_DOUBLE_EQ(vae->config.scaling_factor, 0.13025);
  const auto decode = manifest().at("vae").at("decode");
  const double e_decode = relative_max_error(vae->decode(ref(decode.at("input_latent"))), ref(decode.at("output")));
  const auto encode = manifest().at("vae").at("encode");
  const auto dist = vae->encode(ref(encode.at("input_image")));
  const double e_mean = relative_max_error(dist.mean, ref(encode.at("mean")));
  const double e_logvar = relative_max_error(dist.logvar, ref(encode.at("logvar")));
  const double e_std = relative_max_error(dist.std, ref(encode.at("std")));
  std::printf("[tiny-sdxl] vae decode %.2e; encode mean %.2e, logvar %.2e, std %.2e\n", e_decode, e_mean, e_logvar,
              e_std);
  EXPECT_LT(e_decode, kComponentTolerance);
  EXPECT_LT(e_mean, kComponentTolerance);
  EXPECT_LT(e_logvar, kComponentTolerance);
  EXPECT_LT(e_std, kComponentTolerance);
}

// stabilityai/stable-diffusion-xl-base-1.0, unet/config.json (the fields diffusers reads).
json sdxl_base_unet_config() {
  return json::parse(R"({
    "_class_name": "UNet2DConditionModel", "act_fn": "silu", "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64, "addition_time_embed_dim": 256, "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280], "center_input_sample": false, "class_embed_type": null,
    "class_embeddings_concat": false, "conv_in_kernel": 3, "conv_out_kernel": 3, "cross_attention_dim": 2048,
    "cross_attention_norm": null,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1, "dual_cross_attention": false, "encoder_hid_dim": null, "encoder_hid_dim_type": null,
    "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
    "mid_block_only_cross_attention": null, "mid_block_scale_factor": 1, "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_eps": 1e-05, "norm_num_groups": 32, "num_attention_heads": null, "num_class_embeds": null,
    "only_cross_attention": false, "out_channels": 4, "projection_class_embeddings_input_dim": 2816,
    "resnet_out_scale_factor": 1.0, "resnet_skip_time_act": false, "resnet_time_scale_shift": "default",
    "sample_size": 128, "time_cond_proj_dim": null, "time_embedding_act_fn": null, "time_embedding_dim": null,
    "time_embedding_type": "positional", "timestep_post_act": null, "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], "upcast_attention": null,
    "use_linear_projection": true})");
}

// SDXL base's published sizes: UNet 2,567,463,684; CLIP ViT-L text model 123,060,480; OpenCLIP
// bigG text model with its projection 694,659,840.
TEST(SdxlFullSize, UNetParameterCount) {
  torch::NoGradGuard no_grad;
  const auto config = UNetConfig::from_json(sdxl_base_unet_config());
  EXPECT_EQ(config.num_heads, (std::vector<int>{5, 10, 20}));
  EXPECT_EQ(config.transformer_layers, (std::vector<int>{1, 2, 10}));
  EXPECT_EQ(config.cross_attention, (std::vector<bool>{false, true, true}));
  DefaultDtype bf16(at::kBFloat16);
  UNet2DConditionModel unet(config);
  EXPECT_EQ(parameter_count(*unet), 2567463684);
}

TEST(SdxlFullSize, TextEncoderParameterCounts) {
  torch::NoGradGuard no_grad;
  DefaultDtype bf16(at::kBFloat16);
  // text_encoder/config.json and text_encoder_2/config.json of SDXL base.
  const auto te1 = TextEncoderConfig::from_json(json::parse(R"({
    "architectures": ["CLIPTextModel"], "hidden_act": "quick_gelu", "hidden_size": 768, "intermediate_size": 3072,
    "num_attention_heads": 12, "num_hidden_layers": 12, "projection_dim": 768, "eos_token_id": 2})"));
  const auto te2 = TextEncoderConfig::from_json(json::parse(R"({
    "architectures": ["CLIPTextModelWithProjection"], "hidden_act": "gelu", "hidden_size": 1280,
    "intermediate_size": 5120, "num_attention_heads": 20, "num_hidden_layers": 32, "projection_dim": 1280,
    "eos_token_id": 2})"));
  EXPECT_EQ(parameter_count(*ClipTextModel(te1)), 123060480);
  EXPECT_EQ(parameter_count(*ClipTextModel(te2)), 694659840);
}

}  // namespace
}  // namespace diffuse::models
