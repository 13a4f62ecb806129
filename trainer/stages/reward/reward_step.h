// One training step of the reward stage, from the rewards of a batch to the gradient in the
// trainable parameters' .grad(): the code run_reward_stage() calls every step, kept apart so
// tests can drive it on small models (tests/test_vpl.cpp checks it against a float64 reference
// and finite differences).
//
// Loss of example i (user h_i, rewards r_w, r_l, latent q = N(mean_i, diag exp(logvar_i))):
//   l_i = -log sigmoid(r_w - r_l)  [+ beta_t * KL(q || N(0, I))  (VPL)]
// grad_surgery none:    loss = mean_i l_i  [+ c * contrastive(mean, h)], one backward.
// grad_surgery pcgrad:  task u = user u present in the batch, L_u = mean of l_i over its examples;
//                       one backward per task through the shared graph (retained), then
//                       PCGrad over the per-task gradients, mean over tasks.
// grad_surgery mgda:    as pcgrad, combined by MGDA's min-norm weights: sum_u alpha_u grad L_u.
// With surgery the contrastive term's gradient (c * grad contrastive) is added to the combined
// gradient afterwards: it is defined on pairs of examples of different users, so it is no
// user's task and cannot be split among them, and projecting it against the users' gradients
// would remove the very component that separates their latents.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "models/heads/vpl.h"

namespace tailor {

// Rewards of B pairs; mean and logvar ([B, L]) only for VPL.
struct RewardScores {
  at::Tensor chosen, rejected;  // [B]
  at::Tensor mean, logvar;      // [B, L]
};

// VPL rewards of B pairs: features [2B, E] are the backbone's embeddings of the chosen responses
// (rows 0..B-1) then the rejected ones (rows B..2B-1); context [B, C, 2, E] each example's context
// pairs. One z per example, shared by its chosen and rejected response:
// z = mean + exp(logvar / 2) * eps for eps [B, L] (training), z = mean when eps is undefined.
RewardScores vpl_scores(VplHeads& heads, const at::Tensor& features, const at::Tensor& context,
                        const at::Tensor& eps);

struct RewardLossOptions {
  bool vae = false;                   // add beta_t * KL (needs mean and logvar)
  double kl_weight = 0;               // beta_t
  double contrastive = 0;             // coefficient c of the contrastive latent loss; 0 = off
  std::string grad_surgery = "none";  // none | pcgrad | mgda
};

// The step's gradient, written into each of `params`' .grad() (what was there is replaced), from
// the scores' autograd graph; `users` [B] is each example's user. `rng` draws PCGrad's visiting
// orders. Returns the loss terms for metrics.jsonl: loss (the optimised objective; with surgery
// the mean of the per-user losses + c * contrastive), bt_loss, batch_accuracy and, as they apply,
// kl, contrastive, mgda_min_weight.
nlohmann::json reward_step_backward(const RewardScores& scores, const std::vector<int32_t>& users,
                                    const std::vector<at::Tensor>& params,
                                    const RewardLossOptions& options, std::mt19937_64& rng);

}  // namespace tailor
