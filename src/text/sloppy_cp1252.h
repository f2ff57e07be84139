// ftfy's "sloppy-windows-1252": Windows-1252 with its five unassigned bytes (0x81 0x8D 0x8F 0x90 0x9D)
// passing through as the Latin-1 characters of the same value, so every byte round-trips. Browsers decode
// Latin-1-labelled text this way, which is why most mojibake and C1 controls are fixed through it.
// Like ftfy's codec, byte 0x1A stands for U+FFFD (a character lost earlier), so U+001A has no byte.
#pragma once
#include <cstdint>
#include <optional>

namespace diffuse::text {

char32_t sloppy_cp1252_decode(uint8_t byte);
std::optional<uint8_t> sloppy_cp1252_encode(char32_t c);

}  // namespace diffuse::text
