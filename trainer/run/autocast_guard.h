// train.precision bf16_autocast: float32 weights, CPU autocast runs matmuls in bfloat16. Scoped to
// the training forward/backward passes, so evaluation and export outside the guard see plain
// float32. Shared by the stages.
#pragma once

#include <ATen/autocast_mode.h>

namespace tailor {

class AutocastGuard {
 public:
  explicit AutocastGuard(bool enabled) : enabled_(enabled) {
    if (!enabled_) return;
    at::autocast::set_cpu_enabled(true);
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  }
  ~AutocastGuard() {
    if (!enabled_) return;
    at::autocast::set_cpu_enabled(false);
    at::autocast::clear_cache();
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool enabled_;
};

}  // namespace tailor
