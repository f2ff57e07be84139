// A model trained on the `shapes` dataset has a derived tokenizer: the BPE learnt from the
// dataset's captions, which training.json's seed, shapes_count, resolution and bpe_merges fix.
// The built-in model is committed without it (the project tracks no vocabulary files) and gets it
// back from here on first use.
#pragma once
#include <filesystem>

namespace diffuse::train {

// Writes MODEL/tokenizer/ (vocab.json, merges.txt, tokenizer_config.json) from MODEL/training.json,
// through a temporary folder renamed into place, so a reader never sees half a tokenizer and two
// processes restoring at once do not collide. Throws diffuse::Error if training.json is missing or
// records another dataset.
void restore_shapes_tokenizer(const std::filesystem::path& model);

}  // namespace diffuse::train
