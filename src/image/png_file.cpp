#include "image/png_file.h"

#include <png.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>

#include "util/atomic_file.h"
#include "util/error.h"
#include "util/utf8.h"

namespace diffuse::image {

namespace fs = std::filesystem;

namespace {

// ---- Text encodings: tEXt holds Latin-1, iTXt UTF-8; our strings are UTF-8. ---------------------

std::string latin1_to_utf8(const std::string& latin1) {
  std::string utf8;
  for (const char c : latin1) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x80) {
      utf8 += c;
    } else {
      utf8 += static_cast<char>(0xC0 | (byte >> 6));
      utf8 += static_cast<char>(0x80 | (byte & 0x3F));
    }
  }
  return utf8;
}

struct EncodedText {
  std::string key;
  std::string value;  // Latin-1 bytes for tEXt, UTF-8 for iTXt
  bool international;
};

EncodedText encode_text_chunk(const fs::path& path, const std::string& key, const std::string& value) {
  bool key_ok = !key.empty() && key.size() <= 79;
  for (const char c : key) key_ok = key_ok && c >= 0x20 && c <= 0x7E;
  if (!key_ok) throw Error(path.string() + ": PNG text key '" + key + "' must be 1-79 printable ASCII characters");
  const auto points = decode_utf8(value);
  if (!points) throw Error(path.string() + ": PNG text '" + key + "' is not valid UTF-8");
  EncodedText encoded{key, "", false};
  for (const char32_t point : *points) {
    if (point == 0) throw Error(path.string() + ": PNG text '" + key + "' contains a NUL character");
    encoded.international = encoded.international || point > 0xFF;
    encoded.value += static_cast<char>(point);  // the Latin-1 byte, used only if all points fit
  }
  if (encoded.international) encoded.value = value;
  return encoded;
}

// ---- libpng plumbing ---------------------------------------------------------------------------
// libpng reports errors by longjmp. The functions holding a setjmp keep no C++ objects with
// destructors in their frames (a longjmp would skip them); buffers are owned by their callers.

struct ErrorMessage {
  char text[256] = "";
};

void on_png_error(png_structp png, png_const_charp message) {
  auto* error = static_cast<ErrorMessage*>(png_get_error_ptr(png));
  std::snprintf(error->text, sizeof error->text, "%s", message);
  png_longjmp(png, 1);
}

void on_png_warning(png_structp, png_const_charp) {}  // e.g. a bad ancillary chunk: still readable

struct WriteJob {
  FILE* file;
  png_uint_32 width, height;
  int color_type;
  png_bytepp rows;
  png_textp texts;
  int text_count;
};

bool write_png_stream(const WriteJob& job, ErrorMessage* error) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, error, on_png_error, on_png_warning);
  if (png == nullptr) return false;
  png_infop info = png_create_info_struct(png);
  if (info == nullptr || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, job.file);
  png_set_IHDR(png, info, job.width, job.height, 8, job.color_type, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (job.text_count > 0) png_set_text(png, info, job.texts, job.text_count);
  png_write_info(png, info);
  png_write_image(png, job.rows);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  return true;
}

struct ReadStructs {
  png_structp png = nullptr;
  png_infop info = nullptr;
  png_infop end_info = nullptr;
  ~ReadStructs() { png_destroy_read_struct(&png, &info, &end_info); }
};

struct Header {
  png_uint_32 width, height;
  int channels;
  size_t row_bytes;
};

bool read_png_header(png_structp png, png_infop info, FILE* file, Header* header) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_init_io(png, file);
  png_set_sig_bytes(png, 8);
  png_read_info(png, info);
  const int color_type = png_get_color_type(png, info);
  const int bit_depth = png_get_bit_depth(png, info);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (bit_depth == 16) png_set_scale_16(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  header->width = png_get_image_width(png, info);
  header->height = png_get_image_height(png, info);
  header->channels = png_get_channels(png, info);
  header->row_bytes = png_get_rowbytes(png, info);
  return true;
}

bool read_png_body(png_structp png, png_infop end_info, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  png_read_end(png, end_info);
  return true;
}

void collect_text(png_structp png, png_infop info, std::map<std::string, std::string>& out) {
  png_textp texts = nullptr;
  const int count = png_get_text(png, info, &texts, nullptr);
  for (int i = 0; i < count; ++i) {
    const std::string value = texts[i].text ? texts[i].text : "";
    const bool international = texts[i].compression >= PNG_ITXT_COMPRESSION_NONE;
    out[latin1_to_utf8(texts[i].key)] = international ? value : latin1_to_utf8(value);
  }
}

}  // namespace

