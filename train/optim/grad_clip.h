// Global gradient-norm clipping with torch.nn.utils.clip_grad_norm_ semantics (L2 norm):
//   total = sqrt(sum over tensors of sum(g^2)),  coef = max_norm / (total + 1e-6),
//   every grad *= coef when coef < 1.
#pragma once

#include <vector>

#include <ATen/Tensor.h>

namespace tailor {

// The L2 norm of the concatenation of all defined .grad()s of `params` (tensors without a grad
// are skipped). Squares are summed in float64 (each tensor is converted chunk by chunk), so the
// result does not depend on how the gradients are split into tensors beyond float64 rounding.
double grad_norm(const std::vector<at::Tensor>& params);

// Clips in place and returns the pre-clip norm. A non-finite norm (inf/nan gradients) is
// returned without touching the gradients, so the caller can report it and skip the step
// (torch would scale every gradient by nan). max_norm must be > 0.
double clip_grad_norm_(const std::vector<at::Tensor>& params, double max_norm);

}  // namespace tailor
