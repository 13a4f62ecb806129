// Next-token choice for text generation: Hugging Face's logits warpers (temperature, then top-k,
// then top-p, each keeping at least one token) and a seeded, platform-independent draw.
//
// Dimensions: N rows (sequences), V vocabulary size.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include <ATen/ATen.h>

namespace tailor {

struct SamplingParams {
  double temperature = 1.0;  // > 0: logits / temperature
  int64_t top_k = 0;         // > 0: keep the k largest logits (ties with the k-th kept); 0 = off
  double top_p = 1.0;        // in (0, 1]: keep the smallest top set with mass >= top_p; 1 = off
};

// logits [N, V] float32 / temperature (HF TemperatureLogitsWarper).
at::Tensor apply_temperature(const at::Tensor& logits, double temperature);
// Entries below the k-th largest of their row set to -inf (HF TopKLogitsWarper: ties with the
// k-th value are kept; k is clamped to [1, V]).
at::Tensor apply_top_k(const at::Tensor& logits, int64_t top_k);
// HF TopPLogitsWarper, in float32 as HF computes it: sort the row ascending, softmax, cumulative
// sum; entries whose cumulative probability is <= 1 - top_p are set to -inf, except that the
// largest entry is always kept.
at::Tensor apply_top_p(const at::Tensor& logits, double top_p);
// The three in HF's order (temperature, top-k, top-p) on float32 logits [N, V]; filtered entries
// are -inf. Throws Error("generate", ...) for temperature <= 0, top_k < 0 or top_p outside (0, 1].
at::Tensor warp_logits(const at::Tensor& logits, const SamplingParams& params);

// A uniform double in [0, 1) from 53 bits of one engine output (the same on every platform,
// unlike std::uniform_real_distribution).
inline double uniform_unit(std::mt19937_64& engine) {
  return static_cast<double>(engine() >> 11) * 0x1.0p-53;
}

// The index i of a categorical draw from unnormalised probabilities probs[0..V): the first i with
// probs[i] > 0 whose cumulative sum exceeds u * sum(probs), u in [0, 1). Accumulated in float64.
int64_t sample_categorical(const double* probs, int64_t V, double u);

// One draw per row of warped logits [N, V] (-inf = excluded): softmax in float64, then
// sample_categorical with u = uniform_unit(*engines[n]). Returns N indices.
std::vector<int64_t> sample_rows(const at::Tensor& warped_logits,
                                 const std::vector<std::mt19937_64*>& engines);

}  // namespace tailor
