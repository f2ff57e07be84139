#pragma once
// Loading replaces every parameter, so drawing libtorch's random initial values first is waste: for
// a 1 G-parameter model, a second or more of serial random numbers. While a SkipParameterInit lives
// on a thread, the layers of models/ built there get uninitialized parameters of the right shape
// (torch::empty, in the default dtype). Training builds its modules without one.
#include <c10/core/DefaultDtype.h>
#include <c10/core/ScalarType.h>
#include <c10/util/typeid.h>

namespace diffuse::models {

class SkipParameterInit {
 public:
  SkipParameterInit() : previous_(active_) { active_ = true; }
  ~SkipParameterInit() { active_ = previous_; }
  SkipParameterInit(const SkipParameterInit&) = delete;
  SkipParameterInit& operator=(const SkipParameterInit&) = delete;

  static bool active() { return active_; }

 private:
  bool previous_;
  static inline thread_local bool active_ = false;
};

// A module to load weights into: its parameters made directly in `dtype` (no fp32 copy of a bf16
// model, even transiently) and left uninitialized. The default dtype is restored however it ends.
template <typename Module, typename Config>
Module make_for_loading(const Config& config, at::ScalarType dtype) {
  struct DefaultDtype {
    caffe2::TypeMeta previous = c10::get_default_dtype();
    explicit DefaultDtype(at::ScalarType type) { c10::set_default_dtype(caffe2::TypeMeta::fromScalarType(type)); }
    ~DefaultDtype() { c10::set_default_dtype(previous); }
  } in_type(dtype);
  const SkipParameterInit from_file;
  return Module(config);
}

}  // namespace diffuse::models
