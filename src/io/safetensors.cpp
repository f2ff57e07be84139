#include "io/safetensors.h"

#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/json.h"

namespace diffuse::io {

namespace fs = std::filesystem;

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian and is viewed in place");

namespace {

// A header this large is no real checkpoint's; the bound stops a hostile length from making us
// parse gigabytes.
constexpr uint64_t kMaxHeaderBytes = 100ull * 1024 * 1024;

struct DtypeEntry {
  const char* name;
  size_t size;
  std::optional<at::ScalarType> type;  // nullopt: defined by safetensors, absent from torch 1.13
};

constexpr DtypeEntry kDtypes[] = {
    {"F64", 8, at::kDouble},  {"F32", 4, at::kFloat},     {"F16", 2, at::kHalf},
    {"BF16", 2, at::kBFloat16}, {"I64", 8, at::kLong},    {"I32", 4, at::kInt},
    {"I16", 2, at::kShort},   {"I8", 1, at::kChar},       {"U8", 1, at::kByte},
    {"BOOL", 1, at::kBool},   {"U16", 2, std::nullopt},   {"U32", 4, std::nullopt},
    {"U64", 8, std::nullopt}, {"F8_E4M3", 1, std::nullopt}, {"F8_E5M2", 1, std::nullopt},
};

const DtypeEntry* find_dtype(const std::string& name) {
  for (const auto& entry : kDtypes) {
    if (name == entry.name) return &entry;
  }
  return nullptr;
}

std::string range_text(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

bool is_non_negative_integer(const nlohmann::ordered_json& value) {
  return value.is_number_unsigned() || (value.is_number_integer() && value.get<int64_t>() >= 0);
}

}  // namespace

std::optional<at::ScalarType> scalar_type_from_safetensors(const std::string& dtype) {
  const auto* entry = find_dtype(dtype);
  return entry ? entry->type : std::nullopt;
}


const char* safetensors_dtype_name(at::ScalarType type) {
  for (const auto& entry : kDtypes) {
    if (entry.type == type) return entry.name;
  }
  return nullptr;
}

namespace {

// The JSON header after the 8-byte length, bounded before it is parsed.
nlohmann::ordered_json read_header(const uint8_t* bytes, uint64_t file_size, const std::string& file) {
  const auto fail = [&file](const std::string& why) { return Error(file + ": not a safetensors file (" + why + ")"); };
  if (file_size < 8) throw fail(std::to_string(file_size) + " bytes, too short for the 8-byte header length");
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes, sizeof header_length);
  if (header_length > file_size - 8) {
    throw fail("header length " + std::to_string(header_length) + " exceeds file size " + std::to_string(file_size));
  }
  if (header_length > kMaxHeaderBytes) {
    throw fail("header length " + std::to_string(header_length) + " exceeds the " + std::to_string(kMaxHeaderBytes) +
               "-byte limit");
  }
  const char* header_begin = reinterpret_cast<const char*>(bytes + 8);
  if (json_nests_deeper_than(std::string_view(header_begin, header_length))) {
    throw fail("header nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  // ordered_json keeps the file's order, which tensors() promises.
  nlohmann::ordered_json header;
  try {
    header = nlohmann::ordered_json::parse(header_begin, header_begin + header_length);
  } catch (const nlohmann::json::exception& e) {
    throw fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) throw fail("header is not a JSON object");
  return header;
}

// One tensor's entry, checked against the data area of `data_size` bytes.
TensorInfo tensor_info(const std::string& name, const nlohmann::ordered_json& entry, uint64_t data_size,
                       const std::string& file) {
  const auto fail = [&](const std::string& why) { return Error(file + ": tensor '" + name + "': " + why); };
  if (!entry.is_object()) throw fail("entry is not a JSON object");
  if (!entry.contains("dtype") || !entry["dtype"].is_string()) throw fail("missing or non-string dtype");
  if (!entry.contains("shape") || !entry["shape"].is_array()) throw fail("missing or non-array shape");
  if (!entry.contains("data_offsets") || !entry["data_offsets"].is_array() || entry["data_offsets"].size() != 2 ||
      !is_non_negative_integer(entry["data_offsets"][0]) || !is_non_negative_integer(entry["data_offsets"][1])) {
    throw fail("data_offsets must be two non-negative integers");
  }

  TensorInfo info;
  info.name = name;
  info.dtype = entry["dtype"].get<std::string>();
  const auto* dtype = find_dtype(info.dtype);
  if (dtype == nullptr) throw fail("unknown dtype '" + info.dtype + "'");
  if (!dtype->type) throw fail("dtype " + info.dtype + " is not supported");
  info.scalar_type = *dtype->type;

  uint64_t numel = 1;
  for (const auto& dim : entry["shape"]) {
    if (!is_non_negative_integer(dim)) throw fail("shape " + entry["shape"].dump() + " has a non-integer or negative size");
    const uint64_t size = dim.get<uint64_t>();
    if (size > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, size, &numel)) {
      throw fail("shape " + entry["shape"].dump() + " is too large");
    }
    info.shape.push_back(static_cast<int64_t>(size));
  }
  uint64_t byte_count = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype->size), &byte_count)) {
    throw fail("shape " + shape_text(info.shape) + " is too large");
  }

