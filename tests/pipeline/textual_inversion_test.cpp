// Textual-inversion files (../shared/fixtures/textual_inversion) against diffusers: the vectors each
// file holds, and the whole reference run with the embedding added from its file.
#include <gtest/gtest.h>

#include <fstream>

#include "io/embedding_file.h"
#include "io/safetensors_writer.h"
#include "pipeline/embeddings.h"
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

fs::path ti_dir() { return fixtures_dir() / "textual_inversion"; }

// AUTOMATIC1111's pickle (string_to_param, read by the restricted reader) and its safetensors form.
std::vector<fs::path> embedding_files() { return {ti_dir() / "tiny-style.pt", ti_dir() / "tiny-style.safetensors"}; }

TEST(TextualInversionFile, HoldsTheVectorsDiffusersLoaded) {
  const auto expected = read_reference(ti_dir() / "refs/embedding_vectors.bin");
  for (const auto& path : embedding_files()) {
    const auto file = io::read_embedding_file(path);
    EXPECT_EQ(file.name, "tiny-style") << path;
    EXPECT_TRUE(file.vectors.equal(expected)) << path;
    EXPECT_FALSE(file.vectors_2.defined()) << path;
  }
}

TEST(TextualInversionRun, MatchesDiffusersFromSeed) {
  const auto manifest = test::read_json(ti_dir() / "manifest.json");
  const auto& run = manifest.at("runs").at(0);
  const auto refs = ti_dir() / "refs";
  for (const auto& path : embedding_files()) {
    auto model = StableDiffusionModel::load(fixtures_dir() / "tiny-sd1/diffusers");
    const auto added = add_embeddings(model, {path}, {});
    ASSERT_EQ(added.names, std::vector<std::string>{"tiny-style"});
    auto request = request_of(run, refs);
    request.prompt = run.at("prompt_a1111").get<std::string>();
    const auto result = generate_image(model, resolve(request, model));
    const auto compared = compare_with_reference(result.latents, result.pixels, run, refs);
    std::printf("%s: latents %.2e, image max %d mean %.3f levels\n", path.filename().c_str(), compared.latent_error,
                compared.max_levels, compared.mean_levels);
    EXPECT_LT(compared.latent_error, kLatentTolerance);
    EXPECT_LE(compared.max_levels, kImageLevels);
    EXPECT_LT(compared.mean_levels, kImageMeanLevels);
  }
}

class EmbeddingFiles : public test::TempDirTest {
 protected:
  std::string error_of(const TensorMap& tensors, const std::string& name = "bad.safetensors") {
    const auto path = dir_ / name;
    io::write_safetensors(path, tensors);
    try {
      io::read_embedding_file(path);
    } catch (const Error& error) {
      return error.what();
    }
    return "no error";
  }
};

TEST_F(EmbeddingFiles, ReadsEveryLayoutByAutomatic1111sRules) {
  io::write_safetensors(dir_ / "concept.safetensors", {{"<cat-toy>", at::arange(32, at::kFloat)}});
  const auto concept_file = io::read_embedding_file(dir_ / "concept.safetensors");
  EXPECT_EQ(concept_file.name, "concept");
  EXPECT_EQ(concept_file.vectors.sizes(), (at::IntArrayRef{1, 32}));
  io::write_safetensors(dir_ / "xl.safetensors", {{"clip_l", at::ones({3, 768})}, {"clip_g", at::ones({3, 1280})}});
  const auto xl = io::read_embedding_file(dir_ / "xl.safetensors");
  EXPECT_EQ(xl.vectors.sizes(), (at::IntArrayRef{3, 768}));
  EXPECT_EQ(xl.vectors_2.sizes(), (at::IntArrayRef{3, 1280}));
}

TEST_F(EmbeddingFiles, RefusesWhatIsNoEmbeddingByName) {
  EXPECT_NE(error_of({{"a", at::ones({2, 32})}, {"b", at::ones({2, 32})}})
                .find("bad.safetensors: is not a textual-inversion embedding: it should hold one tensor (emb_params) "
                      "or clip_l and clip_g, not 2 (a, b)"),
            std::string::npos);
  EXPECT_NE(error_of({{"emb_params", at::ones({2, 3, 4})}}).find("'emb_params' [2, 3, 4] is not a list of vectors"),
            std::string::npos);
  EXPECT_NE(error_of({{"emb_params", at::full({1, 4}, NAN)}}).find("'emb_params' holds a NaN or an infinity"),
            std::string::npos);
  EXPECT_NE(error_of({{"clip_l", at::ones({2, 768})}, {"clip_g", at::ones({3, 1280})}})
                .find("clip_l has 2 vectors but clip_g 3"),
            std::string::npos);
  std::ofstream(dir_ / "notes.txt") << "words";
  try {
    io::read_embedding_file(dir_ / "notes.txt");
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("notes.txt: an embedding is a .safetensors, .pt or .bin file"),
              std::string::npos);
  }
}

TEST_F(EmbeddingFiles, FolderFilesForOtherModelsAreSkippedNamedFilesRefused) {
  auto model = StableDiffusionModel::load(fixtures_dir() / "tiny-sd1/diffusers");
  fs::create_directories(dir_ / "sd2");
  fs::copy_file(ti_dir() / "tiny-style.safetensors", dir_ / "tiny-style.safetensors");
  io::write_safetensors(dir_ / "sd2/wide.safetensors", {{"emb_params", at::ones({1, 1024})}});
  const auto added = add_embeddings(model, {}, {dir_});
  EXPECT_EQ(added.names, std::vector<std::string>{"tiny-style"});
  ASSERT_EQ(added.skipped.size(), 1u);
  EXPECT_NE(added.skipped[0].find((dir_ / "sd2/wide.safetensors").string() +
                                  ": 'wide' has vectors [1, 1024] for the text encoder, which takes [n, 32]"),
            std::string::npos)
      << added.skipped[0];
  try {
    add_embeddings(model, {dir_ / "sd2/wide.safetensors"}, {});
    FAIL() << "no error";
  } catch (const InvalidParameter& error) {
    EXPECT_EQ(error.parameter(), "embedding");
    EXPECT_NE(error.problem().find("wide.safetensors: 'wide' has vectors [1, 1024]"), std::string::npos)
        << error.what();
  }
  try {
    add_embeddings(model, {}, {dir_ / "absent"});
    FAIL() << "no error";
  } catch (const InvalidParameter& error) {
    EXPECT_EQ(error.parameter(), "embeddings_dir");
  }
}

}  // namespace
}  // namespace diffuse::pipeline
