// An independent float64 GPT-2 (HF GPT2LMHeadModel semantics) written with plain loops over
// std::vector<double>: no torch op takes part in the math. Torch is used only to read the
// weights out of a TensorMap. Tests compare tailor's LibTorch model against this.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/core/tensor_map.h"
#include "models/gpt2/gpt2_config.h"

namespace tailor::reference {

// Row-major copy of a tensor's values as doubles.
std::vector<double> to_doubles(const at::Tensor& tensor);

// Logits [B, T, V] (row-major) of GPT2LMHeadModel for `ids` [B, T] (row-major).
// `weights` uses HF names with or without the `transformer.` prefix (lm_head.weight [V, C] when
// the config is untied). `mask` [B, T] (1 real, 0 padding) and `positions` [B, T] are optional
// (empty = all ones / 0..T-1). Masked keys get no weight; a query with every key masked attends
// uniformly to all T keys (HF adds finfo.min to every score of such a row).
std::vector<double> gpt2_logits(const GPT2Config& config, const TensorMap& weights,
                                const std::vector<int64_t>& ids, int64_t B, int64_t T,
                                const std::vector<int64_t>& mask = {},
                                const std::vector<int64_t>& positions = {});

// log_softmax over the last axis of a [N, V] row-major array.
std::vector<double> log_softmax_rows(const std::vector<double>& logits, int64_t V);

// Random float64 weights under HF hub names (no `transformer.` prefix): matrices with entries
// N(0, 1/fan_in), embeddings N(0, 0.5^2), LayerNorm weights 1 + N(0, 0.1^2), biases N(0, 0.1^2).
// Drawn from a generator seeded with `seed`, so the default generator is untouched.
TensorMap random_hf_weights(const GPT2Config& config, uint64_t seed);

// ||a - b|| / ||b||.
double relative_error(const std::vector<double>& a, const std::vector<double>& b);
double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace tailor::reference