namespace {

// Encodes `pixels` into an open stream; throws naming `name` for a bad image or a libpng error.
void write_png_to(FILE* file, const std::string& name, const at::Tensor& pixels,
                  const std::vector<std::pair<std::string, std::string>>& text_chunks) {
  if (pixels.dim() != 3 || pixels.scalar_type() != at::kByte || pixels.size(0) < 1 || pixels.size(1) < 1 ||
      (pixels.size(2) != 1 && pixels.size(2) != 3 && pixels.size(2) != 4)) {
    throw Error(name + ": image to write must be uint8 [H, W, 1|3|4], got " + std::string(pixels.toString()) + " " +
                c10::str(pixels.sizes()));
  }
  if (pixels.size(0) > PNG_UINT_31_MAX || pixels.size(1) > PNG_UINT_31_MAX) throw Error(name + ": image too large");
  const at::Tensor data = pixels.to(at::kCPU).contiguous();
  const int64_t height = data.size(0), width = data.size(1), channels = data.size(2);

  std::vector<EncodedText> encoded;
  for (const auto& [key, value] : text_chunks) encoded.push_back(encode_text_chunk(fs::path(name), key, value));
  std::vector<png_text> texts(encoded.size());
  for (size_t i = 0; i < encoded.size(); ++i) {
    texts[i] = png_text{};
    texts[i].compression = encoded[i].international ? PNG_ITXT_COMPRESSION_NONE : PNG_TEXT_COMPRESSION_NONE;
    texts[i].key = encoded[i].key.data();
    texts[i].text = encoded[i].value.data();
    texts[i].text_length = encoded[i].international ? 0 : encoded[i].value.size();
    texts[i].itxt_length = encoded[i].international ? encoded[i].value.size() : 0;
  }
  std::vector<png_bytep> rows(height);
  auto* base = data.data_ptr<uint8_t>();
  for (int64_t y = 0; y < height; ++y) rows[y] = base + y * width * channels;

  const int color_type = channels == 1 ? PNG_COLOR_TYPE_GRAY : channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGBA;
  const WriteJob job{file, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), color_type,
                     rows.data(), texts.data(), static_cast<int>(texts.size())};
  ErrorMessage error;
  if (!write_png_stream(job, &error)) throw Error(name + ": PNG error: " + error.text);
}

}  // namespace

void write_png(const fs::path& path, const at::Tensor& pixels,
               const std::vector<std::pair<std::string, std::string>>& text_chunks) {
  const std::string name = path.string();
  write_file_atomically(path, [&](const fs::path& temp) {
    FILE* file = std::fopen(temp.c_str(), "wb");
    if (file == nullptr) throw Error(name + ": cannot write (" + std::strerror(errno) + ")");
    try {
      write_png_to(file, name, pixels, text_chunks);
    } catch (...) {
      std::fclose(file);
      throw;
    }
    const bool flushed = std::fflush(file) == 0 && !std::ferror(file);
    const int write_errno = errno;
    const bool closed = std::fclose(file) == 0;
    if (!flushed || !closed) throw Error(name + ": cannot write (" + std::strerror(write_errno) + ")");
  });
}

std::string encode_png(const at::Tensor& pixels, const std::vector<std::pair<std::string, std::string>>& text_chunks) {
  char* buffer = nullptr;
  size_t size = 0;
  FILE* stream = ::open_memstream(&buffer, &size);
  if (stream == nullptr) throw Error(std::string("PNG in memory: cannot open a stream (") + std::strerror(errno) + ")");
  try {
    write_png_to(stream, "PNG in memory", pixels, text_chunks);
  } catch (...) {
    std::fclose(stream);
    std::free(buffer);
    throw;
  }
  std::fclose(stream);
  std::string bytes(buffer, size);
  std::free(buffer);
  return bytes;
}

