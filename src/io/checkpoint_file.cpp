#include "io/checkpoint_file.h"

#include <cstring>

#include "io/safetensors.h"
#include "io/zip_archive.h"
#include "util/error.h"

namespace diffuse::io {

namespace fs = std::filesystem;
using pickle::Kind;
using pickle::Ref;

namespace {

struct StorageType {
  const char* name;
  at::ScalarType type;
};

constexpr StorageType kStorageTypes[] = {
    {"HalfStorage", at::kHalf},   {"FloatStorage", at::kFloat}, {"DoubleStorage", at::kDouble},
    {"BFloat16Storage", at::kBFloat16}, {"LongStorage", at::kLong}, {"IntStorage", at::kInt},
    {"ShortStorage", at::kShort}, {"CharStorage", at::kChar},   {"ByteStorage", at::kByte},
    {"BoolStorage", at::kBool},
};

const StorageType& storage_type(const std::string& name, const std::string& where) {
  for (const auto& entry : kStorageTypes) {
    if (name == entry.name) return entry;
  }
  throw Error(where + "unknown storage type " + name);
}

// The first pickle of a legacy file: the integer 0x1950a86a20f9469cfc6c, as LONG1 bytes.
constexpr uint8_t kLegacyMagic[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
constexpr int64_t kLegacyProtocolVersion = 1001;

// bytes needed by `numel` elements of `type`, or nullopt when that overflows.
std::optional<uint64_t> storage_bytes(int64_t numel, at::ScalarType type) {
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(numel), static_cast<uint64_t>(at::elementSize(type)), &bytes)) {
    return std::nullopt;
  }
  return bytes;
}

}  // namespace

bool is_checkpoint_path(const fs::path& path) {
  const auto extension = path.extension();
  return extension == ".ckpt" || extension == ".pt" || extension == ".pth" || extension == ".bin";
}

CheckpointFile CheckpointFile::open(const fs::path& path) {
  const std::string where = path.string() + ": ";
  CheckpointFile file;
  file.path_ = path;
  file.mapping_ = MappedFile::open(path);
  file.document_ = std::make_shared<pickle::Document>();
  const size_t size = file.mapping_->size();
  if (size == 0) throw Error(where + "empty file (0 bytes): not a torch checkpoint");
  if (looks_like_zip(file.mapping_->data(), size)) {
    file.format_ = "zip";
    file.read_zip(where);
  } else if (size >= 2 && file.mapping_->data()[0] == 0x80) {
    file.format_ = "legacy";
    file.read_legacy(where);
  } else {
    throw Error(where + "not a torch checkpoint (neither a zip archive nor a pickle)");
  }
  file.index_state_dict(where);
  return file;
}

void CheckpointFile::read_zip(const std::string& where) {
  const uint8_t* bytes = mapping_->data();
  const auto records = read_zip_directory(bytes, mapping_->size(), where);
  // torch.save puts every record under one folder named after the file: <folder>/data.pkl.
  std::string prefix;
  const ZipRecord* pickle_record = nullptr;
  for (const auto& [name, record] : records) {
    const auto slash = name.find('/');
    if (name == "data.pkl" || (slash != std::string::npos && name.substr(slash + 1) == "data.pkl")) {
      if (pickle_record) throw Error(where + "more than one data.pkl record");
      prefix = name.substr(0, name.size() - std::string("data.pkl").size());
      pickle_record = &record;
    }
  }
  if (!pickle_record) throw Error(where + "no data.pkl record: not a torch checkpoint (a zip, but not torch.save's)");
  if (const auto order = records.find(prefix + "byteorder"); order != records.end()) {
    const std::string text(reinterpret_cast<const char*>(bytes + order->second.offset), order->second.size);
    if (text != "little") throw Error(where + "byteorder '" + text + "': only little-endian checkpoints are read");
  }
  document_->root = pickle::read_pickle(bytes + pickle_record->offset, pickle_record->size, where + "data.pkl: ",
                                        *document_);

  storage_bytes_.resize(document_->storages.size());
  for (size_t i = 0; i < document_->storages.size(); ++i) {
    const auto& storage = document_->storages[i];
    const auto& type = storage_type(storage.type, where);
    const std::string name = prefix + "data/" + storage.key;
    const auto found = records.find(name);
    if (found == records.end()) throw Error(where + "missing record data/" + storage.key + " (storage '" + storage.key + "')");
    const auto needed = storage_bytes(storage.numel, type.type);
    if (!needed || *needed != found->second.size) {
      throw Error(where + "storage record data/" + storage.key + " holds " + std::to_string(found->second.size) +
                  " bytes, but its " + std::to_string(storage.numel) + " " + storage.type + " elements need " +
                  (needed ? std::to_string(*needed) : std::string("more than 2^64")));
    }
    storage_bytes_[i] = {bytes + found->second.offset, type.type};
  }
}

