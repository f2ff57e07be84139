#pragma once
// Loading replaces every parameter, so drawing libtorch's random initial values first is waste: for
// a 1 G-parameter model, a second or more of serial random numbers. While a SkipParameterInit lives
// on a thread, the layers of models/ built there get uninitialized parameters of the right shape
// (torch::empty, in the default dtype). Training builds its modules without one.
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

}  // namespace diffuse::models