namespace {

// The stream's length in bytes, or -1 when it cannot be told (not seekable). Leaves the position.
long stream_size(FILE* file) {
  const long at = std::ftell(file);
  if (at < 0 || std::fseek(file, 0, SEEK_END) != 0) return -1;
  const long end = std::ftell(file);
  std::fseek(file, at, SEEK_SET);
  return end;
}

// libpng allocates a text chunk's whole declared length before reading it, so a 100-byte file could
// make it ask for 2 GB: a chunk that claims more bytes than the stream holds is refused first. From
// just after the signature; leaves the stream there.
bool chunks_fit(FILE* file) {
  const long start = std::ftell(file);
  const long end = stream_size(file);
  if (start < 0 || end < 0) return true;  // not seekable: libpng alone decides
  bool fit = true;
  for (long at = start; end >= 0 && at + 8 <= end;) {
    unsigned char head[8];
    if (std::fseek(file, at, SEEK_SET) != 0 || std::fread(head, 1, 8, file) != 8) break;
    const uint64_t length = uint64_t{head[0]} << 24 | uint64_t{head[1]} << 16 | uint64_t{head[2]} << 8 | head[3];
    if (length > static_cast<uint64_t>(end - at - 8)) {
      fit = false;
      break;
    }
    at += static_cast<long>(12 + length);
  }
  std::fseek(file, start, SEEK_SET);
  return fit;
}

PngImage read_png_from(FILE* file, const std::string& name) {
  png_byte signature[8] = {};
  if (std::fread(signature, 1, 8, file) != 8 || png_sig_cmp(signature, 0, 8) != 0) {
    throw Error(name + ": not a PNG file");
  }
  if (!chunks_fit(file)) throw Error(name + ": damaged PNG (a chunk runs past the end of the file; truncated?)");

  ErrorMessage error;
  ReadStructs structs;
  structs.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &error, on_png_error, on_png_warning);
  if (structs.png == nullptr) throw Error(name + ": cannot start libpng");
  structs.info = png_create_info_struct(structs.png);
  structs.end_info = png_create_info_struct(structs.png);
  if (structs.info == nullptr || structs.end_info == nullptr) throw Error(name + ": cannot start libpng");

  Header header{};
  if (!read_png_header(structs.png, structs.info, file, &header)) {
    throw Error(name + ": damaged PNG (" + error.text + ")");
  }
  // libpng's own limit is a million pixels a side; this keeps a hostile header from asking for
  // terabytes before a single pixel has been read.
  constexpr uint64_t kMaxBytes = 1ull << 32;
  const uint64_t bytes = uint64_t{header.height} * header.row_bytes;
  // Deflate packs at most 1032 bytes into one and a pixel grows at most 32-fold here (1-bit palette
  // indices to RGBA): an image larger than that bound cannot be in the file, so its pixels are never
  // allocated.
  const long size = stream_size(file);
  if (size >= 0 && bytes > uint64_t(size) * 1032 * 32 + (1u << 20)) {
    throw Error(name + ": damaged PNG (" + std::to_string(header.width) + "x" + std::to_string(header.height) +
                " pixels cannot fit in " + std::to_string(size) + " bytes)");
  }
  if (header.row_bytes != uint64_t{header.width} * header.channels || bytes > kMaxBytes) {
    throw Error(name + ": unsupported PNG size " + std::to_string(header.width) + "x" + std::to_string(header.height));
  }

  PngImage image;
  image.width = static_cast<int>(header.width);
  image.height = static_cast<int>(header.height);
  image.channels = header.channels;
  image.pixels = at::empty({image.height, image.width, image.channels}, at::kByte);
  std::vector<png_bytep> rows(header.height);
  for (png_uint_32 y = 0; y < header.height; ++y) rows[y] = image.pixels.data_ptr<uint8_t>() + y * header.row_bytes;
  if (!read_png_body(structs.png, structs.end_info, rows.data())) {
    throw Error(name + ": damaged PNG (" + error.text + ")");
  }
  collect_text(structs.png, structs.info, image.text);
  collect_text(structs.png, structs.end_info, image.text);
  return image;
}


}  // namespace

PngImage read_png(const fs::path& path) {
  const std::string name = path.string();
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw Error(name + ": cannot open (" + std::strerror(errno) + ")");
  return read_png_from(file.get(), name);
}

PngImage decode_png(const std::string& bytes, const std::string& name) {
  if (bytes.empty()) throw Error(name + ": not a PNG file (empty)");
  std::unique_ptr<FILE, int (*)(FILE*)> file(::fmemopen(const_cast<char*>(bytes.data()), bytes.size(), "rb"), &std::fclose);
  if (!file) throw Error(name + ": cannot read (" + std::strerror(errno) + ")");
  return read_png_from(file.get(), name);
}

}  // namespace diffuse::image
