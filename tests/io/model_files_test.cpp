#include "support/temp_dir.h"
#include "io/model_files.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <limits>
#include <set>

#include "support/fixtures.h"
#include "util/error.h"
#include "util/json.h"

namespace diffuse::io {
namespace {

namespace fs = std::filesystem;

using test::tensor_names;

std::vector<std::string> difference(const std::set<std::string>& a, const std::set<std::string>& b) {
  std::vector<std::string> result;
  for (const auto& name : a) {
    if (!b.count(name)) result.push_back(name);
  }
  return result;
}

// The single file, mapped to diffusers names, holds exactly the diffusers folder's tensors,
// bit for bit (the fixtures were made so the conversion is exact). Loaded as F16, the file's
// own type, so nothing is converted on either side.
void expect_same_weights(const ComponentWeights& single, const ComponentWeights& diffusers, const char* component) {
  SCOPED_TRACE(component);
  const auto single_names = tensor_names(single.tensors), diffusers_names = tensor_names(diffusers.tensors);
  EXPECT_EQ(difference(single_names, diffusers_names), std::vector<std::string>{}) << "only in the single file";
  EXPECT_EQ(difference(diffusers_names, single_names), std::vector<std::string>{}) << "only in the diffusers folder";
  for (const auto& [name, tensor] : single.tensors) {
    const auto other = diffusers.tensors.find(name);
    if (other == diffusers.tensors.end()) continue;
    EXPECT_EQ(tensor.scalar_type(), other->second.scalar_type()) << name;
    EXPECT_EQ(tensor.sizes(), other->second.sizes()) << name;
    EXPECT_TRUE(tensor.sizes() == other->second.sizes() && at::equal(tensor, other->second)) << name;
  }
}

class ModelFilesTest : public test::TempDirTest {
 protected:

  // The Error from loading `path`, which must name `named`.
  static std::string load_error(const fs::path& path, const std::string& named) {
    try {
      load_model_files(path);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(named), std::string::npos) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "no error for " << path;
    return "";
  }

};

TEST_F(ModelFilesTest, Sd1SingleFileMatchesDiffusersFolder) {
  const fs::path root = test::fixtures_dir() / "tiny-sd1";
  const auto single = load_model_files(root / "tiny-sd1.safetensors", at::kHalf);
  const auto diffusers = load_model_files(root / "diffusers", at::kHalf);
  EXPECT_EQ(single.layout, ModelFiles::Layout::SingleFile);
  EXPECT_EQ(diffusers.layout, ModelFiles::Layout::Diffusers);
  EXPECT_EQ(single.family, LdmFamily::Sd1);
  EXPECT_EQ(diffusers.family, LdmFamily::Sd1);
  expect_same_weights(single.unet, diffusers.unet, "unet");
  expect_same_weights(single.vae, diffusers.vae, "vae");
  expect_same_weights(single.text_encoder, diffusers.text_encoder, "text_encoder");
  // 513 tensors in the file; only the position_ids buffer is left out.
  EXPECT_EQ(single.unet.tensors.size() + single.vae.tensors.size() + single.text_encoder.tensors.size(), 512u);
  EXPECT_EQ(single.ignored, std::vector<std::string>{"cond_stage_model.transformer.text_model.embeddings.position_ids"});
}

TEST_F(ModelFilesTest, Sd2SingleFileMatchesDiffusersFolder) {
  const fs::path root = test::fixtures_dir() / "tiny-sd2v";
  const auto single = load_model_files(root / "tiny-sd2v.safetensors", at::kHalf);
  const auto diffusers = load_model_files(root / "diffusers", at::kHalf);
  EXPECT_EQ(single.family, LdmFamily::Sd2);
  EXPECT_EQ(diffusers.family, LdmFamily::Sd2);
  expect_same_weights(single.unet, diffusers.unet, "unet");
  expect_same_weights(single.vae, diffusers.vae, "vae");
  expect_same_weights(single.text_encoder, diffusers.text_encoder, "text_encoder");
  // The file has one OpenCLIP block more than diffusers keeps (SD 2.x conditions on the
  // penultimate layer): exactly that block is left out.
  std::set<std::string> ignored(single.ignored.begin(), single.ignored.end());
  EXPECT_EQ(ignored.size(), 12u);
  for (const auto& key : ignored) {
    EXPECT_EQ(key.rfind("cond_stage_model.model.transformer.resblocks.5.", 0), 0u) << key;
  }
  EXPECT_TRUE(single.text_encoder.tensors.count("text_model.encoder.layers.4.self_attn.v_proj.bias"));
}

TEST_F(ModelFilesTest, InpaintingSingleFileMatchesDiffusersFolder) {
  const fs::path root = test::fixtures_dir() / "tiny-sd1-inpaint";
  const auto single = load_model_files(root / "tiny-sd1-inpaint.safetensors", at::kHalf);
  const auto diffusers = load_model_files(root / "diffusers", at::kHalf);
  expect_same_weights(single.unet, diffusers.unet, "unet");
  expect_same_weights(single.vae, diffusers.vae, "vae");
  expect_same_weights(single.text_encoder, diffusers.text_encoder, "text_encoder");
  EXPECT_EQ(single.unet.tensors.at("conv_in.weight").size(1), 9);  // latents + mask + masked image
}

TEST_F(ModelFilesTest, ConvertsFloatingTensorsToTheRequestedType) {
  const fs::path root = test::fixtures_dir() / "tiny-sd1";
  const auto half = load_model_files(root / "tiny-sd1.safetensors", at::kHalf);
  const auto single = load_model_files(root / "tiny-sd1.safetensors");
  const auto diffusers = load_model_files(root / "diffusers");
  for (const auto* model : {&single, &diffusers}) {
    for (const auto* component : {&model->unet, &model->vae, &model->text_encoder}) {
      for (const auto& [name, tensor] : component->tensors) EXPECT_EQ(tensor.scalar_type(), at::kFloat) << name;
    }
  }
  const auto& attention = "decoder.mid_block.attentions.0.to_q.weight";
  EXPECT_TRUE(at::equal(single.vae.tensors.at(attention), half.vae.tensors.at(attention).to(at::kFloat)));
  EXPECT_EQ(single.vae.tensors.at(attention).dim(), 2);
}

TEST_F(ModelFilesTest, ReadsConfigsBesideTheWeights) {
  const fs::path root = test::fixtures_dir() / "tiny-sd1";
  const auto diffusers = load_model_files(root / "diffusers");
  EXPECT_EQ(diffusers.unet.config.at("block_out_channels"), nlohmann::json({32, 64}));
  EXPECT_EQ(diffusers.text_encoder.config.at("hidden_act"), "quick_gelu");
  EXPECT_TRUE(diffusers.scheduler_config.is_object());
  EXPECT_FALSE(diffusers.original.vae.scale_factor.has_value());
  EXPECT_EQ(diffusers.tokenizer, root / "diffusers" / "tokenizer");
  EXPECT_NE(diffusers.unet.source.find("diffusion_pytorch_model.safetensors"), std::string::npos);

  const auto single = load_model_files(root / "tiny-sd1.safetensors");
  EXPECT_TRUE(single.unet.config.is_null());
  // The original config beside it (ldm_config.json), read into its facts.
  const auto ldm_config = read_json_file(root / "ldm_config.json").at("model").at("params");
  EXPECT_TRUE(single.scheduler_config.is_null());
  EXPECT_EQ(single.original.beta_start, ldm_config.at("linear_start").get<double>());
  EXPECT_EQ(single.original.beta_end, ldm_config.at("linear_end").get<double>());
  EXPECT_EQ(single.original.vae.scale_factor, 0.18215);
  EXPECT_FALSE(single.tokenizer.has_value());
  EXPECT_EQ(single.vae.source, (root / "tiny-sd1.safetensors").string());
}

TEST_F(ModelFilesTest, FindsTokenizerBesideASingleFile) {
  const fs::path checkpoint = dir_ / "model.safetensors";
  fs::create_symlink(test::fixtures_dir() / "tiny-sd1" / "tiny-sd1.safetensors", checkpoint);
  std::ofstream(dir_ / "bpe_simple_vocab_16e6.txt.gz") << "";
  EXPECT_EQ(load_model_files(checkpoint).tokenizer, dir_ / "bpe_simple_vocab_16e6.txt.gz");
  std::ofstream(dir_ / "vocab.json") << "{}";
  std::ofstream(dir_ / "merges.txt") << "";
  EXPECT_EQ(load_model_files(checkpoint).tokenizer, dir_);
  fs::create_directory(dir_ / "tokenizer");
  EXPECT_EQ(load_model_files(checkpoint).tokenizer, dir_ / "tokenizer");
  // "<stem>.json" beside it is the original config only when it looks like one.
  std::ofstream(dir_ / "model.json") << R"({"description": "notes", "scale_factor": 0.5})";
  EXPECT_FALSE(load_model_files(checkpoint).original.vae.scale_factor.has_value());
  std::ofstream(dir_ / "model.json") << R"({"model": {"params": {"scale_factor": 0.5}}})";
  EXPECT_EQ(load_model_files(checkpoint).original.vae.scale_factor, 0.5);
  std::ofstream(dir_ / "model.json") << R"({"model": {"params": {"scale_factor": "big"}}})";
  EXPECT_NE(load_error(checkpoint, "scale_factor").find("original config"), std::string::npos);
  // Nested past the depth guard: copying or walking a million levels would overflow the stack.
  std::ofstream(dir_ / "model.json") << R"({"model": )" << std::string(1000000, '[') << std::string(1000000, ']') << "}";
  EXPECT_FALSE(load_model_files(checkpoint).original.vae.scale_factor.has_value());
}

TEST_F(ModelFilesTest, ErrorsNameThePath) {
  load_error(dir_ / "nothing-here.safetensors", "nothing-here.safetensors");
  EXPECT_NE(load_error(dir_, dir_.string()).find("model_index.json"), std::string::npos);
  std::ofstream(dir_ / "notes.ckpt") << "not a checkpoint either";
  EXPECT_NE(load_error(dir_ / "notes.ckpt", "notes.ckpt").find("not a torch checkpoint"), std::string::npos);
  std::ofstream(dir_ / "notes.safetensors") << "these are not the weights you are looking for";
  EXPECT_NE(load_error(dir_ / "notes.safetensors", "notes.safetensors").find("not a safetensors file"),
            std::string::npos);
}

TEST_F(ModelFilesTest, MissingDiffusersComponentIsNamed) {
  const fs::path source = test::fixtures_dir() / "tiny-sd1" / "diffusers";
  fs::copy_file(source / "model_index.json", dir_ / "model_index.json");
  fs::create_directory_symlink(source / "unet", dir_ / "unet");
  fs::create_directory_symlink(source / "text_encoder", dir_ / "text_encoder");
  EXPECT_NE(load_error(dir_, "vae").find("no vae/ folder"), std::string::npos);

  fs::create_directory(dir_ / "vae");
  fs::copy_file(source / "vae" / "config.json", dir_ / "vae" / "config.json");
  load_error(dir_, (dir_ / "vae").string());  // no weights file
  // A ".fp16" variant is used when it is the only weights file.
  fs::create_symlink(source / "vae" / "diffusion_pytorch_model.safetensors",
                     dir_ / "vae" / "diffusion_pytorch_model.fp16.safetensors");
  EXPECT_NE(load_model_files(dir_).vae.source.find(".fp16.safetensors"), std::string::npos);

  fs::remove(dir_ / "vae" / "config.json");
  load_error(dir_, (dir_ / "vae" / "config.json").string());
}

// The same reader as --scheduler-config: a config with Python's -Infinity (DPMSolver's
// lambda_min_clipped) loads from a folder too.
TEST_F(ModelFilesTest, FolderConfigsMayHoldInfinity) {
  const fs::path source = test::fixtures_dir() / "tiny-sd1" / "diffusers";
  fs::copy_file(source / "model_index.json", dir_ / "model_index.json");
  for (const char* component : {"unet", "vae", "text_encoder", "tokenizer"}) {
    fs::create_directory_symlink(source / component, dir_ / component);
  }
  fs::create_directory(dir_ / "scheduler");
  std::ofstream(dir_ / "scheduler" / "scheduler_config.json")
      << R"({"_class_name": "DPMSolverMultistepScheduler", "beta_schedule": "scaled_linear", "lambda_min_clipped": -Infinity})";
  const auto files = load_model_files(dir_);
  EXPECT_EQ(files.scheduler_config.at("lambda_min_clipped").get<double>(), -std::numeric_limits<double>::infinity());
  EXPECT_FALSE(files.pad_token.has_value());  // the folder's tokenizer config says it
}

TEST_F(ModelFilesTest, SingleFilesComeWithTheirFamilysDefaults) {
  const auto sd1 = load_model_files(test::fixtures_dir() / "tiny-sd1" / "tiny-sd1.safetensors");
  EXPECT_EQ(sd1.pad_token, "<|endoftext|>");
  EXPECT_EQ(sd1.family, LdmFamily::Sd1);
  EXPECT_FALSE(sd1.original.v_prediction);
  EXPECT_FALSE(sd1.original.text_encoder.open_clip);
  const auto sd2 = load_model_files(test::fixtures_dir() / "tiny-sd2v" / "tiny-sd2v.safetensors");
  EXPECT_EQ(sd2.pad_token, "!");
  EXPECT_TRUE(sd2.original.v_prediction);  // ldm_config.json: parameterization v
}

// A released SD 2.x or SDXL file alone: the family's facts that shapes cannot show still hold.
TEST_F(ModelFilesTest, FilesWithoutAConfigGetTheirFamilysFacts) {
  for (const char* model : {"tiny-sd2v", "tiny-sdxl"}) {
    const fs::path checkpoint = dir_ / (std::string(model) + ".safetensors");
    fs::create_symlink(test::fixtures_dir() / model / (std::string(model) + ".safetensors"), checkpoint);
  }
  const auto sd2 = load_model_files(dir_ / "tiny-sd2v.safetensors");
  EXPECT_TRUE(sd2.original.text_encoder.open_clip);
  EXPECT_FALSE(sd2.original.v_prediction);  // without its config, nothing says v
  const auto sdxl = load_model_files(dir_ / "tiny-sdxl.safetensors");
  EXPECT_EQ(sdxl.original.vae.scale_factor, 0.13025);
  EXPECT_TRUE(sdxl.original.text_encoder_2.open_clip);
}

TEST_F(ModelFilesTest, ShardedDiffusersComponent) {
  const fs::path source = test::fixtures_dir() / "tiny-sd1" / "diffusers";
  fs::copy_file(source / "model_index.json", dir_ / "model_index.json");
  fs::create_directory_symlink(source / "unet", dir_ / "unet");
  fs::create_directory_symlink(source / "vae", dir_ / "vae");
  fs::create_directory(dir_ / "text_encoder");
  fs::copy_file(source / "text_encoder" / "config.json", dir_ / "text_encoder" / "config.json");
  fs::create_symlink(source / "text_encoder" / "model.safetensors", dir_ / "text_encoder" / "shard-1.safetensors");
  std::ofstream(dir_ / "text_encoder" / "model.safetensors.index.json")
      << R"({"weight_map": {"text_model.final_layer_norm.weight": "shard-1.safetensors"}})";
  const auto model = load_model_files(dir_);
  EXPECT_EQ(model.text_encoder.tensors.size(), load_model_files(source).text_encoder.tensors.size());
}

}  // namespace
}  // namespace diffuse::io