void CheckpointFile::read_legacy(const std::string& where) {
  const uint8_t* bytes = mapping_->data();
  const size_t size = mapping_->size();
  size_t at = 0;
  const auto next_pickle = [&](const char* what, pickle::Document& into) {
    size_t used = 0;
    const Ref ref = pickle::read_pickle(bytes + at, size - at, where + what + " pickle (byte " + std::to_string(at) + "): ",
                                        into, &used);
    at += used;
    return ref;
  };
  // Every pickle of the file is untrusted, the magic number's too.
  pickle::Document header;
  const Ref magic = next_pickle("magic-number", header);
  if (header.at(magic).kind != Kind::BigInt ||
      header.at(magic).text != std::string(reinterpret_cast<const char*>(kLegacyMagic), sizeof kLegacyMagic)) {
    throw Error(where + "not a torch checkpoint (the first pickle is " + header.describe(magic) +
                ", not torch's magic number)");
  }
  const Ref protocol = next_pickle("protocol-version", header);
  if (header.at(protocol).kind != Kind::Int || header.at(protocol).integer != kLegacyProtocolVersion) {
    throw Error(where + "legacy protocol version is " + header.describe(protocol) + ", not 1001");
  }
  const Ref sys_info = next_pickle("sys_info", header);
  if (const auto little = header.get(sys_info, "little_endian"); little && header.at(*little).integer != 1) {
    throw Error(where + "written on a big-endian machine: only little-endian checkpoints are read");
  }
  document_->root = next_pickle("main", *document_);
  const Ref keys = next_pickle("storage-keys", header);
  if (header.at(keys).kind != Kind::List) throw Error(where + "the storage-key pickle is " + header.describe(keys) + ", not a list");

  std::map<std::string, size_t> storage_of_key;
  for (size_t i = 0; i < document_->storages.size(); ++i) storage_of_key[document_->storages[i].key] = i;
  storage_bytes_.resize(document_->storages.size());
  std::vector<bool> seen(document_->storages.size(), false);
  // After the keys: for each, its element count (int64) and the raw elements.
  for (const Ref key_ref : header.at(keys).items) {
    const auto& key = header.at(key_ref);
    if (key.kind != Kind::String) throw Error(where + "a storage key is " + header.describe(key_ref));
    const auto found = storage_of_key.find(key.text);
    if (found == storage_of_key.end()) throw Error(where + "storage key '" + key.text + "' is used by no tensor");
    const auto& storage = document_->storages[found->second];
    const auto& type = storage_type(storage.type, where);
    if (seen[found->second]) throw Error(where + "storage '" + key.text + "' is stored twice");
    seen[found->second] = true;
    if (size - at < 8) throw Error(where + "unexpected end of file in storage '" + key.text + "' (truncated)");
    int64_t numel = 0;
    std::memcpy(&numel, bytes + at, 8);
    at += 8;
    if (numel != storage.numel) {
      throw Error(where + "storage '" + key.text + "' holds " + std::to_string(numel) + " elements, its tensors say " +
                  std::to_string(storage.numel));
    }
    const auto needed = storage_bytes(storage.numel, type.type);
    if (!needed || *needed > size - at) {
      throw Error(where + "unexpected end of file in storage '" + key.text + "' (" + std::to_string(size - at) +
                  " bytes left; truncated)");
    }
    storage_bytes_[found->second] = {bytes + at, type.type};
    at += static_cast<size_t>(*needed);
  }
  for (size_t i = 0; i < seen.size(); ++i) {
    if (!seen[i]) throw Error(where + "storage '" + document_->storages[i].key + "' has no data in the file");
  }
}

