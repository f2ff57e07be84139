#pragma once
// Numbers as people typed them, for messages and the PNG parameters text.
#include <string>

namespace diffuse {

// Up to 6 significant digits, without trailing zeros: 7 -> "7", 7.5 -> "7.5", 0.75 -> "0.75".
std::string format_number(double value);

}  // namespace diffuse
