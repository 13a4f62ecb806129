// One DPO step for many users on one frozen base (issue 11): every pair's rows go through its
// own user's adapter (models/core/adapter_bank.h) for the policy, and through no adapter for the
// reference. Each user's loss is the mean over that user's pairs in the batch and the total is
// their sum, so the gradient of user u's slice of every bank parameter is exactly the gradient of
// u's own mean loss: N users in one pass equal N single-user runs on the same per-user batches.
// Clipping is per user too, over that user's slices, for the same reason.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <torch/nn/module.h>

#include "data/preferences/user_pairs.h"
#include "models/core/adapter_bank.h"
#include "models/core/causal_lm.h"
#include "train/losses/dpo_loss.h"

namespace tailor::dist {
class Communicator;
class ZeroEngine;
}  // namespace tailor::dist

namespace tailor {

struct DpoStepConfig {
  DpoLossConfig loss;
  // TRL's rpo_alpha: adds sft_weight x the mean NLL of the chosen responses' tokens (per user).
  double sft_weight = 0.0;
};

// TRL's metric names, per user, means over the user's pairs in the batch. Rewards and logps are
// those of the log-probs the loss compares (dpo_loss.h's l(y)), as TRL reports them: summed over
// the response, or for ipo its mean per response token.
struct DpoUserStats {
  int64_t pairs = 0;
  double loss = 0;              // the DPO loss (plus the SFT term when sft_weight > 0)
  double rewards_chosen = 0;    // rewards/chosen
  double rewards_rejected = 0;  // rewards/rejected
  double accuracy = 0;          // rewards/accuracies: share of pairs with chosen > rejected
  double margin = 0;            // rewards/margins
  double logps_chosen = 0;      // logps/chosen
  double logps_rejected = 0;    // logps/rejected
};

// Forward (policy and reference) and backward of one batch; gradients accumulate in the bank.
// The batch's tensors are moved to `device`. Returns the statistics of every user in the batch
// (means over the user's pairs in this batch). `pair_weights` (user -> weight of each of its
// pairs in the summed loss) lets a step split over several batches or ranks keep each user's
// mean over the whole step: 1 / (the user's pairs in the step); default 1 / (its pairs here).
// `precomputed_reference`: the batch's reference log-probs as reference_log_probs gives them
// ([2B] summed, chosen rows first, for every loss type; ipo's division by the lengths happens
// here), e.g. computed once per pair before training; null computes them here.
// LoRA dropout on the output layer draws the same masks when the log-probs are taken and when
// their gradient is recomputed chunk by chunk, so the gradient is that of the loss returned.
std::map<std::string, DpoUserStats> dpo_forward_backward(
    CausalLMImpl& model, AdapterBank& bank, const data::PairBatch& batch,
    const DpoStepConfig& config, const at::Device& device,
    const std::map<std::string, double>* pair_weights = nullptr,
    const at::Tensor* precomputed_reference = nullptr);

// The reference policy's (the base with every adapter off) summed response log-probs of a
// batch's rows: [2B] float32 (float64 for a float64 model), chosen rows first; no graph. The
// base alone even inside a caller's AdapterRoute.
at::Tensor reference_log_probs(CausalLMImpl& model, AdapterBank& bank, const data::PairBatch& batch,
                               const at::Device& device);

// The same for the policy: each pair's two rows through its user's adapter. No graph.
at::Tensor policy_log_probs(CausalLMImpl& model, AdapterBank& bank, const data::PairBatch& batch,
                            const at::Device& device);

// The number of response tokens each of those sums covers (the EOS closing a response included):
// [2B] int64, chosen rows first; dpo_losses' chosen_tokens / rejected_tokens.
at::Tensor response_token_counts(const data::PairBatch& batch);

// Clips each user's gradient to max_norm (L2 over that user's slices of every bank parameter,
// as clip_grad_norm_ over a single-user model's LoRA parameters); returns the pre-clip norms in
// bank order. max_norm <= 0: only measures.
std::vector<double> clip_bank_gradients_per_user(const AdapterBank& bank, torch::nn::Module& model,
                                                 double max_norm);

// The same when a ZeRO engine holds the adapters' reduced gradients in chunks that cut the users'
// slices arbitrarily: each rank sums each user's squares over the gradient it owns, the [users]
// vector is all-reduced (stages 1-2), and each rank scales each user's elements of its own chunk.
// Call after engine.reduce_gradients(); collective at stages 1-2.
std::vector<double> clip_bank_gradients_per_user(const AdapterBank& bank, dist::ZeroEngine& engine,
                                                 dist::Communicator& comm, double max_norm);

}  // namespace tailor
