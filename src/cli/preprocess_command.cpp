// `diffuse preprocess canny IN.png -o OUT.png`: one control preprocessor's map alone, the picture a
// ControlNet unit would be given, to check thresholds before generating.
#include <memory>
#include <string>

#include "cli/commands.h"
#include "image/control_preprocess.h"
#include "image/png_file.h"
#include "util/error.h"
#include "util/format.h"

namespace diffuse::cli {

namespace {

struct PreprocessOptions {
  std::string preprocessor;     // as the text form of image::ControlPreprocessor: "canny", "tile:2"
  std::string input;
  std::string output_argument;  // `preprocess canny IN OUT`, the fixtures' form
  std::string output_option;    // `preprocess canny IN -o OUT`
  std::string canny_low, canny_high;  // as typed; empty: not given
};

// The thresholds of --canny-low/--canny-high go through the same parser as "canny:LOW:HIGH", so
// they are checked by the same rules and named in the same words.
image::ControlPreprocessor chosen_preprocessor(const PreprocessOptions& o) {
  auto preprocessor = image::ControlPreprocessor::parse(o.preprocessor);
  if (o.canny_low.empty() && o.canny_high.empty()) return preprocessor;
  const char* flag = o.canny_low.empty() ? "--canny-high" : "--canny-low";
  if (preprocessor.kind != image::ControlPreprocessor::Kind::canny) {
    throw Error(std::string(flag) + ": only canny has thresholds, not '" + o.preprocessor + "'");
  }
  if (o.preprocessor != "canny") {
    throw Error(std::string(flag) + ": the thresholds are already given in '" + o.preprocessor + "'");
  }
  const std::string low = o.canny_low.empty() ? format_number(preprocessor.canny_low) : o.canny_low;
  const std::string high = o.canny_high.empty() ? format_number(preprocessor.canny_high) : o.canny_high;
  return image::ControlPreprocessor::parse("canny:" + low + ":" + high);
}

void run_preprocess(const PreprocessOptions& o) {
  if (!o.output_argument.empty() && !o.output_option.empty()) {
    throw Error("the output is given twice: '" + o.output_argument + "' and -o '" + o.output_option + "'");
  }
  const std::string& output = o.output_argument.empty() ? o.output_option : o.output_argument;
  if (output.empty()) throw Error("no output file: give it after the input or as -o OUT.png");
  // Everything the user typed is checked before the image is read, and nothing is written unless
  // the map was made.
  const auto preprocessor = chosen_preprocessor(o);
  const auto picture = image::read_png(o.input);
  image::write_png(output, preprocessor.apply(picture.pixels));
}

}  // namespace

void add_preprocess_command(CLI::App& app) {
  auto options = std::make_shared<PreprocessOptions>();
  auto* command = app.add_subcommand(
      "preprocess", "Make a ControlNet control map from a picture, as AUTOMATIC1111's preprocessors do");
  command->add_option("preprocessor", options->preprocessor,
                      "canny[:LOW:HIGH], invert, threshold[:LEVEL], tile[:FACTOR] or none")
      ->required();
  command->add_option("input", options->input, "PNG file")->required();
  command->add_option("output_file", options->output_argument, "PNG file to write (or -o)");
  command->add_option("-o,--output", options->output_option, "PNG file to write");
  command->add_option("--canny-low", options->canny_low, "canny: low threshold (default 100)");
  command->add_option("--canny-high", options->canny_high, "canny: high threshold (default 200)");
  command->callback([options] { run_preprocess(*options); });
}

}  // namespace diffuse::cli
