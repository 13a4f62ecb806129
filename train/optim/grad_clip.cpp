#include "train/optim/grad_clip.h"

#include <cmath>

#include <torch/torch.h>

#include "common/error.h"

namespace tailor {

namespace {

// Chunks bound the float64 temporary to 8 MB however large a tensor is (wte: 38.6M elements).
constexpr int64_t kClipChunk = int64_t{1} << 20;

}  // namespace

double grad_norm(const std::vector<at::Tensor>& params) {
  at::NoGradGuard no_grad;
  at::Tensor total;  // float64 scalar on the first grad's device; one sync at the end
  for (const auto& p : params) {
    const at::Tensor& g = p.grad();
    if (!g.defined() || g.numel() == 0) continue;
    const at::Tensor flat = g.reshape({-1});
    for (int64_t begin = 0; begin < flat.numel(); begin += kClipChunk) {
      const at::Tensor chunk = flat.narrow(0, begin, std::min(kClipChunk, flat.numel() - begin));
      const at::Tensor c64 = chunk.to(at::kDouble);
      at::Tensor sum_sq = at::dot(c64, c64);
      if (!total.defined()) {
        total = sum_sq;
      } else {
        total.add_(sum_sq.to(total.device()));
      }
    }
  }
  if (!total.defined()) return 0.0;
  return std::sqrt(total.item<double>());
}

double clip_grad_norm_(const std::vector<at::Tensor>& params, double max_norm) {
  if (!(max_norm > 0.0)) {
    throw Error("grad_clip", "max_norm must be > 0, got " + std::to_string(max_norm));
  }
  const double norm = grad_norm(params);
  if (!std::isfinite(norm)) return norm;
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    at::NoGradGuard no_grad;
    for (const auto& p : params) {
      const at::Tensor& g = p.grad();
      if (g.defined()) g.mul_(coef);
    }
  }
  return norm;
}

}  // namespace tailor
