#include "models/generation/sampling.h"

#include <cmath>
#include <limits>
#include <string>

#include "common/error.h"
#include "common/shape_string.h"

namespace tailor {

namespace {

void check_logits(const at::Tensor& logits) {
  if (logits.dim() != 2 || logits.scalar_type() != at::kFloat) {
    throw Error("generate", "logits must be float32 [N, V], got " +
                                std::string(c10::toString(logits.scalar_type())) + " " +
                                shape_string(logits.sizes()));
  }
}

}  // namespace

at::Tensor apply_temperature(const at::Tensor& logits, double temperature) {
  check_logits(logits);
  if (!(temperature > 0) || !std::isfinite(temperature))
    throw Error("generate",
                "temperature must be a positive number, got " + std::to_string(temperature));
  return temperature == 1.0 ? logits : logits / temperature;
}

at::Tensor apply_top_k(const at::Tensor& logits, int64_t top_k) {
  check_logits(logits);
  if (top_k < 0) throw Error("generate", "top_k must be >= 0, got " + std::to_string(top_k));
  const int64_t V = logits.size(1);
  if (top_k == 0 || top_k >= V) return logits;
  const at::Tensor kth = std::get<0>(logits.topk(top_k, 1)).narrow(1, top_k - 1, 1);  // [N, 1]
  return logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
}

at::Tensor apply_top_p(const at::Tensor& logits, double top_p) {
  check_logits(logits);
  if (!(top_p > 0 && top_p <= 1))
    throw Error("generate", "top_p must be in (0, 1], got " + std::to_string(top_p));
  if (top_p == 1.0) return logits;
  const auto [sorted, order] = logits.sort(1, /*descending=*/false);
  const at::Tensor cumulative = sorted.softmax(1).cumsum(1);
  at::Tensor remove_sorted = cumulative <= static_cast<float>(1 - top_p);
  remove_sorted.narrow(1, logits.size(1) - 1, 1).fill_(false);  // keep at least the largest
  const at::Tensor remove = remove_sorted.scatter(1, order, remove_sorted);
  return logits.masked_fill(remove, -std::numeric_limits<float>::infinity());
}

at::Tensor warp_logits(const at::Tensor& logits, const SamplingParams& params) {
  return apply_top_p(apply_top_k(apply_temperature(logits, params.temperature), params.top_k),
                     params.top_p);
}

int64_t sample_categorical(const double* probs, int64_t V, double u) {
  double total = 0;
  int64_t last_positive = -1;
  for (int64_t i = 0; i < V; ++i) {
    if (probs[i] > 0) {
      total += probs[i];
      last_positive = i;
    }
  }
  if (last_positive < 0) throw Error("generate", "no token has positive probability");
  const double target = u * total;
  double cumulative = 0;
  for (int64_t i = 0; i < V; ++i) {
    if (!(probs[i] > 0)) continue;
    cumulative += probs[i];
    if (cumulative > target) return i;
  }
  return last_positive;  // rounding: u * total landed at or past the final sum
}

std::vector<int64_t> sample_rows(const at::Tensor& warped_logits,
                                 const std::vector<std::mt19937_64*>& engines) {
  check_logits(warped_logits);
  const int64_t N = warped_logits.size(0), V = warped_logits.size(1);
  if (static_cast<int64_t>(engines.size()) != N)
    throw Error("generate", std::to_string(engines.size()) + " random engines for " +
                                std::to_string(N) + " rows");
  const at::Tensor probs =
      warped_logits.to(at::kCPU).to(at::kDouble).softmax(1).contiguous();  // exp(-inf) = 0
  const double* p = probs.data_ptr<double>();
  std::vector<int64_t> out(N);
  for (int64_t n = 0; n < N; ++n)
    out[n] = sample_categorical(p + n * V, V, uniform_unit(*engines[n]));
  return out;
}

}  // namespace tailor
