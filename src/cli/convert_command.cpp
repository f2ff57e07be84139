#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "pipeline/convert.h"
#include "util/error.h"

namespace diffuse::cli {

namespace {

struct ConvertCommandOptions {
  std::string in, out, precision;
};

}  // namespace

void add_convert_command(CLI::App& app) {
  auto options = std::make_shared<ConvertCommandOptions>();
  auto* command = app.add_subcommand(
      "convert",
      "Convert a model without running anything in it: .ckpt/.pt/.bin to .safetensors, a diffusers folder to one "
      ".safetensors file, or a single file to a diffusers folder (OUT without an extension)");
  command->add_option("in", options->in, "A .ckpt/.pt/.pth/.bin/.safetensors file or a diffusers folder")->required();
  command->add_option("out", options->out, "OUT.safetensors, or a new folder for a diffusers model")->required();
  command->add_option("--precision", options->precision, "Floating-point tensors as fp32, fp16 or bf16 (default: as stored)")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
  command->callback([options] {
    pipeline::ConvertOptions convert;
    if (options->precision == "fp32") convert.dtype = at::kFloat;
    if (options->precision == "fp16") convert.dtype = at::kHalf;
    if (options->precision == "bf16") convert.dtype = at::kBFloat16;
    const auto report = pipeline::convert_model(options->in, options->out, convert);
    std::printf("%s: %zu tensors -> %s\n", report.kind.c_str(), report.tensors, options->out.c_str());
    for (const auto& note : report.notes) std::fprintf(stderr, "note: %s\n", note.c_str());
  });
}

}  // namespace diffuse::cli
