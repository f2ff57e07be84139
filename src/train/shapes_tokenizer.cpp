#include "train/shapes_tokenizer.h"

#include <unistd.h>

#include "train/bpe_trainer.h"
#include "train/shapes_dataset.h"
#include "util/error.h"
#include "util/json.h"

namespace diffuse::train {

namespace fs = std::filesystem;

void restore_shapes_tokenizer(const fs::path& model) {
  const auto record_file = model / "training.json";
  if (!fs::is_regular_file(record_file)) {
    throw Error("'" + model.string() + "' has no tokenizer/ and no training.json to rebuild it from");
  }
  const auto options = read_json_file(record_file).at("options");
  if (options.at("dataset").get<std::string>() != "shapes") {
    throw Error("'" + record_file.string() + "': the tokenizer can only be rebuilt for the shapes dataset");
  }
  const auto data = make_shapes_dataset(options.at("shapes_count").get<int>(), options.at("resolution").get<int>(),
                                        options.at("seed").get<uint64_t>());
  const auto staging = model / ("tokenizer.partial-" + std::to_string(::getpid()));
  fs::remove_all(staging);
  write_clip_tokenizer(train_bpe(data.captions, options.at("bpe_merges").get<int>()),
                       options.at("max_tokens").get<int>(), staging);
  std::error_code taken;
  fs::rename(staging, model / "tokenizer", taken);
  if (taken) fs::remove_all(staging);  // another process restored it first
}

}  // namespace diffuse::train
