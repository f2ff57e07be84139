#include "image/animated_png.h"

#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <string>

#include "image/png_file.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace diffuse::image {

namespace fs = std::filesystem;

namespace {

const std::string kSignature("\x89PNG\r\n\x1a\n", 8);

void put_u32(std::string& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((value >> shift) & 0xFF);
}
void put_u16(std::string& out, uint32_t value) {
  out += static_cast<char>((value >> 8) & 0xFF);
  out += static_cast<char>(value & 0xFF);
}
uint32_t get_u32(const std::string& bytes, size_t at) {
  uint32_t value = 0;
  for (size_t i = 0; i < 4; ++i) value = (value << 8) | static_cast<unsigned char>(bytes[at + i]);
  return value;
}
uint32_t get_u16(const std::string& bytes, size_t at) {
  return (static_cast<unsigned char>(bytes[at]) << 8) | static_cast<unsigned char>(bytes[at + 1]);
}

void put_chunk(std::string& out, const char* type, const std::string& data) {
  put_u32(out, static_cast<uint32_t>(data.size()));
  const std::string typed = std::string(type, 4) + data;
  out += typed;
  put_u32(out, static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(typed.data()),
                                            static_cast<uInt>(typed.size()))));
}

// Rows of 8-bit RGB, each behind filter byte 0 (none), deflated: a frame's image data.
std::string deflate_frame(const fs::path& path, const at::Tensor& frame) {
  const auto pixels = frame.contiguous();
  const int64_t height = pixels.size(0), row_bytes = pixels.size(1) * 3;
  std::string raw;
  raw.reserve(static_cast<size_t>(height * (row_bytes + 1)));
  const auto* data = reinterpret_cast<const char*>(pixels.data_ptr<uint8_t>());
  for (int64_t y = 0; y < height; ++y) {
    raw += '\0';
    raw.append(data + y * row_bytes, static_cast<size_t>(row_bytes));
  }
  uLongf size = compressBound(static_cast<uLong>(raw.size()));
  std::string packed(size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(packed.data()), &size, reinterpret_cast<const Bytef*>(raw.data()),
                static_cast<uLong>(raw.size()), 6) != Z_OK) {
    throw Error(path.string() + ": cannot compress an animation frame");
  }
  packed.resize(size);
  return packed;
}

std::string frame_control(uint32_t sequence, const at::Tensor& frame, int delay_ms) {
  std::string fctl;
  put_u32(fctl, sequence);
  put_u32(fctl, static_cast<uint32_t>(frame.size(1)));
  put_u32(fctl, static_cast<uint32_t>(frame.size(0)));
  put_u32(fctl, 0);  // x offset
  put_u32(fctl, 0);  // y offset
  put_u16(fctl, static_cast<uint32_t>(delay_ms));
  put_u16(fctl, 1000);  // delay in milliseconds
  fctl += '\0';         // dispose: none (every frame covers the whole canvas)
  fctl += '\0';         // blend: source
  return fctl;
}

// A unique scratch file name: each frame is decoded by writing it as a one-frame PNG.
fs::path scratch_file(const fs::path& name) {
  static std::atomic<int> counter{0};
  auto scratch = fs::temp_directory_path() / name.filename();
  scratch += ".frame-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
  return scratch;
}

}  // namespace

