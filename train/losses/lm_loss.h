// Causal language-modeling losses. Labels follow Hugging Face: unshifted, -100 = not learned;
// position t predicts labels[:, t + 1].
//
// Dimension legend: B batch, T sequence length, V vocabulary size.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/Tensor.h>

namespace tailor {

// Summed token cross-entropy (natural log) over every learned position of the batch, computed in
// float32 whatever the logits' dtype: logits [B, T, V], labels [B, T] int64 -> scalar float32.
// Dividing by the number of learned tokens of the whole optimizer step (not of the micro-batch)
// makes gradient accumulation and data parallelism reproduce one large batch exactly.
at::Tensor causal_lm_loss_sum(const at::Tensor& logits, const at::Tensor& labels);

// Per-row summed negative log-likelihood in float64 of the learned tokens: logits [B, T, V],
// labels [B, T] -> std::vector<double> of B sums (and token counts in `counts` if non-null).
std::vector<double> sequence_nll(const at::Tensor& logits, const at::Tensor& labels,
                                 std::vector<int64_t>* counts = nullptr);

}  // namespace tailor
