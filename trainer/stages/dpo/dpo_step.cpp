#include "trainer/stages/dpo/dpo_step.h"

#include <cmath>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include "common/error.h"
#include "models/core/lora.h"

namespace tailor {

std::map<std::string, DpoUserStats> dpo_forward_backward(
    CausalLMImpl& model, AdapterBank& bank, const data::PairBatch& batch,
    const DpoStepConfig& config, const at::Device& device,
    const std::map<std::string, double>* pair_weights) {
  const int64_t B = batch.pairs();
  const at::Tensor ids = batch.rows.input_ids.to(device);
  const at::Tensor mask = batch.rows.attention_mask.to(device);
  const at::Tensor labels = batch.rows.labels.to(device);
  // Reference: the base alone (every row routed to -1), no graph.
  at::Tensor reference;
  {
    torch::NoGradGuard no_grad;
    bank.clear_route();
    reference = response_logps(model.forward(ids, mask), labels);
  }
  // Policy: row b and row B + b through the adapter of pair b's user.
  std::vector<std::string> row_users(batch.users);
  row_users.insert(row_users.end(), batch.users.begin(), batch.users.end());
  bank.route(row_users, device);
  at::Tensor counts;
  const at::Tensor policy = response_logps(model.forward(ids, mask), labels, &counts);
  bank.clear_route();

  const DpoLosses d = dpo_losses(policy.narrow(0, 0, B), policy.narrow(0, B, B),
                                 reference.narrow(0, 0, B), reference.narrow(0, B, B), config.loss);
  at::Tensor per_pair = d.losses;  // [B] float64
  if (config.sft_weight > 0) {
    // Mean NLL per token of the chosen response, per pair; averaged per user below.
    const at::Tensor tokens = counts.narrow(0, 0, B).clamp_min(1).to(at::kDouble);
    per_pair = per_pair + config.sft_weight * (-policy.narrow(0, 0, B).to(at::kDouble) / tokens);
  }
  // Each user's mean, summed over users: weight 1 / (the user's pairs in this batch).
  std::map<std::string, int64_t> pairs_of;
  for (const auto& user : batch.users)
    ++pairs_of[user];
  std::vector<double> weights;
  for (const auto& user : batch.users) {
    if (!pair_weights) {
      weights.push_back(1.0 / static_cast<double>(pairs_of[user]));
      continue;
    }
    const auto it = pair_weights->find(user);
    if (it == pair_weights->end())
      throw Error("dpo", "no loss weight given for user '" + user + "' of the batch");
    weights.push_back(it->second);
  }
  const at::Tensor w = at::tensor(weights, at::kDouble).to(per_pair.device());
  (per_pair * w).sum().backward();

  // Statistics, on the host.
  const at::Tensor loss = per_pair.detach().cpu();
  const at::Tensor rc = d.chosen_rewards.cpu(), rr = d.rejected_rewards.cpu();
  const at::Tensor pc = policy.narrow(0, 0, B).detach().to(at::kDouble).cpu();
  const at::Tensor pr = policy.narrow(0, B, B).detach().to(at::kDouble).cpu();
  std::map<std::string, DpoUserStats> stats;
  for (int64_t b = 0; b < B; ++b) {
    DpoUserStats& s = stats[batch.users[static_cast<size_t>(b)]];
    const double n = static_cast<double>(pairs_of[batch.users[static_cast<size_t>(b)]]);
    const double chosen = rc[b].item<double>(), rejected = rr[b].item<double>();
    s.pairs += 1;
    s.loss += loss[b].item<double>() / n;
    s.rewards_chosen += chosen / n;
    s.rewards_rejected += rejected / n;
    s.accuracy += (chosen > rejected ? 1.0 : 0.0) / n;
    s.margin += (chosen - rejected) / n;
    s.logps_chosen += pc[b].item<double>() / n;
    s.logps_rejected += pr[b].item<double>() / n;
  }
  return stats;
}

std::vector<double> clip_bank_gradients_per_user(const AdapterBank& bank, torch::nn::Module& model,
                                                 double max_norm) {
  std::vector<at::Tensor> grads;
  for (const auto& item : model.named_parameters())
    if (is_adapter_bank_parameter(item.key()) && item.value().grad().defined())
      grads.push_back(item.value().grad());
  std::vector<double> norms;
  torch::NoGradGuard no_grad;
  for (int64_t u = 0; u < bank.size(); ++u) {
    double sum_sq = 0;
    for (const auto& g : grads) {
      const at::Tensor slice = g[u].to(at::kDouble);
      sum_sq += at::dot(slice.reshape({-1}), slice.reshape({-1})).item<double>();
    }
    const double norm = std::sqrt(sum_sq);
    norms.push_back(norm);
    if (max_norm <= 0 || !std::isfinite(norm)) continue;
    const double coef = max_norm / (norm + 1e-6);  // as clip_grad_norm_
    if (coef < 1.0)
      for (const auto& g : grads)
        g[u].mul_(coef);
  }
  return norms;
}

}  // namespace tailor
