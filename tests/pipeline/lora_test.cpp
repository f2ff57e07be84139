// LoRAs on a loaded model against diffusers + PEFT (../shared/fixtures/lora): the merged weights
// of three layers, the text encoder's output and one UNet step at each recorded scale, and whole
// runs asked for by a prompt tag or by the request, put on and taken off one loaded model.
#include <gtest/gtest.h>

#include <fstream>

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickler.h>

#include "io/safetensors_writer.h"
#include "io/tensor_file.h"
#include "models/conv.h"
#include "models/linear.h"
#include "pipeline/generation.h"
#include "pipeline/golden_run.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace diffuse::pipeline {
namespace {

namespace fs = std::filesystem;
using test::fixtures_dir;
using test::read_reference;
using test::relative_max_error;

fs::path lora_dir() { return fixtures_dir() / "lora"; }
fs::path kohya_file() { return lora_dir() / "tiny-sd1-lora.safetensors"; }
fs::path diffusers_file() { return lora_dir() / "tiny-sd1-lora.diffusers.safetensors"; }
const nlohmann::json& manifest() {
  static const auto json = test::read_json(lora_dir() / "manifest.json");
  return json;
}

StableDiffusionModel& tiny_sd1(bool single_file = false) {
  static std::map<bool, std::unique_ptr<StableDiffusionModel>> models;
  auto& slot = models[single_file];
  if (!slot) {
    const auto dir = fixtures_dir() / "tiny-sd1";
    LoadOptions options;
    if (single_file) options.tokenizer = test::shared_dir() / "clip";
    slot = std::make_unique<StableDiffusionModel>(
        StableDiffusionModel::load(single_file ? dir / "tiny-sd1.safetensors" : dir / "diffusers", options));
  }
  return *slot;
}

std::string underscored(std::string name) {
  for (auto& c : name) c = c == '.' ? '_' : c;
  return name;
}

// The module kohya's `lora_unet_...` / `lora_te_...` name stands for.
std::shared_ptr<torch::nn::Module> layer_named(StableDiffusionModel& model, const std::string& kohya) {
  const bool unet = kohya.rfind("lora_unet_", 0) == 0;
  const auto wanted = kohya.substr(unet ? 10 : 8);
  torch::nn::Module& root = unet ? static_cast<torch::nn::Module&>(*model.unet) : *model.text_encoder;
  for (const auto& item : root.named_modules("", false)) {
    if (underscored(item.key()) == wanted) return item.value();
  }
  return nullptr;
}

// The weight a layer acts with, LoRA updates included: its output for the identity, less the bias.
at::Tensor effective_weight(torch::nn::Module& layer) {
  torch::NoGradGuard no_grad;
  if (auto* linear = dynamic_cast<models::LinearImpl*>(&layer)) {
    const auto in = linear->options.in_features();
    const auto out = linear->forward(at::eye(in));
    return (linear->bias.defined() ? out - linear->bias : out).t();
  }
  auto& conv = dynamic_cast<models::Conv2dImpl&>(layer);
  const auto in = conv.options.in_channels();
  auto out = conv.forward(at::eye(in).reshape({in, in, 1, 1})).flatten(1);
  if (conv.bias.defined()) out = out - conv.bias;
  return out.t().reshape({-1, in, 1, 1});
}

class Lora : public ::testing::Test {
 protected:
  void TearDown() override { tiny_sd1().set_loras({}); }
};

TEST_F(Lora, LayersActWithTheMergedWeightsAtEachScale) {
  auto& model = tiny_sd1();
  const auto refs = lora_dir() / "refs";
  for (const auto& merge : manifest().at("merged_weights")) {
    const auto name = merge.at("layer").get<std::string>();
    const auto layer = layer_named(model, name);
    ASSERT_TRUE(layer) << name;
    model.set_loras({});
    const auto base = read_reference(refs / merge.at("base_weight"));
    EXPECT_LT(relative_max_error(effective_weight(*layer), base), 1e-6) << name;
    for (const auto& [scale, file] : merge.at("merged").items()) {
      const double s = std::stod(scale);
      model.set_loras({{kohya_file(), s, s}});
      const double error = relative_max_error(effective_weight(*layer), read_reference(refs / file));
      std::printf("%s at %s: %.2e\n", name.c_str(), scale.c_str(), error);
      EXPECT_LT(error, 1e-6) << name << " at " << scale;
    }
  }
}

TEST_F(Lora, TextEncoderMatchesPeftAtEachScaleAndIsItselfWithout) {
  auto& model = tiny_sd1();
  const auto refs = lora_dir() / "refs";
  for (const auto& file : {kohya_file(), diffusers_file()}) {
    for (const auto& e : manifest().at("text_encoder")) {
      const double s = e.at("lora_scale").get<double>();
      model.set_loras({{file, s, s}});
      const auto prompt = e.at("prompt").get<std::string>();
      EXPECT_EQ(model.tokenizer.encode_padded(prompt), e.at("input_ids").get<std::vector<int64_t>>());
      const double error = relative_max_error(model.encode(prompt).context,
                                              read_reference(refs / e.at("last_hidden_state")));
      std::printf("%s '%s' at %.1f: %.2e\n", file.filename().c_str(), prompt.c_str(), s, error);
      EXPECT_LT(error, 1e-5) << file << " " << prompt << " at " << s;
    }
  }
  model.set_loras({});
  const auto plain = read_reference(fixtures_dir() / "tiny-sd1/refs/text0_last_hidden_state.bin");
  EXPECT_LT(relative_max_error(model.encode("a photo of a cat").context, plain), 1e-5);
}

TEST_F(Lora, UnetStepMatchesPeftAtEachScale) {
  auto& model = tiny_sd1();
  const auto refs = lora_dir() / "refs";
  torch::NoGradGuard no_grad;
  for (const auto& file : {kohya_file(), diffusers_file()}) {
    for (const auto& e : manifest().at("unet")) {
      const double s = e.at("lora_scale").get<double>();
      const auto latent = read_reference(refs / e.at("latent"));
      const auto context = read_reference(refs / e.at("encoder_hidden_states"));
      const auto timestep = at::tensor({e.at("timestep").get<double>()});
      model.set_loras({{file, s, s}});
      const auto out = model.unet->forward(latent, timestep, context);
      const double error = relative_max_error(out, read_reference(refs / e.at("output")));
      std::printf("%s UNet at %.1f: %.2e\n", file.filename().c_str(), s, error);
      EXPECT_LT(error, 1e-5) << file << " at " << s;
      model.set_loras({});
      const auto without = model.unet->forward(latent, timestep, context);
      EXPECT_LT(relative_max_error(without, read_reference(refs / e.at("output_without_lora"))), 1e-5);
    }
  }
}

TEST_F(Lora, TextEncoderAndUnetWeightsApartOnlyChangeTheirPart) {
  auto& model = tiny_sd1();
  const auto refs = lora_dir() / "refs";
  const auto& unet = manifest().at("unet").at(0);
  const auto latent = read_reference(refs / unet.at("latent"));
  const auto context = read_reference(refs / unet.at("encoder_hidden_states"));
  const auto timestep = at::tensor({unet.at("timestep").get<double>()});
  torch::NoGradGuard no_grad;
  model.set_loras({{kohya_file(), 0.0, 1.0}});  // <lora:tiny-sd1-lora:0:1>
  const auto plain = read_reference(fixtures_dir() / "tiny-sd1/refs/text0_last_hidden_state.bin");
  EXPECT_LT(relative_max_error(model.encode("a photo of a cat").context, plain), 1e-5);
  EXPECT_LT(relative_max_error(model.unet->forward(latent, timestep, context), read_reference(refs / unet.at("output"))),
            1e-5);
  model.set_loras({{kohya_file(), 1.0, 0.0}});
  EXPECT_LT(relative_max_error(model.unet->forward(latent, timestep, context),
                               read_reference(refs / unet.at("output_without_lora"))),
            1e-5);
}

TEST_F(Lora, TwoLorasAddUp) {
  auto& model = tiny_sd1();
  const auto name = manifest().at("merged_weights").at(1).at("layer").get<std::string>();
  const auto layer = layer_named(model, name);
  ASSERT_TRUE(layer);
  model.set_loras({{kohya_file(), 1.0, 1.0}});
  const auto one = effective_weight(*layer);
  model.set_loras({});
  const auto base = effective_weight(*layer);
  model.set_loras({{kohya_file(), 0.6, 0.6}, {diffusers_file(), 0.4, 0.4}});
  EXPECT_EQ(model.loras().size(), 2u);
  EXPECT_LT(relative_max_error(effective_weight(*layer) - base, one - base), 1e-5);
}

struct RunCase {
  std::string run_id;
  bool single_file;
  bool by_tag;  // the prompt's <lora:...> tag (else GenerationRequest::loras)
};

void PrintTo(const RunCase& c, std::ostream* out) {
  *out << c.run_id << (c.single_file ? " single-file" : " diffusers") << (c.by_tag ? " tag" : " request");
}

class LoraRuns : public ::testing::TestWithParam<RunCase> {};

// The runs in the manifest's order, lora and nolora ones in turn on one model: a LoRA comes off as
// exactly as it goes on.
TEST_P(LoraRuns, MatchDiffusersFromSeed) {
  const auto& param = GetParam();
  nlohmann::json run;
  for (const auto& candidate : manifest().at("runs")) {
    if (candidate.at("id") == param.run_id) run = candidate;
  }
  ASSERT_FALSE(run.is_null());
  const auto refs = lora_dir() / "refs";
  auto request = request_of(run, refs);
  for (const auto& lora : run.at("lora")) {
    const double s = lora.at("scale").get<double>();
    if (param.by_tag) {
      request.prompt = run.at("prompt_a1111").get<std::string>();
      request.lora_dirs = {lora_dir()};
    } else {
      request.loras.push_back({(lora_dir() / lora.at("file").get<std::string>()).string(), s, s});
    }
  }
  auto& model = tiny_sd1(param.single_file);
  const auto resolved = resolve(request, model);
  ASSERT_EQ(resolved.loras.size(), run.at("lora").size());
  EXPECT_EQ(resolved.prompt, request.prompt);  // the PNG's parameters keep the tag
  const auto result = generate_image(model, resolved);
  EXPECT_EQ(model.loras(), resolved.loras);
  const auto compared = compare_with_reference(result.latents, result.pixels, run, refs);
  std::printf("%s: latents %.2e, image max %d mean %.3f levels\n", param.run_id.c_str(), compared.latent_error,
              compared.max_levels, compared.mean_levels);
  EXPECT_LT(compared.latent_error, kLatentTolerance);
  EXPECT_LE(compared.max_levels, kImageLevels);
  EXPECT_LT(compared.mean_levels, kImageMeanLevels);
}

std::vector<RunCase> lora_runs() {
  std::vector<RunCase> cases;
  for (const auto& run : manifest().at("runs")) {
    const auto id = run.at("id").get<std::string>();
    cases.push_back({id, false, true});
    cases.push_back({id, true, false});
  }
  return cases;
}

std::string run_name(const ::testing::TestParamInfo<RunCase>& info) {
  auto name = info.param.run_id + (info.param.single_file ? "_single" : "_diffusers") +
              (info.param.by_tag ? "_tag" : "_request");
  for (auto& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LoraRuns, ::testing::ValuesIn(lora_runs()), run_name);

class LoraFiles : public test::TempDirTest {
 protected:
  std::string error_of(const std::vector<LoraUse>& loras) {
    try {
      tiny_sd1().set_loras(loras);
    } catch (const InvalidParameter& error) {
      EXPECT_EQ(error.parameter(), "lora");
      return error.what();
    }
    return "no error";
  }
  void TearDown() override {
    tiny_sd1().set_loras({});
    TempDirTest::TearDown();
  }
};

TEST_F(LoraFiles, ModulesTheModelLacksAreNamedAndNothingStaysOn) {
  const auto path = dir_ / "other-model.safetensors";
  io::write_safetensors(path, {{"lora_unet_down_blocks_7_resnets_0_conv1.lora_down.weight", at::ones({4, 8, 3, 3})},
                               {"lora_unet_down_blocks_7_resnets_0_conv1.lora_up.weight", at::ones({8, 4, 1, 1})},
                               {"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", at::ones({4, 32})},
                               {"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight", at::ones({37, 4})}});
  const auto plain = tiny_sd1().encode("a photo of a cat").context;
  const auto error = error_of({{kohya_file(), 1, 1}, {path, 1, 1}});
  EXPECT_NE(error.find("other-model.safetensors: 1 of its 2 modules match no layer of this model"), std::string::npos)
      << error;
  EXPECT_NE(error.find("lora_unet_down_blocks_7_resnets_0_conv1"), std::string::npos) << error;
  EXPECT_TRUE(tiny_sd1().loras().empty());
  EXPECT_TRUE(tiny_sd1().encode("a photo of a cat").context.equal(plain)) << "a refused LoRA must leave nothing on";
}

TEST_F(LoraFiles, UpdatesOfTheWrongShapeAreNamed) {
  const auto path = dir_ / "misfit.safetensors";
  io::write_safetensors(path, {{"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", at::ones({4, 48})},
                               {"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight", at::ones({37, 4})}});
  const auto error = error_of({{path, 1, 1}});
  EXPECT_NE(error.find("1 modules do not fit their layers: lora_te_text_model_encoder_layers_0_mlp_fc1"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("does not fit a linear layer of 32 -> 37 features"), std::string::npos) << error;
}

TEST_F(LoraFiles, UnreadableFilesAreNamed) {
  const auto path = dir_ / "broken.safetensors";
  std::ofstream(path) << "not a safetensors file";
  const auto error = error_of({{path, 1, 1}});
  EXPECT_NE(error.find("broken.safetensors"), std::string::npos) << error;
}

// What Python's torch.save writes for a dict of tensors: a zip of data.pkl and one record per storage
// (torch::pickle_save would tag the dict with torch.jit._pickle.restore_type_tag, which Python never does).
void write_as_torch_save(const io::TensorFile& source, const fs::path& path) {
  c10::impl::GenericDict tensors(c10::StringType::get(), c10::TensorType::get());
  for (const auto& info : source.tensors()) tensors.insert(info.name, source.tensor(info.name));
  std::vector<char> pickle;
  torch::jit::Pickler pickler([&](const char* bytes, size_t size) { pickle.insert(pickle.end(), bytes, bytes + size); },
                              nullptr, nullptr, nullptr, nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(tensors);
  pickler.stop();
  caffe2::serialize::PyTorchStreamWriter writer(path.string());
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  for (size_t i = 0; i < pickler.tensorData().size(); ++i) {
    const auto storage = torch::jit::getWriteableTensorData(pickler.tensorData()[i]);
    writer.writeRecord("data/" + std::to_string(i), storage.data(), storage.sizeInBytes());
  }
  writer.writeEndOfFile();
}

// Older LoRAs are torch pickles: a tag finds <name>.pt (or .ckpt) in a LoRA folder's subfolder, and the
// restricted reader gives the same update as the safetensors file it was written from.
TEST_F(LoraFiles, APtFileIsFoundByItsTagAndActsAsTheSafetensors) {
  fs::create_directories(dir_ / "older");
  const auto pt = dir_ / "older" / "tiny-old.pt";
  write_as_torch_save(io::TensorFile::open(kohya_file()), pt);

  GenerationRequest request;
  request.prompt = "a cat <lora:tiny-old:0.6>";
  request.lora_dirs = {dir_};
  const auto resolved = validate(request);
  const std::vector<LoraUse> expected = {{pt, 0.6, 0.6}};
  EXPECT_EQ(resolved.loras, expected);

  auto& model = tiny_sd1();
  const auto name = manifest().at("merged_weights").at(0).at("layer").get<std::string>();
  const auto layer = layer_named(model, name);
  ASSERT_TRUE(layer) << name;
  model.set_loras({{kohya_file(), 0.6, 0.6}});
  const auto from_safetensors = effective_weight(*layer);
  model.set_loras(resolved.loras);
  EXPECT_TRUE(at::equal(effective_weight(*layer), from_safetensors)) << name;
  model.set_loras({});
}

TEST(LoraRequest, TagsAreTakenOutOfThePromptAndFound) {
  GenerationRequest request;
  request.prompt = "a cat <lora:tiny-sd1-lora:0.6>, <lora:tiny-sd1-lora.diffusers:0.5:0.25> sitting";
  request.negative_prompt = "blurry <lora:tiny-sd1-lora:te=0.1:unet=0.2>";
  request.lora_dirs = {fixtures_dir(), lora_dir()};
  const auto resolved = validate(request);
  EXPECT_EQ(resolved.prompt, request.prompt);
  EXPECT_EQ(resolved.prompt_text, "a cat ,  sitting");
  EXPECT_EQ(resolved.negative_text, "blurry ");
  const std::vector<LoraUse> expected = {
      {kohya_file(), 0.6, 0.6}, {diffusers_file(), 0.5, 0.25}, {kohya_file(), 0.1, 0.2}};
  EXPECT_EQ(resolved.loras, expected);
}

TEST(LoraRequest, RequestLorasComeFirstAndTagDefaultsAreAutomatic1111s) {
  GenerationRequest request;
  request.prompt = "<lora:tiny-sd1-lora> <lora:tiny-sd1-lora:0.7> <lora:tiny-sd1-lora:unet=0.3>";
  request.loras = {{diffusers_file().string(), 0.5, 0.5}};
  request.lora_dirs = {lora_dir()};
  const auto resolved = validate(request);
  const std::vector<LoraUse> expected = {
      {diffusers_file(), 0.5, 0.5}, {kohya_file(), 1, 1}, {kohya_file(), 0.7, 0.7}, {kohya_file(), 1, 0.3}};
  EXPECT_EQ(resolved.loras, expected);
}

TEST(LoraRequest, WithoutThePromptLanguageTagsAreWords) {
  GenerationRequest request;
  request.prompt = "a cat <lora:absent:1>";
  request.prompt_syntax = false;
  const auto resolved = validate(request);
  EXPECT_EQ(resolved.prompt_text, request.prompt);
  EXPECT_TRUE(resolved.loras.empty());
}

std::string request_error(const GenerationRequest& request, const std::string& parameter) {
  try {
    validate(request);
  } catch (const InvalidParameter& error) {
    EXPECT_EQ(error.parameter(), parameter) << error.what();
    return error.what();
  }
  return "no error";
}

TEST(LoraRequest, BadTagsAndMissingFilesAreRefusedByName) {
  GenerationRequest request;
  request.lora_dirs = {lora_dir()};
  request.prompt = "<lora:absent:1>";
  auto error = request_error(request, "lora");
  EXPECT_NE(error.find("no LoRA file 'absent' and no absent.safetensors (.ckpt, .pt) in " + lora_dir().string()), std::string::npos)
      << error;
  request.prompt = "<lora:tiny-sd1-lora:strong>";
  error = request_error(request, "prompt");
  EXPECT_NE(error.find("<lora:tiny-sd1-lora:strong>: 'strong' is not a number"), std::string::npos) << error;
  request.prompt = "<hypernet:foo:1>";
  error = request_error(request, "prompt");
  EXPECT_NE(error.find("only <lora:...> extra networks are supported"), std::string::npos) << error;
  request.prompt = "<lora:tiny-sd1-lora:dyn=4>";
  error = request_error(request, "prompt");
  EXPECT_NE(error.find("unknown argument 'dyn'"), std::string::npos) << error;
  request.prompt = "";
  request.negative_prompt = "<lora:tiny-sd1-lora:1:2:3>";
  error = request_error(request, "negative_prompt");
  EXPECT_NE(error.find("at most a name and two weights"), std::string::npos) << error;
}

}  // namespace
}  // namespace diffuse::pipeline
