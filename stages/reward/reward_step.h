// One training step of the reward stage, from the rewards of a batch to the gradient in the
// trainable parameters' .grad(): the code run_reward_stage() calls every step, kept apart so
// tests can drive it on small models (tests/test_vpl.cpp checks it against a float64 reference
// and finite differences; tests/test_reward_accum.cpp checks that accumulating micro-batches
// gives the gradient of the whole batch).
//
// Loss of example i (user h_i, rewards r_w, r_l, latent q = N(mean_i, diag exp(logvar_i))):
//   l_i = -log sigmoid(r_w - r_l)  [+ beta_t * KL(q || N(0, I))  (VPL)]
// grad_surgery none:    loss = mean_i l_i  [+ c * contrastive(mean, h)].
// grad_surgery pcgrad:  task u = user u present in the batch, L_u = mean of l_i over its examples;
//                       one backward per task through the shared graph (retained), then
//                       PCGrad over the per-task gradients, mean over tasks.
// grad_surgery mgda:    as pcgrad, combined by MGDA's min-norm weights: sum_u alpha_u grad L_u.
// With surgery the contrastive term's gradient (c * grad contrastive) is added to the combined
// gradient afterwards: it is defined on pairs of examples of different users, so it is no
// user's task and cannot be split among them, and projecting it against the users' gradients
// would remove the very component that separates their latents.
//
// Gradient accumulation: a step of N examples may be scored in micro-batches (consecutive
// ranges of the batch), one backbone forward and backward at a time. Every term above except
// the contrastive one is a sum over examples, so each micro-batch backpropagates its examples'
// share (l_i / N, or l_i / n_u into user u's task gradient, n_u counted over the whole step);
// the latents of the whole step (VPL's encoder is cheap: it reads precomputed context
// embeddings) are encoded once, their graph retained across the micro-batches, and the
// contrastive term is taken once on all N latent means. The result is the full batch's loss and
// gradient up to float rounding.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "models/heads/vpl.h"
#include "train/optim/grad_surgery.h"

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
  bool vae = false;        // add beta_t * KL (needs mean and logvar)
  double kl_weight = 0;    // beta_t
  double contrastive = 0;  // coefficient c of the contrastive latent loss; 0 = off
  GradSurgery grad_surgery = GradSurgery::kNone;
};

// The rewards of examples [begin, end) of the step (chosen and rejected, [end - begin]) with
// their autograd graph: the caller's forward pass of one micro-batch. For VPL they are decoded
// with rows [begin, end) of the latents z the caller drew from the step's mean and logvar.
using MicroBatchForward = std::function<RewardScores(int64_t begin, int64_t end)>;

// The gradient of a step of N = users.size() examples, scored by `forward` in micro-batches of
// `micro_batch` examples (the last one may be smaller; micro_batch >= N = one pass), written
// into each of `params`' .grad() (what was there is replaced). VPL: `mean` and `logvar` [N, L]
// are the whole step's latent parameters, on the graph the rewards' z came from; BT: undefined.
// `users` [N] is each example's user; `rng` draws PCGrad's visiting orders. Losses are taken in
// float32 (float64 stays float64) whatever the rewards' dtype. Low-precision (bf16) parameters
// get their micro-batch gradients summed in float32 and rounded once. Returns the loss terms
// for metrics.jsonl: loss (the optimised objective; with surgery the mean of the per-user losses
// + c * contrastive), bt_loss, batch_accuracy and, as they apply, kl, contrastive,
// mgda_min_weight.
nlohmann::json reward_step_accumulate(const MicroBatchForward& forward, int64_t micro_batch,
                                      const std::vector<int32_t>& users, const at::Tensor& mean,
                                      const at::Tensor& logvar,
                                      const std::vector<at::Tensor>& params,
                                      const RewardLossOptions& options, std::mt19937_64& rng);

// One pass over a batch whose scores (with their graph) are already computed:
// reward_step_accumulate with a single micro-batch returning `scores`.
nlohmann::json reward_step_backward(const RewardScores& scores, const std::vector<int32_t>& users,
                                    const std::vector<at::Tensor>& params,
                                    const RewardLossOptions& options, std::mt19937_64& rng);

}  // namespace tailor
