#include "train/losses/lm_loss.h"

#include <ATen/ATen.h>

#include "data/sft/sft_dataset.h"

namespace tailor {

at::Tensor causal_lm_loss_sum(const at::Tensor& logits, const at::Tensor& labels) {
  const int64_t V = logits.size(-1);
  // Shift the labels, not the logits: position t predicts token t + 1, and the last position
  // predicts nothing. Slicing [B, T, V] logits would copy the largest tensor of the step.
  auto shifted_labels =
      at::cat({labels.slice(/*dim=*/1, 1),
               at::full({labels.size(0), 1}, data::kIgnoreIndex, labels.options())},
              1);
  return at::cross_entropy_loss(logits.reshape({-1, V}).to(at::kFloat),
                                shifted_labels.reshape({-1}),
                                /*weight=*/{}, at::Reduction::Sum, data::kIgnoreIndex);
}

std::vector<double> sequence_nll(const at::Tensor& logits, const at::Tensor& labels,
                                 std::vector<int64_t>* counts) {
  const int64_t B = logits.size(0);
  auto log_probs = at::log_softmax(logits.slice(1, 0, -1).to(at::kFloat), /*dim=*/-1);
  auto target = labels.slice(1, 1);
  auto learned = target.ne(data::kIgnoreIndex);
  auto picked = log_probs.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1);
  // Accumulate in float64 so long sequences do not lose digits.
  auto nll = picked.to(at::kDouble).neg().mul(learned.to(at::kDouble)).sum(1).contiguous();
  auto n = learned.sum(1).to(at::kLong).contiguous();
  std::vector<double> out(nll.data_ptr<double>(), nll.data_ptr<double>() + B);
  if (counts) counts->assign(n.data_ptr<int64_t>(), n.data_ptr<int64_t>() + B);
  return out;
}

}  // namespace tailor
