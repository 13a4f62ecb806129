#include "train/losses/preference_losses.h"

#include <algorithm>
#include <cmath>

#include <torch/torch.h>

#include "common/error.h"
#include "common/shape_string.h"

namespace tailor {

at::Tensor bradley_terry_loss(const at::Tensor& r_chosen, const at::Tensor& r_rejected) {
  if (!r_chosen.defined() || !r_rejected.defined() || r_chosen.sizes() != r_rejected.sizes() ||
      r_chosen.numel() == 0) {
    throw Error("bradley_terry_loss",
                "expected rewards of the same non-empty shape, got chosen " +
                    (r_chosen.defined() ? shape_string(r_chosen.sizes()) : "undefined") +
                    " and rejected " +
                    (r_rejected.defined() ? shape_string(r_rejected.sizes()) : "undefined"));
  }
  // softplus(x) = log(1 + e^x), computed by torch as x above its threshold (20), so a margin of
  // -1000 gives 1000 rather than log(inf).
  return at::softplus(r_rejected - r_chosen).mean();
}

at::Tensor kl_to_standard_normal(const at::Tensor& mean, const at::Tensor& logvar) {
  if (!mean.defined() || !logvar.defined() || mean.dim() < 1 || mean.sizes() != logvar.sizes()) {
    throw Error("kl_to_standard_normal",
                "expected mean and logvar of the same shape [B, D], got " +
                    (mean.defined() ? shape_string(mean.sizes()) : "undefined") + " and " +
                    (logvar.defined() ? shape_string(logvar.sizes()) : "undefined"));
  }
  return 0.5 * (logvar.exp() + mean.square() - 1.0 - logvar).sum(-1);
}

at::Tensor contrastive_latent_loss(const at::Tensor& means, const at::Tensor& users) {
  if (!means.defined() || means.dim() != 2 || !users.defined() || users.dim() != 1 ||
      users.size(0) != means.size(0) || at::isFloatingType(users.scalar_type())) {
    throw Error("contrastive_latent_loss",
                "expected means [B, D] and integer users [B], got " +
                    (means.defined() ? shape_string(means.sizes()) : "undefined") + " and " +
                    (users.defined() ? shape_string(users.sizes()) : "undefined"));
  }
  const int64_t batch = means.size(0);
  if (batch < 2) return (means * 0).sum();  // keeps the graph: backward() still works
  const at::Tensor unit = means / means.norm(2, {-1}, /*keepdim=*/true).clamp_min(1e-8);
  const at::Tensor cosine = unit.mm(unit.t());  // [B, B]
  const at::Tensor h = users.to(means.device());
  const at::Tensor same = h.unsqueeze(0) == h.unsqueeze(1);
  // -1 for the same user, +1 for different users, 0 on the diagonal (i == j is not a pair).
  at::Tensor sign = 1.0 - 2.0 * same.to(means.scalar_type());
  sign.fill_diagonal_(0.0);
  return (sign * cosine).sum() / static_cast<double>(batch * (batch - 1));
}

const EnumNames<KlSchedule>& kl_schedule_names() {
  static const EnumNames<KlSchedule> table = {{"constant", KlSchedule::kConstant},
                                              {"linear", KlSchedule::kLinear},
                                              {"cosine", KlSchedule::kCosine}};
  return table;
}

const std::string& to_string(KlSchedule schedule) {
  return enum_name(kl_schedule_names(), schedule);
}

double kl_weight(KlSchedule schedule, double beta, int64_t step, int64_t anneal_steps) {
  if (step < 0) throw Error("kl_weight", "negative step " + std::to_string(step));
  if (schedule == KlSchedule::kConstant) return beta;
  if (anneal_steps < 1) {
    throw Error("recipe", "vae.kl_anneal_steps: expected >= 1 for the " + to_string(schedule) +
                              " schedule, got " + std::to_string(anneal_steps));
  }
  const double progress =
      std::min(1.0, static_cast<double>(step) / static_cast<double>(anneal_steps));
  if (schedule == KlSchedule::kLinear) return beta * progress;
  return beta * 0.5 * (1.0 - std::cos(M_PI * progress));
}

}  // namespace tailor
