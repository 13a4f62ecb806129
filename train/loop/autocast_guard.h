// train.precision bf16_autocast on CPU: float32 weights, CPU autocast runs matmuls in bfloat16.
// Scoped to the training forward/backward passes, so evaluation and export outside the guard see
// plain float32. The device-aware form is AutocastScope (common/device.h).
#pragma once

#include "common/device.h"

namespace tailor {

class AutocastGuard : public AutocastScope {
 public:
  explicit AutocastGuard(bool enabled) : AutocastScope(enabled, c10::Device(c10::kCPU)) {}
};

}  // namespace tailor
