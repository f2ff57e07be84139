#pragma once
#include <stdexcept>
#include <string>

namespace diffuse {

// Every user-facing failure: the message names the file, tensor or parameter at fault.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace diffuse
