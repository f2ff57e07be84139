#include "util/format.h"

#include <sstream>

namespace diffuse {

std::string format_number(double value) {
  std::ostringstream out;
  out.precision(6);
  out << value;
  return out.str();
}

}  // namespace diffuse
