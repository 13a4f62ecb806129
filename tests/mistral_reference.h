// An independent float64 Mistral (HF MistralForCausalLM semantics, eager attention) written with
// plain loops over std::vector<double> straight from the formulas: RMSNorm, rotate-half RoPE,
// grouped-query attention with causal, sliding-window and padding masks, SwiGLU MLP. No torch op
// takes part in the math; torch only reads weights out of a TensorMap (and draws random ones).
// Tests compare tailor's LibTorch model against this.
#pragma once

#include <cstdint>
#include <vector>

#include "models/core/tensor_map.h"
#include "models/mistral/mistral_config.h"

namespace tailor::reference {

// A PEFT LoRA adapter: tensors under PEFT keys
// (`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight` [r, in], `.lora_B.weight`
// [out, r]) and the scaling alpha / r (alpha / sqrt(r) for rsLoRA). The reference folds each
// pair into its base weight as W + scaling * B A.
struct MistralLoraAdapter {
  TensorMap tensors;
  double scaling = 1.0;
};

// Logits [B, T, V] (row-major) of MistralForCausalLM for `ids` [B, T] (row-major), without a
// cache. `weights` uses HF names (model.embed_tokens.weight, ..., lm_head.weight unless tied).
// `mask` [B, T] (1 real, 0 padding) and `positions` [B, T] are optional (empty = all ones /
// 0..T-1). A key j is visible from query i iff j <= i, mask[j] = 1 and, with a sliding window W,
// i - j < W; a query with no visible key attends uniformly to all T keys (HF's finfo.min fill).
std::vector<double> mistral_logits(const MistralConfig& config, const TensorMap& weights,
                                   const std::vector<int64_t>& ids, int64_t B, int64_t T,
                                   const std::vector<int64_t>& mask = {},
                                   const std::vector<int64_t>& positions = {},
                                   const MistralLoraAdapter* adapter = nullptr);

// Random float64 weights under HF names: linear weights [out, in] with entries N(0, 1/in),
// embeddings N(0, 1), RMSNorm weights 1 + N(0, 0.1^2), lm_head (untied) N(0, 1/C). Drawn from a
// generator seeded with `seed`, so the default generator is untouched.
TensorMap random_mistral_weights(const MistralConfig& config, uint64_t seed);

}  // namespace tailor::reference
