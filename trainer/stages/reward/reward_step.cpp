#include "trainer/stages/reward/reward_step.h"

#include <algorithm>

#include <torch/torch.h>

#include "common/error.h"
#include "common/shape_string.h"
#include "trainer/losses/preference_losses.h"
#include "trainer/optim/grad_surgery.h"

namespace tailor {

namespace {

void zero_grads(const std::vector<at::Tensor>& params) {
  at::NoGradGuard no_grad;
  for (const auto& p : params) {
    at::Tensor& g = p.mutable_grad();
    if (g.defined()) g.zero_();
  }
}

}  // namespace

RewardScores vpl_scores(VplHeads& heads, const at::Tensor& features, const at::Tensor& context,
                        const at::Tensor& eps) {
  const int64_t B = context.size(0);
  if (features.dim() != 2 || features.size(0) != 2 * B)
    throw Error("vpl_scores", "expected features [2B, E] for B = " + std::to_string(B) +
                                  " examples, got " + shape_string(features.sizes()));
  RewardScores s;
  std::tie(s.mean, s.logvar) = heads->encode(context);
  const at::Tensor z = eps.defined() ? s.mean + at::exp(0.5 * s.logvar) * eps : s.mean;
  const at::Tensor rewards = heads->decode(features, at::cat({z, z}, 0));
  s.chosen = rewards.slice(0, 0, B);
  s.rejected = rewards.slice(0, B, 2 * B);
  return s;
}

nlohmann::json reward_step_backward(const RewardScores& s, const std::vector<int32_t>& batch_users,
                                    const std::vector<at::Tensor>& params,
                                    const RewardLossOptions& o, std::mt19937_64& rng) {
  const int64_t B = s.chosen.size(0);
  if (static_cast<int64_t>(batch_users.size()) != B)
    throw Error("reward_step", "expected " + std::to_string(B) + " users, got " +
                                   std::to_string(batch_users.size()));
  if (o.grad_surgery != "none" && o.grad_surgery != "pcgrad" && o.grad_surgery != "mgda")
    throw Error("recipe", "train.grad_surgery: expected none, pcgrad or mgda, got \"" +
                              o.grad_surgery + "\"");
  nlohmann::json record;
  // Per-example loss: -log sigmoid(margin) + beta_t KL.
  const at::Tensor bt = at::softplus(s.rejected - s.chosen);
  at::Tensor per_example = bt;
  if (o.vae) {
    const at::Tensor kl = kl_to_standard_normal(s.mean, s.logvar);
    per_example = per_example + o.kl_weight * kl;
    record["kl"] = kl.mean().item<double>();
  }
  const at::Tensor users =
      at::tensor(std::vector<int64_t>(batch_users.begin(), batch_users.end()), at::kLong);
  at::Tensor contrastive;
  if (o.vae && o.contrastive > 0) {
    contrastive = contrastive_latent_loss(s.mean, users);
    record["contrastive"] = contrastive.item<double>();
  }
  record["bt_loss"] = bt.mean().item<double>();
  record["batch_accuracy"] = (s.chosen > s.rejected).to(at::kDouble).mean().item<double>();

  zero_grads(params);
  if (o.grad_surgery == "none") {
    at::Tensor loss = per_example.mean();
    if (contrastive.defined()) loss = loss + o.contrastive * contrastive;
    record["loss"] = loss.item<double>();
    loss.backward();
    return record;
  }
  // One backward per user present, through the one forward graph (retained until the last):
  // task t's gradient is that of its users' mean per-example loss.
  std::vector<int32_t> present = batch_users;
  std::sort(present.begin(), present.end());
  present.erase(std::unique(present.begin(), present.end()), present.end());
  std::vector<at::Tensor> grads;
  double loss_sum = 0;
  for (size_t t = 0; t < present.size(); ++t) {
    const at::Tensor loss_u = per_example.masked_select(users == present[t]).mean();
    loss_sum += loss_u.item<double>();
    zero_grads(params);
    loss_u.backward({}, /*retain_graph=*/t + 1 < present.size() || contrastive.defined());
    grads.push_back(flatten_grads(params));
  }
  const at::Tensor G = at::stack(grads);  // [T, P]
  const double T = static_cast<double>(present.size());
  at::Tensor combined;
  if (o.grad_surgery == "pcgrad") {
    combined = pcgrad(G, rng, "mean");
  } else {
    const auto alpha = mgda_weights(G);
    combined = mgda_combine(G, alpha) / T;  // sum_u alpha_u g_u: mean scale, like pcgrad's
    record["mgda_min_weight"] = *std::min_element(alpha.begin(), alpha.end());
  }
  zero_grads(params);
  assign_flat_grad(params, combined);
  double loss = loss_sum / T;
  // The contrastive term couples users (it is defined on pairs of examples of different users),
  // so it is no user's task: its gradient is added after surgery, not split by user.
  if (contrastive.defined()) {
    (o.contrastive * contrastive).backward();
    loss += o.contrastive * contrastive.item<double>();
  }
  record["loss"] = loss;
  return record;
}

}  // namespace tailor