  info.data_begin = entry["data_offsets"][0].get<uint64_t>();
  info.data_end = entry["data_offsets"][1].get<uint64_t>();
  const std::string range = range_text(info.data_begin, info.data_end);
  if (info.data_begin > info.data_end) throw fail("data offsets " + range + " are reversed");
  if (info.data_end > data_size) {
    throw fail("data " + range + " outside the data area (" + std::to_string(data_size) + " bytes; file truncated?)");
  }
  if (info.data_end - info.data_begin != byte_count) {
    throw fail("data " + range + " holds " + std::to_string(info.data_end - info.data_begin) + " bytes, but shape " +
               shape_text(info.shape) + " of " + info.dtype + " needs " + std::to_string(byte_count));
  }
  return info;
}

// Two tensors sharing bytes never come from a real writer: the file is damaged or crafted.
void check_no_overlap(const std::vector<TensorInfo>& tensors, const std::string& file) {
  std::vector<const TensorInfo*> by_offset;
  for (const auto& info : tensors) {
    if (info.data_end > info.data_begin) by_offset.push_back(&info);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->data_begin < b->data_begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->data_begin < by_offset[i - 1]->data_end) {
      throw Error(file + ": tensors '" + by_offset[i - 1]->name + "' and '" + by_offset[i]->name +
                  "' overlap in the data area");
    }
  }
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const fs::path& path) {
  const std::string file = path.string();
  auto mapping = MappedFile::open(path);
  const uint64_t file_size = mapping->size();
  const uint8_t* bytes = mapping->data();
  const auto header = read_header(bytes, file_size, file);
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes, sizeof header_length);

  SafetensorsFile result;
  result.path_ = path;
  result.data_area_ = bytes + 8 + header_length;
  const uint64_t data_size = file_size - 8 - header_length;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw Error(file + ": __metadata__ is not a JSON object");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) throw Error(file + ": __metadata__ value '" + key + "' is not a string");
        result.metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    result.index_[name] = result.tensors_.size();
    result.tensors_.push_back(tensor_info(name, entry, data_size, file));
  }
  check_no_overlap(result.tensors_, file);
  result.mapping_ = std::move(mapping);
  return result;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto found = index_.find(name);
  if (found == index_.end()) throw Error(path_.string() + ": no tensor named '" + name + "'");
  return tensors_[found->second];
}

at::Tensor SafetensorsFile::tensor(const std::string& name,
                                   std::optional<at::ScalarType> convert_to) const {
  const TensorInfo& ti = info(name);
  auto* data = const_cast<uint8_t*>(data_area_ + ti.data_begin);
  const auto options = at::TensorOptions().dtype(ti.scalar_type);
  const size_t element_size = at::elementSize(ti.scalar_type);

  at::Tensor view;
  if (reinterpret_cast<uintptr_t>(data) % element_size == 0) {
    // The deleter holds the mapping: it is unmapped only when the last viewing tensor is gone.
    auto keep_alive = mapping_;
    view = at::from_blob(data, ti.shape, [keep_alive](void*) {}, options);
  } else {
    // safetensors does not promise aligned offsets, and kernels may assume alignment: copy.
    view = at::empty(ti.shape, options);
    // An empty tensor has no data pointer, and memcpy's pointers must not be null even for 0 bytes.
    if (ti.data_end > ti.data_begin) std::memcpy(view.data_ptr(), data, ti.data_end - ti.data_begin);
  }
  if (convert_to && *convert_to != ti.scalar_type) return view.to(*convert_to);
  return view;
}

}  // namespace diffuse::io
