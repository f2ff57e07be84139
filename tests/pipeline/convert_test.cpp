// diffuse convert's conversions, each checked by loading what it wrote: checkpoint -> safetensors
// bit-exact, diffusers folder <-> single file giving the same modules and the same image.
#include "pipeline/convert.h"

#include <gtest/gtest.h>

#include "io/controlnet_files.h"
#include "io/embedding_file.h"
#include "io/model_files.h"
#include "io/safetensors.h"
#include "pipeline/generation.h"
#include "pipeline/model.h"
#include "pipeline/request.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "text/clip_tokenizer.h"
#include "util/error.h"

namespace diffuse::pipeline {
namespace {

namespace fs = std::filesystem;
using test::fixtures_dir;

class Convert : public test::TempDirTest {};

void expect_same_components(const io::ModelFiles& got, const io::ModelFiles& expected) {
  for (const auto& [a, b] : {std::pair{&got.unet, &expected.unet}, {&got.vae, &expected.vae},
                             {&got.text_encoder, &expected.text_encoder}}) {
    ASSERT_EQ(test::tensor_names(a->tensors), test::tensor_names(b->tensors));
    for (const auto& [name, tensor] : b->tensors) EXPECT_TRUE(a->tensors.at(name).equal(tensor)) << name;
  }
}

at::Tensor draw(const fs::path& model_path) {
  auto model = StableDiffusionModel::load(model_path);
  GenerationRequest request;
  request.prompt = "a photo of a cat";
  request.negative_prompt = "blurry";
  request.width = request.height = 64;
  request.steps = 3;
  request.seed = 5;
  return generate_image(model, resolve(request, model)).pixels;
}

// A ControlNet between its layouts: the folder becomes lllyasviel's single file bit for bit, and the
// single file a folder that loads to the same tensors and config.
TEST_F(Convert, ControlNetFolderToSingleFileAndBack) {
  const auto fixture = fixtures_dir() / "controlnet/tiny-sd1-cn";
  const auto file = dir_ / "net.safetensors";
  EXPECT_NE(convert_model(fixture / "diffusers", file).kind.find("ControlNet"), std::string::npos);
  const auto written = io::SafetensorsFile::open(file), original = io::SafetensorsFile::open(fixture / "tiny-sd1-cn.safetensors");
  ASSERT_EQ(written.tensors().size(), original.tensors().size());
  for (const auto& info : original.tensors()) EXPECT_TRUE(written.tensor(info.name).equal(original.tensor(info.name))) << info.name;

  const auto folder = dir_ / "net";
  convert_model(fixture / "tiny-sd1-cn.safetensors", folder);
  const auto loaded = io::load_controlnet_files(folder, at::kFloat);
  const auto expected = io::load_controlnet_files(fixture / "diffusers", at::kFloat);
  ASSERT_EQ(test::tensor_names(loaded.tensors), test::tensor_names(expected.tensors));
  for (const auto& [name, tensor] : expected.tensors) EXPECT_TRUE(loaded.tensors.at(name).equal(tensor)) << name;
  auto got = models::ControlNetConfig::from_json(loaded.config).to_json(),
       want = models::ControlNetConfig::from_json(expected.config).to_json();
  EXPECT_EQ(got.dump(), want.dump());
}

TEST_F(Convert, CheckpointToSafetensorsKeepsEveryTensorBitExact) {
  const auto reference = io::SafetensorsFile::open(fixtures_dir() / "tiny-sd1/tiny-sd1.safetensors");
  for (const char* name : {"tiny-sd1.ckpt", "tiny-sd1-legacy.ckpt"}) {
    SCOPED_TRACE(name);
    const auto out = dir_ / (std::string(name) + ".safetensors");
    const auto report = convert_model(fixtures_dir() / "tiny-sd1" / name, out);
    EXPECT_EQ(report.tensors, 513u);
    const auto written = io::SafetensorsFile::open(out);
    ASSERT_EQ(written.tensors().size(), reference.tensors().size());
    for (const auto& info : reference.tensors()) {
      EXPECT_EQ(written.info(info.name).dtype, info.dtype) << info.name;
      EXPECT_TRUE(written.tensor(info.name).equal(reference.tensor(info.name))) << info.name;
    }
    EXPECT_EQ(written.metadata().at("converted_from"), name);
  }
}

TEST_F(Convert, PrecisionAppliesToFloatingTensorsOnly) {
  const auto out = dir_ / "bf16.safetensors";
  convert_model(fixtures_dir() / "tiny-sd1/tiny-sd1-extras.ckpt", out, {at::kBFloat16});
  const auto written = io::SafetensorsFile::open(out);
  EXPECT_EQ(written.tensors().size(), 515u);  // with the EMA decay and step count
  EXPECT_EQ(written.info("model_ema.decay").dtype, "BF16");
  EXPECT_EQ(written.info("model_ema.num_updates").dtype, "I32");
  EXPECT_EQ(written.info("cond_stage_model.transformer.text_model.embeddings.position_ids").dtype, "I64");
  EXPECT_EQ(written.info("model.diffusion_model.out.2.weight").dtype, "BF16");
}

TEST_F(Convert, DiffusersFolderToSingleFileAndBack) {
  const auto folder = fixtures_dir() / "tiny-sd1/diffusers";
  const auto single = dir_ / "tiny.safetensors";
  const auto report = convert_model(folder, single);
  EXPECT_NE(report.kind.find("diffusers folder -> single file (sd1"), std::string::npos) << report.kind;
  // 4 heads of 8 channels in its text encoder: no shape says so, the config beside the file does.
  ASSERT_TRUE(fs::is_regular_file(dir_ / "tiny.json"));
  const auto expected = io::load_model_files(folder);
  expect_same_components(io::load_model_files(single), expected);

  // Back to a folder, with the tokenizer beside the file: the same modules, configs that load, the same image.
  fs::copy(folder / "tokenizer", dir_ / "tokenizer");
  const auto back = dir_ / "tiny-diffusers";
  const auto report_back = convert_model(single, back);
  EXPECT_TRUE(report_back.notes.empty());
  EXPECT_TRUE(fs::is_regular_file(back / "model_index.json"));
  EXPECT_FALSE(fs::exists(dir_ / ".tiny-diffusers.partial"));
  expect_same_components(io::load_model_files(back), expected);
  EXPECT_TRUE(draw(back).equal(draw(folder)));
}

TEST_F(Convert, VPredictionFolderKeepsItsPredictionAsASingleFile) {
  const auto folder = fixtures_dir() / "tiny-sd2v/diffusers";
  const auto single = dir_ / "sd2v.safetensors";
  convert_model(folder, single);
  const auto loaded = io::load_model_files(single);
  EXPECT_EQ(loaded.family, io::LdmFamily::Sd2);
  EXPECT_EQ(scheduler_config(loaded).prediction, sampling::Prediction::VPrediction);
  expect_same_components(loaded, io::load_model_files(folder));
  fs::copy(folder / "tokenizer", dir_ / "tokenizer");
  EXPECT_TRUE(draw(single).equal(draw(folder)));
}

TEST_F(Convert, SdxlFolderToSingleFileAndBack) {
  const auto folder = fixtures_dir() / "tiny-sdxl/diffusers";
  const auto single = dir_ / "xl.safetensors";
  const auto report = convert_model(folder, single);
  // Its tiny heads are in no shape: convert says so, and the sgm config beside the file gives them.
  ASSERT_FALSE(report.notes.empty());
  EXPECT_NE(report.notes[0].find("keep its sgm config"), std::string::npos) << report.notes[0];
  fs::copy_file(fixtures_dir() / "tiny-sdxl/ldm_config.json", dir_ / "xl.json");
  const auto expected = io::load_model_files(folder);
  const auto loaded = io::load_model_files(single);
  EXPECT_EQ(loaded.family, io::LdmFamily::Sdxl);
  expect_same_components(loaded, expected);
  ASSERT_EQ(test::tensor_names(loaded.text_encoder_2.tensors), test::tensor_names(expected.text_encoder_2.tensors));
  for (const auto& [name, tensor] : expected.text_encoder_2.tensors) {
    EXPECT_TRUE(loaded.text_encoder_2.tensors.at(name).equal(tensor)) << name;
  }
  const auto back = dir_ / "xl-diffusers";
  convert_model(single, back);
  EXPECT_TRUE(fs::is_directory(back / "text_encoder_2"));
  const auto again = io::load_model_files(back);
  for (const auto& [name, tensor] : expected.text_encoder_2.tensors) {
    EXPECT_TRUE(again.text_encoder_2.tensors.at(name).equal(tensor)) << name;
  }
}

TEST_F(Convert, CheckpointToFolderWritesCLIPsTokenizerFromTheGzFile) {
  fs::copy_file(fixtures_dir() / "tiny-sd1/tiny-sd1.ckpt", dir_ / "tiny.ckpt");
  fs::copy_file(fixtures_dir() / "tiny-sd1/ldm_config.json", dir_ / "ldm_config.json");
  fs::copy_file(test::shared_dir() / "clip/bpe_simple_vocab_16e6.txt.gz", dir_ / "bpe_simple_vocab_16e6.txt.gz");
  const auto out = dir_ / "folder";
  convert_model(dir_ / "tiny.ckpt", out, {at::kFloat});
  EXPECT_EQ(io::SafetensorsFile::open(out / "unet/diffusion_pytorch_model.safetensors").info("conv_in.weight").dtype,
            "F32");
  const auto from_gz = text::ClipTokenizer::from_path(test::shared_dir() / "clip/bpe_simple_vocab_16e6.txt.gz");
  const auto written = text::ClipTokenizer::from_path(out / "tokenizer");
  const std::string prompt = "a photograph of an astronaut riding a horse, highly detailed, 8k";
  EXPECT_EQ(written.encode(prompt), from_gz.encode(prompt));
  EXPECT_TRUE(draw(out).equal(draw(fixtures_dir() / "tiny-sd1/diffusers")));
}

TEST_F(Convert, EmbeddingPickleBecomesItsSafetensorsForm) {
  const auto out = dir_ / "tiny-style.safetensors";
  const auto report = convert_model(fixtures_dir() / "textual_inversion/tiny-style.pt", out);
  EXPECT_EQ(report.tensors, 1u);
  const auto written = io::read_embedding_file(out);
  EXPECT_TRUE(written.vectors.equal(io::read_embedding_file(fixtures_dir() / "textual_inversion/tiny-style.safetensors").vectors));
}

TEST_F(Convert, RefusesWhatItCannotWriteAndNeverRunsAPickle) {
  const auto error_of = [](const fs::path& in, const fs::path& out) -> std::string {
    try {
      convert_model(in, out);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  const auto ckpt = fixtures_dir() / "tiny-sd1/tiny-sd1.ckpt";
  EXPECT_NE(error_of(ckpt, dir_ / "x.ckpt").find("pickles are never written; convert to .safetensors"), std::string::npos);
  EXPECT_NE(error_of(ckpt, dir_).find("already exists as a folder"), std::string::npos);
  EXPECT_NE(error_of(ckpt, dir_ / "x.bin.gz").find("write a .safetensors file, or a diffusers folder"), std::string::npos);
  EXPECT_NE(error_of(fixtures_dir() / "malicious/exec_os_system.ckpt", dir_ / "x.safetensors").find("forbidden global os.system"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "x.safetensors"));
  EXPECT_NE(error_of(dir_ / "absent.ckpt", dir_ / "x.safetensors").find("absent.ckpt: no such file or folder"),
            std::string::npos);
}

}  // namespace
}  // namespace diffuse::pipeline
