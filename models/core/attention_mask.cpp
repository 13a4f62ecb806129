#include "models/core/attention_mask.h"

#include <limits>
#include <string>

#include "common/error.h"
#include "common/shape_string.h"

namespace tailor {

at::Tensor blocked_keys(const at::Tensor& attention_mask, int64_t T, int64_t P,
                        std::optional<int64_t> sliding_window, const at::Device& device) {
  const int64_t S = P + T;
  const auto options = at::TensorOptions().dtype(at::kLong).device(device);
  const at::Tensor query = at::arange(P, S, options).view({T, 1});  // absolute query index
  const at::Tensor key = at::arange(S, options).view({1, S});
  at::Tensor blocked = key.gt(query);  // [T, S]
  if (sliding_window) blocked = blocked.logical_or((query - key).ge(*sliding_window));
  blocked = blocked.view({1, 1, T, S});
  if (attention_mask.defined()) {
    const int64_t B = attention_mask.size(0);
    blocked = blocked.logical_or(attention_mask.to(device).eq(0).view({B, 1, 1, S}));
  }
  return blocked;
}

double lowest_value(at::ScalarType dtype) {
  switch (dtype) {
    case at::kDouble:
      return std::numeric_limits<double>::lowest();
    case at::kFloat:
      return std::numeric_limits<float>::lowest();
    case at::kBFloat16:
      return static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
    case at::kHalf:
      return -65504.0;
    default:
      throw Error("attention", std::string("unsupported model dtype ") + c10::toString(dtype));
  }
}

void check_lm_inputs(const char* scope, const at::Tensor& input_ids,
                     const at::Tensor& attention_mask, const at::Tensor& position_ids, int64_t P,
                     int64_t vocab_size) {
  if (input_ids.dim() != 2 || !at::isIntegralType(input_ids.scalar_type(), false)) {
    throw Error(scope, "input_ids must be an integer tensor [B, T], got " +
                           std::string(c10::toString(input_ids.scalar_type())) + " " +
                           shape_string(input_ids.sizes()));
  }
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  if (input_ids.numel() > 0) {
    // A clear message instead of embedding's bare index error.
    const int64_t lo = input_ids.min().item<int64_t>(), hi = input_ids.max().item<int64_t>();
    if (lo < 0 || hi >= vocab_size) {
      throw Error(scope, "token id " + std::to_string(lo < 0 ? lo : hi) +
                             " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")");
    }
  }
  if (attention_mask.defined() && (attention_mask.dim() != 2 || attention_mask.size(0) != B ||
                                   attention_mask.size(1) != P + T)) {
    throw Error(scope, "attention_mask shape " + shape_string(attention_mask.sizes()) +
                           " does not match input_ids " + shape_string(input_ids.sizes()) +
                           (P > 0 ? " plus " + std::to_string(P) + " cached positions" : ""));
  }
  if (position_ids.defined() && position_ids.sizes() != input_ids.sizes() &&
      position_ids.sizes() != at::IntArrayRef{1, T}) {
    throw Error(scope, "position_ids shape " + shape_string(position_ids.sizes()) +
                           " does not match input_ids " + shape_string(input_ids.sizes()));
  }
}

at::Tensor default_position_ids(int64_t T, int64_t P, const at::Device& device) {
  return at::arange(P, P + T, at::TensorOptions().dtype(at::kLong).device(device)).unsqueeze(0);
}

}  // namespace tailor
