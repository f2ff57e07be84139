// The restricted checkpoint reader against ../shared/fixtures: every malicious or malformed file of
// malicious/ refused with the error its README expects, in well under a second, with nothing run; the
// tiny-sd1 checkpoints (zip, legacy, Lightning-like extras) bit-identical to tiny-sd1.safetensors.
#include "io/checkpoint_file.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>

#include "io/model_files.h"
#include "io/safetensors.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace diffuse::io {
namespace {

namespace fs = std::filesystem;
using test::fixtures_dir;

fs::path malicious_dir() { return fixtures_dir() / "malicious"; }

// What the error must say for each malformed file (code-execution files name their global).
const std::map<std::string, std::string> kMalformed = {
    {"truncated_zip.ckpt", "not a valid zip archive: no end-of-directory record (truncated?)"},
    {"truncated_legacy.ckpt", "unexpected end of file in storage"},
    {"truncated_pickle.ckpt", "truncated pickle"},
    {"missing_storage.ckpt", "missing record data/5"},
    {"storage_too_small.ckpt", "tensor of shape [4, 4], stride [4, 1] at offset 0 reaches element 15 of a storage of 6 elements"},
    {"storage_numel_mismatch.ckpt", "storage record data/0 holds 12 bytes, but its 600 HalfStorage elements need 1200"},
    {"storage_offset_oob.ckpt", "at offset 4 reaches element 9 of a storage of 6 elements"},
    {"stride_oob.ckpt", "stride [100, 1] at offset 0 reaches element 102 of a storage of 6 elements"},
    {"negative_shape.ckpt", "negative dimension -1 in the shape"},
    {"overflow_shape.ckpt", "the shape's element count overflows"},
    {"bigint_shape.ckpt", "shape: integer out of range (9-byte LONG)"},
    {"huge_storage_numel.ckpt", "storage record data/0 holds 12 bytes, but its 1152921504606846976 HalfStorage elements"},
    {"negative_offset.ckpt", "negative storage offset -3"},
    {"stride_rank_mismatch.ckpt", "stride has 1 dimensions but the shape 2"},
    {"recursion_bomb.ckpt", "values nested deeper than 1000 levels"},
    {"recursion_bomb_dicts.ckpt", "more than 1000 open MARKs"},
    {"memo_dag_bomb.ckpt", "holds a list, not a dict of tensors"},
    {"huge_memo_index.ckpt", "not a dict of tensors"},
    {"memo_get_missing.ckpt", "memo key 7 is missing"},
    {"stack_underflow.ckpt", "stack underflow"},
    {"bad_protocol.ckpt", "unsupported pickle protocol 99"},
    {"string_length_overflow.ckpt", "a string of 4294967280 bytes runs past the end"},
    {"invalid_utf8.ckpt", "a string that is not valid UTF-8"},
    {"unknown_opcode.ckpt", "unknown opcode 0xf0"},
    {"zip_without_data_pkl.ckpt", "no data.pkl record"},
    {"empty_file.ckpt", "empty file (0 bytes): not a torch checkpoint"},
    {"not_a_checkpoint.ckpt", "not a torch checkpoint"},
};

// The tensors of the small valid files: model.w, and model.b but in the one saved from a GPU.
void expect_small_tensors(const CheckpointFile& file, bool with_bias) {
  ASSERT_EQ(file.tensors().size(), with_bias ? 2u : 1u);
  EXPECT_EQ(file.tensors()[0].name, "model.w");
  const auto w = file.tensor("model.w");
  EXPECT_EQ(w.scalar_type(), at::kHalf);
  EXPECT_TRUE(w.equal(at::arange(6, at::kFloat).div(8).to(at::kHalf).reshape({2, 3})));
  if (!with_bias) return;
  EXPECT_EQ(file.tensors()[1].name, "model.b");
  const auto b = file.tensor("model.b");
  EXPECT_EQ(b.scalar_type(), at::kFloat);
  EXPECT_TRUE(b.equal(at::tensor({0.5f, -1.0f, 2.0f})));
}

class MaliciousCheckpoints : public test::TempDirTest {};

TEST_F(MaliciousCheckpoints, EveryFileIsRefusedWithItsErrorInUnderASecondAndNothingRuns) {
  // Anything a payload ran would leave pwned_marker in the working directory: make it ours.
  const auto previous = fs::current_path();
  fs::current_path(dir_);
  const auto manifest = test::read_json(malicious_dir() / "manifest.json");
  int refused = 0;
  int loaded = 0;
  for (const auto& entry : manifest.at("cases")) {
    const std::string name = entry.at("file");
    const std::string category = entry.at("category");
    SCOPED_TRACE(name);
    const auto start = std::chrono::steady_clock::now();
    std::string error;
    try {
      const auto file = CheckpointFile::open(malicious_dir() / name);
      if (category == "control" || category == "edge") {
        expect_small_tensors(file, category == "control");
        ++loaded;
      }
    } catch (const Error& e) {
      error = e.what();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 1.0);
    EXPECT_FALSE(fs::exists(dir_ / "pwned_marker"));
    if (category == "control" || category == "edge") {
      EXPECT_EQ(error, "");
      continue;
    }
    ASSERT_FALSE(error.empty()) << "loaded";
    ++refused;
    EXPECT_NE(error.find(name), std::string::npos) << error;  // the message names the file
    std::string expected;
    if (category == "code-execution") {
      const std::string global = entry.at("forbidden_global");
      expected = global.rfind("EXT", 0) == 0 ? "unsupported opcode " + global : "forbidden global " + global;
    } else {
      ASSERT_TRUE(kMalformed.count(name)) << "no expected error for " << name << ": " << error;
      expected = kMalformed.at(name);
    }
    EXPECT_NE(error.find(expected), std::string::npos) << error;
  }
  fs::current_path(previous);
  EXPECT_EQ(refused, 49);
  EXPECT_EQ(loaded, 2);
}

TEST(CheckpointFile, ForbiddenGlobalsAreNamedAsWrittenAndAsMapped) {
  try {
    CheckpointFile::open(malicious_dir() / "exec_builtin_eval.ckpt");
    FAIL() << "loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("forbidden global __builtin__.eval (builtins.eval)"), std::string::npos)
        << e.what();
  }
}

void expect_same_as_safetensors(const CheckpointFile& file, const SafetensorsFile& reference, size_t extra) {
  ASSERT_EQ(file.tensors().size(), reference.tensors().size() + extra);
  for (size_t i = 0; i < reference.tensors().size(); ++i) {
    const auto& expected = reference.tensors()[i];
    const auto& got = file.tensors()[i];
    ASSERT_EQ(got.name, expected.name);  // same names, same order
    EXPECT_EQ(got.dtype, expected.dtype) << got.name;
    const auto a = file.tensor(got.name);
    const auto b = reference.tensor(got.name);
    ASSERT_EQ(a.sizes(), b.sizes()) << got.name;
    ASSERT_EQ(a.scalar_type(), b.scalar_type()) << got.name;
    ASSERT_EQ(std::memcmp(a.data_ptr(), b.data_ptr(), b.nbytes()), 0) << got.name;
  }
}

TEST(CheckpointFile, ZipAndLegacyCheckpointsAreBitIdenticalToTheSafetensorsFile) {
  const auto dir = fixtures_dir() / "tiny-sd1";
  const auto reference = SafetensorsFile::open(dir / "tiny-sd1.safetensors");
  ASSERT_EQ(reference.tensors().size(), 513u);
  const auto zip = CheckpointFile::open(dir / "tiny-sd1.ckpt");
  EXPECT_EQ(zip.format(), "zip");
  expect_same_as_safetensors(zip, reference, 0);
  const auto legacy = CheckpointFile::open(dir / "tiny-sd1-legacy.ckpt");
  EXPECT_EQ(legacy.format(), "legacy");
  expect_same_as_safetensors(legacy, reference, 0);
  // The rest of the file is read too: global_step beside the state dict.
  const auto step = zip.document().get(zip.root(), "global_step");
  ASSERT_TRUE(step.has_value());
  EXPECT_EQ(zip.document().at(*step).integer, 470000);
}

TEST(CheckpointFile, LightningExtrasAreReadAsPlainData) {
  const auto dir = fixtures_dir() / "tiny-sd1";
  const auto reference = SafetensorsFile::open(dir / "tiny-sd1.safetensors");
  const auto extras = CheckpointFile::open(dir / "tiny-sd1-extras.ckpt");
  expect_same_as_safetensors(extras, reference, 2);
  EXPECT_FLOAT_EQ(extras.tensor("model_ema.decay").item<float>(), 0.9999f);
  EXPECT_EQ(extras.tensor("model_ema.num_updates").scalar_type(), at::kInt);
  EXPECT_EQ(extras.tensor("model_ema.num_updates").item<int>(), 470001);
  std::vector<std::string> keys;
  const auto& root = extras.document().at(extras.root());
  for (size_t i = 0; i < root.items.size(); i += 2) keys.push_back(extras.document().at(root.items[i]).text);
  EXPECT_EQ(keys, (std::vector<std::string>{"epoch", "global_step", "pytorch-lightning_version", "state_dict", "callbacks",
                                            "optimizer_states", "lr_schedulers", "hparams_name", "hyper_parameters"}));
}

TEST(CheckpointFile, SingleFileModelsLoadFromCheckpointsAsFromSafetensors) {
  const auto dir = fixtures_dir() / "tiny-sd1";
  const auto expected = load_model_files(dir / "tiny-sd1.safetensors");
  for (const char* name : {"tiny-sd1.ckpt", "tiny-sd1-legacy.ckpt", "tiny-sd1-extras.ckpt"}) {
    SCOPED_TRACE(name);
    const auto model = load_model_files(dir / name);
    EXPECT_EQ(model.family, expected.family);
    for (const auto& [component, reference] : {std::pair{&model.unet, &expected.unet}, {&model.vae, &expected.vae},
                                               {&model.text_encoder, &expected.text_encoder}}) {
      ASSERT_EQ(test::tensor_names(component->tensors), test::tensor_names(reference->tensors));
      for (const auto& [tensor_name, tensor] : reference->tensors) {
        EXPECT_TRUE(component->tensors.at(tensor_name).equal(tensor)) << tensor_name;
      }
    }
  }
}

class CheckpointErrors : public test::TempDirTest {};

TEST_F(CheckpointErrors, ADamagedCheckpointModelNamesTheFile) {
  const auto path = dir_ / "model.ckpt";
  std::ofstream(path, std::ios::binary) << "PK\x03\x04 not really a zip";
  try {
    load_model_files(path);
    FAIL() << "loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string() + ": not a valid zip archive"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace diffuse::io
