// Direct Preference Optimization losses (Rafailov et al. 2023) and the per-sequence log-probs they
// take, with TRL's names and conventions (DPOTrainer): for a pair (prompt, chosen y_w, rejected
// y_l), l(y) the log-probability of a response that the loss compares (below), and
// h = [l_pi(y_w) - l_ref(y_w)] - [l_pi(y_l) - l_ref(y_l)],
//   sigmoid  -log sigmoid(beta h)                                        (DPO)
//   cDPO     -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h)   (label smoothing eps)
//   ipo      (h - 1 / (2 beta))^2                                        (Azar et al. 2023)
//   ipo_sum  (h - 1 / (2 beta))^2
// l(y) is the response's summed log-prob, except for ipo: there it is the mean per response token
// (the sum over the number of tokens scored), policy and reference alike, as TRL's DPOTrainer
// computes loss_type "ipo" (concatenated_forward: all_logps / loss_mask.sum(-1)); the margin
// target 1 / (2 beta) then means the same for short and long responses. ipo_sum keeps the sums
// (Azar et al.'s sequence probabilities; tailor's ipo before it followed TRL).
// Implicit rewards: beta (l_pi - l_ref) of each response, from the same l(y) as the loss (TRL's
// rewards/*, per token for ipo). With LoRA the reference is the base with the adapters off, so no
// second model exists.
#pragma once

#include <string>

#include <ATen/Tensor.h>

#include "common/enum_names.h"

namespace tailor {

enum class DpoLossType { kSigmoid, kIpo, kIpoSum };
// sigmoid, ipo, ipo_sum (recipe key dpo.type)
const EnumNames<DpoLossType>& dpo_loss_type_names();
const std::string& to_string(DpoLossType type);

struct DpoLossConfig {
  DpoLossType type = DpoLossType::kSigmoid;
  double beta = 0.1;
  double label_smoothing = 0.0;  // cDPO's eps in [0, 0.5); sigmoid only
  void validate() const;         // Error("dpo", ...) naming the field
};

struct DpoLosses {
  at::Tensor losses;            // [B] per pair
  at::Tensor chosen_rewards;    // [B] beta (l_pi(y_w) - l_ref(y_w)), detached
  at::Tensor rejected_rewards;  // [B] beta (l_pi(y_l) - l_ref(y_l)), detached
  at::Tensor policy_chosen;     // [B] l_pi(y_w), the log-prob the loss compared, detached
  at::Tensor policy_rejected;   // [B] l_pi(y_l), detached
};

// l(y) of `type` from summed response log-probs [N] and the number of response tokens each sum
// covers [N] (integer or floating; unused, may be undefined, unless type is ipo): the sum, or for
// ipo the sum / tokens. [N] float64 whatever the inputs' dtype; differentiable in `summed`. The
// one place the length normalisation happens. A response with no scored token (max_length cut it
// away) counts as one token: its sum is 0 and so is its mean, where TRL would divide 0 by 0.
at::Tensor dpo_loss_logps(const at::Tensor& summed, const at::Tensor& tokens, DpoLossType type);

// The four log-probs [B] summed over each response (response_logps); the reference ones carry no
// gradient. chosen_tokens, rejected_tokens [B]: the number of response tokens each chosen /
// rejected sum covers (response_logps' counts; the policy and the reference score the same
// tokens); needed by ipo, ignored otherwise. Computed in float64 whatever the inputs' dtype,
// returned in float64.
DpoLosses dpo_losses(const at::Tensor& policy_chosen, const at::Tensor& policy_rejected,
                     const at::Tensor& reference_chosen, const at::Tensor& reference_rejected,
                     const DpoLossConfig& config, const at::Tensor& chosen_tokens = {},
                     const at::Tensor& rejected_tokens = {});

// Summed log-probability of each row's response tokens: sum over t of log softmax(logits[b, t])
// at labels[b, t + 1], where labels[b, t + 1] != -100 (prompt and padding masked, as the SFT
// stage's labels are). logits [B, T, V], labels [B, T] -> [B] float32 (float64 for float64
// logits), differentiable. `counts` (optional) receives the number of response tokens per row.
at::Tensor response_logps(const at::Tensor& logits, const at::Tensor& labels,
                          at::Tensor* counts = nullptr);

}  // namespace tailor
