#pragma once
#include <stdexcept>
#include <string>

namespace diffuse {

// Every user-facing failure: the message names the file, tensor or parameter at fault.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A bad value for one parameter of a request or option set. `parameter` is the library's name for
// it (width, cfg_scale, precision): each front end says it in its own words (`--cfg-scale` on the
// command line, the JSON field `cfg_scale` in the server), so the layers below never name flags.
// what() reads "cfg_scale: <problem>".
class InvalidParameter : public Error {
 public:
  InvalidParameter(std::string parameter, std::string problem)
      : Error(parameter + ": " + problem), parameter_(std::move(parameter)), problem_(std::move(problem)) {}
  const std::string& parameter() const { return parameter_; }
  const std::string& problem() const { return problem_; }

 private:
  std::string parameter_;
  std::string problem_;
};

}  // namespace diffuse
