// img2img, inpainting and outpainting from the command line: the reference image from the flags
// alone, init images of other sizes resized, and bad inputs refused before anything is written.
#include <gtest/gtest.h>

#include <fstream>

#include "image/png_file.h"
#include "support/fixtures.h"
#include "support/run_diffuse.h"
#include "support/temp_dir.h"

namespace diffuse::cli {
namespace {

namespace fs = std::filesystem;
using test::fixtures_dir;
using test::Outcome;
using test::run_diffuse;

class ImageToImageCli : public test::TempDirTest {
 protected:
  fs::path refs() const { return fixtures_dir() / "tiny-sd1/refs"; }
  fs::path out() const { return dir_ / "out.png"; }

  Outcome generate(std::vector<std::string> extra) {
    std::vector<std::string> args{"generate", "-m", (fixtures_dir() / "tiny-sd1/diffusers").string(),
                                  "-p", "a photo of a cat", "--steps", "8", "--precision", "fp32",
                                  "-o", out().string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_diffuse(args);
  }

  void expect_rejected(const Outcome& outcome, const std::string& message) {
    EXPECT_NE(outcome.exit_code, 0) << outcome.output;
    EXPECT_NE(outcome.output.find(message), std::string::npos) << "expected '" << message << "' in: " << outcome.output;
    EXPECT_FALSE(fs::exists(out())) << outcome.output;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      EXPECT_EQ(entry.path().filename().string().find("out"), std::string::npos) << "left behind: " << entry.path();
    }
  }

  // A 70x45 RGB picture, a size no model takes.
  fs::path odd_sized_png() const {
    at::Tensor pixels = at::arange(70 * 45 * 3, at::kInt).remainder(251).to(at::kByte).view({45, 70, 3});
    const auto path = dir_ / "odd.png";
    image::write_png(path, pixels);
    return path;
  }
};

TEST_F(ImageToImageCli, GivesTheReferenceImageFromTheFlags) {
  // tiny-sd1's i2i_euler_8_s0.5: StableDiffusionImg2ImgPipeline, guidance 6, seed 6001.
  const auto outcome = generate({"--init-image", (refs() / "i2i_euler_8_s0.5_init_image.png").string(), "--strength",
                                 "0.5", "--cfg-scale", "6", "--seed", "6001"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  EXPECT_NE(outcome.output.find("step 4/4"), std::string::npos) << outcome.output;
  const auto made = image::read_png(out());
  const auto expected = image::read_png(refs() / "i2i_euler_8_s0.5.png");
  ASSERT_EQ(made.pixels.sizes(), expected.pixels.sizes());
  EXPECT_LE((made.pixels.to(at::kShort) - expected.pixels.to(at::kShort)).abs().max().item<int>(), 1);
  EXPECT_NE(made.text.at("parameters").find("Size: 64x64, Model: diffusers, Denoising strength: 0.5"), std::string::npos)
      << made.text.at("parameters");
}

TEST_F(ImageToImageCli, ResizesAnInitImageOfAnotherSize) {
  const auto outcome = generate({"--init-image", odd_sized_png().string()});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  EXPECT_NE(outcome.output.find("warning: the init image 70x45 is resized to 64x40"), std::string::npos) << outcome.output;
  const auto made = image::read_png(out());
  EXPECT_EQ(made.width, 64);
  EXPECT_EQ(made.height, 40);
}

TEST_F(ImageToImageCli, InpaintsAndOutpaints) {
  const auto init = (refs() / "inp_euler_8_s0.75_init_image.png").string();
  auto outcome = generate({"--init-image", init, "--mask", (refs() / "inp_euler_8_s0.75_mask.png").string()});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  EXPECT_NE(image::read_png(out()).text.at("parameters").find("Denoising strength: 0.75, Mask blur: 4"), std::string::npos);

  outcome = generate({"--init-image", init, "--outpaint", "16,0,0,0", "--strength", "1"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  const auto made = image::read_png(out());
  EXPECT_EQ(made.width, 80);
  EXPECT_EQ(made.height, 64);
  // The right part of the old image is kept as it was.
  const auto old = image::read_png(init).pixels;
  EXPECT_TRUE(made.pixels.narrow(1, 48, 32).equal(old.narrow(1, 32, 32)));
}

TEST_F(ImageToImageCli, RefusesBadInputsBeforeWritingAnything) {
  std::ofstream(dir_ / "notes.png") << "not a picture";
  expect_rejected(generate({"--init-image", (dir_ / "notes.png").string()}), "notes.png");
  expect_rejected(generate({"--init-image", (dir_ / "missing.png").string()}), "missing.png");
  const auto init = (refs() / "i2i_euler_8_s0.5_init_image.png").string();
  expect_rejected(generate({"--init-image", init, "--strength", "0"}), "--strength: 0 is outside (0, 1]");
  expect_rejected(generate({"--init-image", init, "--strength", "1.01"}), "--strength: 1.01 is outside (0, 1]");
  expect_rejected(generate({"--strength", "0.5"}), "--strength: applies only with an init image");
  expect_rejected(generate({"--mask", init}), "--mask: needs an init image to repaint");
  expect_rejected(generate({"--init-image", init, "--mask", (dir_ / "notes.png").string()}), "notes.png");
  expect_rejected(generate({"--init-image", init, "--outpaint", "8,8"}),
                  "--outpaint: '8,8' is not LEFT,RIGHT,TOP,BOTTOM (4 whole numbers with commas between)");
  expect_rejected(generate({"--init-image", init, "--outpaint", "8,0,0,0", "--outpaint-fill", "blur"}),
                  "--outpaint-fill: 'blur' is not one of edge, noise");
}

}  // namespace
}  // namespace diffuse::cli