void CheckpointFile::index_state_dict(const std::string& where) {
  const auto& doc = *document_;
  Ref dict = doc.root;
  if (const auto state_dict = doc.get(doc.root, "state_dict"); state_dict && doc.at(*state_dict).kind == Kind::Dict) {
    dict = *state_dict;
  }
  const auto& value = doc.at(dict);
  if (value.kind != Kind::Dict) throw Error(where + "holds " + doc.describe(dict) + ", not a dict of tensors");
  for (size_t i = 0; i + 1 < value.items.size(); i += 2) {
    const auto& key = doc.at(value.items[i]);
    const Ref item = value.items[i + 1];
    if (key.kind != Kind::String || doc.at(item).kind != Kind::Tensor) continue;
    const auto& record = doc.tensors[doc.at(item).detail];
    const auto& storage = doc.storages[doc.at(record.storage).detail];
    const auto& type = storage_type(storage.type, where);
    if (!index_.emplace(key.text, tensors_.size()).second) throw Error(where + "tensor '" + key.text + "' appears twice");
    TensorInfo info;
    info.name = key.text;
    info.dtype = safetensors_dtype_name(type.type);  // every storage type has a safetensors name
    info.scalar_type = type.type;
    info.shape = record.shape;
    tensors_.push_back(std::move(info));
    tensor_values_.push_back(item);
  }
}

const TensorInfo& CheckpointFile::info(const std::string& name) const {
  const auto found = index_.find(name);
  if (found == index_.end()) throw Error(path_.string() + ": no tensor named '" + name + "'");
  return tensors_[found->second];
}

at::Tensor CheckpointFile::tensor(const std::string& name, std::optional<at::ScalarType> convert_to) const {
  const auto found = index_.find(name);
  if (found == index_.end()) throw Error(path_.string() + ": no tensor named '" + name + "'");
  at::Tensor view = tensor_of(tensor_values_[found->second]);
  if (convert_to && *convert_to != view.scalar_type()) return view.to(*convert_to);
  return view;
}

at::Tensor CheckpointFile::tensor_of(Ref value) const {
  const auto& doc = *document_;
  if (doc.at(value).kind != Kind::Tensor) throw Error(path_.string() + ": " + doc.describe(value) + " is not a tensor");
  const auto& record = doc.tensors[doc.at(value).detail];
  const size_t storage_index = doc.at(record.storage).detail;
  const auto& storage = doc.storages[storage_index];
  const auto& bytes = storage_bytes_[storage_index];
  const auto options = at::TensorOptions().dtype(bytes.type);
  at::Tensor whole;
  if (reinterpret_cast<uintptr_t>(bytes.data) % at::elementSize(bytes.type) == 0) {
    auto keep_alive = mapping_;
    whole = at::from_blob(const_cast<uint8_t*>(bytes.data), {storage.numel}, [keep_alive](void*) {}, options);
  } else {
    // Legacy files put storages at any byte: kernels may assume aligned elements, so copy.
    whole = at::empty({storage.numel}, options);
    std::memcpy(whole.data_ptr(), bytes.data, static_cast<size_t>(storage.numel) * at::elementSize(bytes.type));
  }
  // The reader checked that offset + extent fits the storage.
  at::Tensor view = whole.as_strided(record.shape, record.stride, record.storage_offset);
  return view.is_contiguous() ? view : view.contiguous();
}

std::vector<std::pair<std::string, at::Tensor>> CheckpointFile::tensors_in(Ref dict) const {
  const auto& doc = *document_;
  std::vector<std::pair<std::string, at::Tensor>> out;
  const auto& value = doc.at(dict);
  if (value.kind != Kind::Dict) return out;
  for (size_t i = 0; i + 1 < value.items.size(); i += 2) {
    const auto& key = doc.at(value.items[i]);
    if (key.kind == Kind::String && doc.at(value.items[i + 1]).kind == Kind::Tensor) {
      out.emplace_back(key.text, tensor_of(value.items[i + 1]));
    }
  }
  return out;
}

}  // namespace diffuse::io
