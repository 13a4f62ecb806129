// Which keys each query may not attend to, shared by every causal LM.
//
// Dimensions: B batch, T new tokens, P cached tokens, S = P + T.
#pragma once

#include <cstdint>
#include <optional>

#include <ATen/ATen.h>

namespace tailor {

// blocked [B or 1, 1, T, S] bool, true where key j is hidden from query i (absolute index P + i):
// j > P + i (causal), attention_mask[b, j] == 0 (padding), or, with a sliding window W,
// (P + i) - j >= W (HF: a key is visible iff kv_idx > q_idx - sliding_window).
// attention_mask [B, S] (1 = real token) is optional; when undefined the result has batch 1.
at::Tensor blocked_keys(const at::Tensor& attention_mask, int64_t T, int64_t P,
                        std::optional<int64_t> sliding_window, const at::Device& device);

// torch.finfo(dtype).min: the value HF puts on masked attention scores before the softmax.
double lowest_value(at::ScalarType dtype);

// Checks the shapes HF's generate passes: input_ids [B, T] integer ids inside [0, vocab),
// attention_mask [B, P + T] when defined, position_ids [B, T] or [1, T] when defined. Throws
// Error(scope, ...) naming the tensor and its shape.
void check_lm_inputs(const char* scope, const at::Tensor& input_ids,
                     const at::Tensor& attention_mask, const at::Tensor& position_ids, int64_t P,
                     int64_t vocab_size);

// position_ids when the caller gives none: P .. P + T - 1, [1, T] int64.
at::Tensor default_position_ids(int64_t T, int64_t P, const at::Device& device);

}  // namespace tailor
