// Direct Preference Optimization losses (Rafailov et al. 2023) and the per-sequence log-probs they
// take, with TRL's names and conventions (DPOTrainer): for a pair (prompt, chosen y_w, rejected
// y_l) and h = [log pi(y_w) - log ref(y_w)] - [log pi(y_l) - log ref(y_l)],
//   sigmoid  -log sigmoid(beta h)                                        (DPO)
//   cDPO     -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h)   (label smoothing eps)
//   ipo      (h - 1 / (2 beta))^2                                        (Azar et al. 2023)
// Implicit rewards: beta (log pi - log ref) of each response. With LoRA the reference is the base
// with the adapters off, so no second model exists.
#pragma once

#include <string>

#include <ATen/Tensor.h>

#include "common/enum_names.h"

namespace tailor {

enum class DpoLossType { kSigmoid, kIpo };
const EnumNames<DpoLossType>& dpo_loss_type_names();  // sigmoid, ipo (recipe key dpo.type)
const std::string& to_string(DpoLossType type);

struct DpoLossConfig {
  DpoLossType type = DpoLossType::kSigmoid;
  double beta = 0.1;
  double label_smoothing = 0.0;  // cDPO's eps in [0, 0.5); sigmoid only
  void validate() const;         // Error("dpo", ...) naming the field
};

struct DpoLosses {
  at::Tensor losses;            // [B] per pair
  at::Tensor chosen_rewards;    // [B] beta (log pi(y_w) - log ref(y_w)), detached
  at::Tensor rejected_rewards;  // [B] beta (log pi(y_l) - log ref(y_l)), detached
};

// All inputs [B] summed response log-probs (response_logps); the reference ones carry no
// gradient. Computed in float64 whatever the inputs' dtype, returned in float64.
DpoLosses dpo_losses(const at::Tensor& policy_chosen, const at::Tensor& policy_rejected,
                     const at::Tensor& reference_chosen, const at::Tensor& reference_rejected,
                     const DpoLossConfig& config);

// Summed log-probability of each row's response tokens: sum over t of log softmax(logits[b, t])
// at labels[b, t + 1], where labels[b, t + 1] != -100 (prompt and padding masked, as the SFT
// stage's labels are). logits [B, T, V], labels [B, T] -> [B] float32 (float64 for float64
// logits), differentiable. `counts` (optional) receives the number of response tokens per row.
at::Tensor response_logps(const at::Tensor& logits, const at::Tensor& labels,
                          at::Tensor* counts = nullptr);

}  // namespace tailor
