#pragma once
// A restricted unpickler for the pickles inside torch checkpoints (.ckpt, .pt, .bin). It never
// imports or calls anything a file names: globals are looked up by name in a short allow-list
// (OrderedDict, torch's tensor rebuilders and storage types, set, _codecs.encode) and any other
// global ends the read with an error naming it as `module.name`. Values live in one flat arena, so
// shared references stay shared (a memo bomb is never expanded), cycles cannot leak and freeing
// never recurses; nesting, marks and integers are bounded. No libtorch here: the checkpoint reader
// turns the tensor records into tensors.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace diffuse::io::pickle {

using Ref = uint32_t;  // index into Document::values

enum class Kind {
  None, Bool, Int, BigInt, Float, String, Bytes,
  List, Tuple, Dict, Set,
  Global,   // an allow-listed global used as a value (a storage type, say)
  Storage,  // a torch storage from a persistent id
  Tensor,   // torch._utils._rebuild_tensor_v2 / _rebuild_parameter
};

struct StorageRecord {
  std::string type;      // "HalfStorage", "FloatStorage", ...
  std::string key;       // the record name in the zip (data/<key>) or the legacy storage key
  std::string location;  // "cpu", "cuda:0": only a tag, the bytes are in the file
  int64_t numel = 0;     // elements, as the file claims
};

struct TensorRecord {
  Ref storage = 0;  // a Kind::Storage value
  int64_t storage_offset = 0;
  std::vector<int64_t> shape, stride;
  // offset + the strided extent: the storage must hold at least this many elements.
  int64_t elements_needed = 0;
};

struct Value {
  Kind kind = Kind::None;
  int64_t integer = 0;       // Int, Bool
  double real = 0;           // Float
  std::string text;          // String, Bytes (raw), BigInt (little-endian two's complement), Global
  std::vector<Ref> items;    // List, Tuple, Set; Dict: key, value, key, value, ...
  int depth = 0;             // nesting depth below this value, bounded
  size_t detail = 0;         // Storage: index into Document::storages; Tensor: into Document::tensors
};

struct Limits {
  int max_depth = 1000;        // containers inside containers, and open MARKs
  size_t max_stack = 1u << 20; // values on the stack at once
};

struct Document {
  std::vector<Value> values;
  std::vector<StorageRecord> storages;
  std::vector<TensorRecord> tensors;
  Ref root = 0;

  const Value& at(Ref ref) const { return values.at(ref); }
  // Dict lookup by string key; nullopt when `dict` is not a Dict or has no such key.
  std::optional<Ref> get(Ref dict, const std::string& key) const;
  std::string describe(Ref ref) const;  // "a dict", "a tensor", ... for error messages
};

// Reads one pickle from `bytes[0, size)`; `*consumed` (if given) gets the bytes up to and including
// STOP (the legacy format puts several pickles in a row). Storage persistent ids become Storage
// values; `into` receives the values (a legacy file's pickles share one document so the main pickle's
// storages can be matched to the keys pickle). Throws diffuse::Error with `where` first: the
// forbidden global, unsupported opcode or protocol, truncation, memo key, stack underflow, bound.
Ref read_pickle(const uint8_t* bytes, size_t size, const std::string& where, Document& into,
                size_t* consumed = nullptr, const Limits& limits = {});

}  // namespace diffuse::io::pickle