void write_animated_png(const fs::path& path, const std::vector<at::Tensor>& frames, int frame_ms,
                        int last_frame_ms) {
  if (frames.empty()) throw Error(path.string() + ": an animation needs at least one frame");
  for (const auto& frame : frames) {
    if (frame.dim() != 3 || frame.size(2) != 3 || frame.scalar_type() != at::kByte ||
        frame.sizes() != frames[0].sizes()) {
      throw Error(path.string() + ": animation frames must all be uint8 [H, W, 3] of one size, got " +
                  c10::str(frame.sizes()));
    }
  }
  for (const int ms : {frame_ms, last_frame_ms}) {
    if (ms < 0 || ms > 65535) throw Error(path.string() + ": frame delay " + std::to_string(ms) + " ms out of range");
  }
  std::string png = kSignature;
  std::string header;
  put_u32(header, static_cast<uint32_t>(frames[0].size(1)));
  put_u32(header, static_cast<uint32_t>(frames[0].size(0)));
  header += std::string("\x08\x02\x00\x00\x00", 5);  // 8 bits, RGB, deflate, adaptive filtering, no interlace
  put_chunk(png, "IHDR", header);
  std::string animation;
  put_u32(animation, static_cast<uint32_t>(frames.size()));
  put_u32(animation, 0);  // loop forever
  put_chunk(png, "acTL", animation);
  uint32_t sequence = 0;
  for (size_t i = 0; i < frames.size(); ++i) {
    const int delay = i + 1 == frames.size() ? last_frame_ms : frame_ms;
    put_chunk(png, "fcTL", frame_control(sequence++, frames[i], delay));
    const auto data = deflate_frame(path, frames[i]);
    if (i == 0) {
      put_chunk(png, "IDAT", data);  // the first frame doubles as the still image
    } else {
      std::string fdat;
      put_u32(fdat, sequence++);
      put_chunk(png, "fdAT", fdat + data);
    }
  }
  put_chunk(png, "IEND", "");

  write_file_atomically(path, [&](const fs::path& temporary) {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(png.data(), static_cast<std::streamsize>(png.size()));
    if (!out.flush()) throw Error(path.string() + ": cannot write the animation");
  });
}

AnimatedPng read_animated_png(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.compare(0, 8, kSignature) != 0) throw Error(path.string() + ": not a PNG file");

  struct Frame {
    std::string header;  // IHDR with the frame's own size
    std::string data;    // concatenated image data
    int delay_ms = 0;
  };
  AnimatedPng result;
  std::string image_header, palette_chunks;
  std::vector<Frame> frames;
  for (size_t at = 8; at + 12 <= bytes.size();) {
    const uint32_t length = get_u32(bytes, at);
    if (at + 12 + length > bytes.size()) throw Error(path.string() + ": truncated chunk");
    const std::string type = bytes.substr(at + 4, 4), data = bytes.substr(at + 8, length);
    at += 12 + length;
    if (type == "IHDR") {
      if (length != 13) throw Error(path.string() + ": malformed IHDR");
      image_header = data;
    } else if (type == "PLTE" || type == "tRNS") {
      put_chunk(palette_chunks, type.c_str(), data);
    } else if (type == "acTL" && length == 8) {
      result.declared_frames = static_cast<int>(get_u32(data, 0));
    } else if (type == "fcTL") {
      if (length != 26 || image_header.empty()) throw Error(path.string() + ": malformed fcTL");
      Frame frame;
      frame.header = data.substr(4, 8) + image_header.substr(8);
      const uint32_t denominator = get_u16(data, 22);
      frame.delay_ms = static_cast<int>(get_u16(data, 20) * 1000 / (denominator == 0 ? 100 : denominator));
      frames.push_back(std::move(frame));
    } else if ((type == "IDAT" || type == "fdAT") && !frames.empty()) {
      if (type == "fdAT" && length < 4) throw Error(path.string() + ": malformed fdAT");
      frames.back().data += type == "IDAT" ? data : data.substr(4);
    } else if (type == "IEND") {
      break;
    }
  }
  if (result.declared_frames == 0 || frames.empty()) throw Error(path.string() + ": not an animated PNG (no acTL/fcTL)");

  const auto temporary = scratch_file(path);
  for (const auto& frame : frames) {
    std::string png = kSignature;
    put_chunk(png, "IHDR", frame.header);
    png += palette_chunks;
    put_chunk(png, "IDAT", frame.data);
    put_chunk(png, "IEND", "");
    std::ofstream(temporary, std::ios::binary).write(png.data(), static_cast<std::streamsize>(png.size()));
    try {
      result.frames.push_back(read_png(temporary).pixels);
    } catch (const Error& e) {
      fs::remove(temporary);
      throw Error(path.string() + ": frame " + std::to_string(result.frames.size()) + " is damaged: " + e.what());
    }
    result.delays_ms.push_back(frame.delay_ms);
  }
  fs::remove(temporary);
  return result;
}

}  // namespace diffuse::image
