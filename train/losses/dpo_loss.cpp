#include "train/losses/dpo_loss.h"

#include <ATen/ATen.h>

#include "common/error.h"

namespace tailor {

const EnumNames<DpoLossType>& dpo_loss_type_names() {
  static const EnumNames<DpoLossType> table = {{"sigmoid", DpoLossType::kSigmoid},
                                               {"ipo", DpoLossType::kIpo},
                                               {"ipo_sum", DpoLossType::kIpoSum}};
  return table;
}

const std::string& to_string(DpoLossType type) {
  return enum_name(dpo_loss_type_names(), type);
}

void DpoLossConfig::validate() const {
  if (!(beta > 0)) throw Error("dpo", "beta must be > 0, got " + std::to_string(beta));
  if (!(label_smoothing >= 0 && label_smoothing < 0.5))
    throw Error("dpo",
                "label_smoothing must be in [0, 0.5), got " + std::to_string(label_smoothing));
  if (type != DpoLossType::kSigmoid && label_smoothing != 0)
    throw Error("dpo", "label_smoothing applies to the sigmoid loss only, not " + to_string(type));
}

at::Tensor dpo_loss_logps(const at::Tensor& summed, const at::Tensor& tokens, DpoLossType type) {
  const at::Tensor sums = summed.to(at::kDouble);
  if (type != DpoLossType::kIpo) return sums;
  if (!tokens.defined())
    throw Error("dpo",
                "ipo averages each response's log-prob over its tokens: pass the number of "
                "response tokens of every sequence");
  if (tokens.sizes() != summed.sizes())
    throw Error("dpo", "ipo needs one token count per sequence (" + std::to_string(summed.numel()) +
                           "), got " + std::to_string(tokens.numel()));
  return sums / tokens.to(sums.device(), at::kDouble).clamp_min(1);
}

DpoLosses dpo_losses(const at::Tensor& policy_chosen, const at::Tensor& policy_rejected,
                     const at::Tensor& reference_chosen, const at::Tensor& reference_rejected,
                     const DpoLossConfig& config, const at::Tensor& chosen_tokens,
                     const at::Tensor& rejected_tokens) {
  config.validate();
  if (policy_chosen.dim() != 1 || policy_chosen.sizes() != policy_rejected.sizes() ||
      policy_chosen.sizes() != reference_chosen.sizes() ||
      policy_chosen.sizes() != reference_rejected.sizes())
    throw Error("dpo", "the four log-prob inputs must be [B] tensors of one size");
  // The reference sums cover the same tokens as the policy's, so they share the lengths.
  const DpoLossType type = config.type;
  const at::Tensor pc = dpo_loss_logps(policy_chosen, chosen_tokens, type);
  const at::Tensor pr = dpo_loss_logps(policy_rejected, rejected_tokens, type);
  const at::Tensor rc = dpo_loss_logps(reference_chosen.detach(), chosen_tokens, type);
  const at::Tensor rr = dpo_loss_logps(reference_rejected.detach(), rejected_tokens, type);
  const at::Tensor h = (pc - rc) - (pr - rr);
  DpoLosses out;
  if (type == DpoLossType::kIpo || type == DpoLossType::kIpoSum) {
    out.losses = (h - 1.0 / (2.0 * config.beta)).pow(2);
  } else {
    // -log sigmoid(z) = softplus(-z): finite for margins of any size.
    const double eps = config.label_smoothing;
    out.losses = (1.0 - eps) * at::softplus(-config.beta * h);
    if (eps > 0) out.losses = out.losses + eps * at::softplus(config.beta * h);
  }
  out.chosen_rewards = (config.beta * (pc - rc)).detach();
  out.rejected_rewards = (config.beta * (pr - rr)).detach();
  out.policy_chosen = pc.detach();
  out.policy_rejected = pr.detach();
  return out;
}

at::Tensor response_logps(const at::Tensor& logits, const at::Tensor& labels, at::Tensor* counts) {
  if (logits.dim() != 3 || labels.dim() != 2 || logits.size(0) != labels.size(0) ||
      logits.size(1) != labels.size(1))
    throw Error("dpo", "response_logps needs logits [B, T, V] and labels [B, T]");
  const at::Tensor compute =
      logits.scalar_type() == at::kDouble ? logits : logits.to(at::kFloat);   // bf16 -> float32
  const at::Tensor log_probs = at::log_softmax(compute.slice(1, 0, -1), -1);  // [B, T-1, V]
  const at::Tensor target = labels.slice(1, 1);                               // [B, T-1]
  const at::Tensor learned = target.ne(-100);
  const at::Tensor picked = log_probs.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1);
  if (counts) *counts = learned.sum(1);
  return (picked * learned.to(picked.scalar_type())).sum(1);
}

}  // namespace tailor
