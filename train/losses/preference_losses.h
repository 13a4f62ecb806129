// Losses of the reward models: Bradley-Terry, VPL's KL term and the contrastive latent loss
// (docs/reward_modeling.md has the method and its references).
// Shapes: B = batch (pairs or users' queries), D = latent size.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/Tensor.h>

#include "common/enum_names.h"

namespace tailor {

// Bradley–Terry pairwise loss (Bradley & Terry 1952; Ouyang et al. 2022 eq. 1):
//   mean_k -log sigmoid(r_chosen_k - r_rejected_k) = mean_k softplus(r_rejected_k - r_chosen_k),
// through softplus so margins of any size stay finite (log-sigmoid of -1000 is -1000, not -inf).
// r_chosen, r_rejected: same shape, at least one element. Returns a scalar.
at::Tensor bradley_terry_loss(const at::Tensor& r_chosen, const at::Tensor& r_rejected);

// KL(N(mean, diag(exp(logvar))) || N(0, I)) per row (Kingma & Welling 2014, appendix B):
//   0.5 * sum_d (exp(logvar_d) + mean_d^2 - 1 - logvar_d).
// mean, logvar: [B, D] (any leading shape [..., D]) -> [B] ([...]).
at::Tensor kl_to_standard_normal(const at::Tensor& mean, const at::Tensor& logvar);

// Contrastive latent loss (seed report §4.4): pulls together the latent means of the same user
// and pushes apart those of different users, over all ordered pairs i != j of the batch:
//   (1 / (B (B - 1))) sum_{i != j} ( -[h_i == h_j] + [h_i != h_j] ) cos(mu_i, mu_j),
// cos(a, b) = a.b / (max(|a|, 1e-8) max(|b|, 1e-8)). means: [B, D]; users (h): [B] integer.
// A scalar; 0 (still attached to `means`' graph) when B < 2.
at::Tensor contrastive_latent_loss(const at::Tensor& means, const at::Tensor& users);

// How the KL term's weight ramps up (recipe key vae.kl_schedule).
enum class KlSchedule { kConstant, kLinear, kCosine };
const EnumNames<KlSchedule>& kl_schedule_names();  // constant, linear, cosine
const std::string& to_string(KlSchedule schedule);

// Weight of the KL term at optimizer step `step` (>= 0), ramping 0 -> beta over anneal_steps
// (the VPL reference anneals with a cosine):
//   constant: beta
//   linear:   beta * min(1, step / anneal_steps)
//   cosine:   beta * 0.5 * (1 - cos(pi * min(1, step / anneal_steps)))
// anneal_steps >= 1 for linear and cosine, else Error("recipe", ...).
double kl_weight(KlSchedule schedule, double beta, int64_t step, int64_t anneal_steps);

}  // namespace tailor
