// Helpers shared by the fuzz targets (scripts/fuzz.sh, docs/fuzzing.md): an invariant check that
// counts as a finding, and a scratch folder in memory for readers that only take a path.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace fuzz {

// A broken invariant is a finding, reported by libFuzzer like a crash (with the input saved).
#define FUZZ_CHECK(condition)                                                          \
  do {                                                                                 \
    if (!(condition)) {                                                                \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)

// $DIFFUSE_FUZZ_SCRATCH (scripts/fuzz.sh sets and removes it), else /dev/shm/diffuse-fuzz-<pid>,
// removed at exit; memory-backed so a file per run costs no disk writes.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const char* given = std::getenv("DIFFUSE_FUZZ_SCRATCH");
    std::filesystem::path path = given != nullptr && *given != '\0'
                                     ? std::filesystem::path(given)
                                     : std::filesystem::path("/dev/shm") / ("diffuse-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
    if (given == nullptr || *given == '\0') {
      std::atexit([] {
        std::error_code ignored;
        std::filesystem::remove_all(std::filesystem::path("/dev/shm") / ("diffuse-fuzz-" + std::to_string(::getpid())),
                                    ignored);
      });
    }
    return path;
  }();
  return dir;
}

inline void write_file(const std::filesystem::path& path, const uint8_t* data, size_t size) {
  FILE* file = std::fopen(path.c_str(), "wb");
  FUZZ_CHECK(file != nullptr);
  FUZZ_CHECK(size == 0 || std::fwrite(data, 1, size, file) == size);
  FUZZ_CHECK(std::fclose(file) == 0);
}

inline void remove_file(const std::filesystem::path& path) {
  std::error_code ignored;
  std::filesystem::remove(path, ignored);
}

inline volatile uint8_t touch_sink;

// Reads every byte, so that ASan sees an access outside what the reader promised.
inline void touch(const void* data, size_t size) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  uint8_t sum = 0;
  for (size_t i = 0; i < size; ++i) sum = static_cast<uint8_t>(sum + bytes[i]);
  touch_sink = sum;
}

}  // namespace fuzz
