#include "stages/reward/reward_step.h"

#include <algorithm>
#include <numeric>

#include <torch/torch.h>

#include "common/error.h"
#include "common/shape_string.h"
#include "train/losses/preference_losses.h"
#include "train/optim/grad_surgery.h"

namespace tailor {

namespace {

void zero_grads(const std::vector<at::Tensor>& params) {
  at::NoGradGuard no_grad;
  for (const auto& p : params) {
    at::Tensor& g = p.mutable_grad();
    if (g.defined()) g.zero_();
  }
}

bool low_precision(const at::Tensor& t) {
  return t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf;
}

// float32 for reduced-precision tensors (bf16, fp16); float32 and float64 as they are.
at::Tensor widened(const at::Tensor& t) {
  return low_precision(t) ? t.to(at::kFloat) : t;
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

nlohmann::json reward_step_accumulate(const MicroBatchForward& forward, int64_t micro_batch,
                                      const std::vector<int32_t>& batch_users,
                                      const at::Tensor& mean, const at::Tensor& logvar,
                                      const std::vector<at::Tensor>& params,
                                      const RewardLossOptions& o, std::mt19937_64& rng) {
  const int64_t N = static_cast<int64_t>(batch_users.size());
  if (N == 0) throw Error("reward_step", "empty batch");
  if (micro_batch < 1)
    throw Error("reward_step", "micro_batch must be >= 1, got " + std::to_string(micro_batch));
  if (o.vae && (!mean.defined() || !logvar.defined() || mean.dim() != 2 || mean.size(0) != N))
    throw Error("reward_step", "VPL needs the step's latent mean and logvar [" + std::to_string(N) +
                                   ", L], got " +
                                   (mean.defined() ? shape_string(mean.sizes()) : "undefined"));
  nlohmann::json record;
  const at::Tensor users =
      at::tensor(std::vector<int64_t>(batch_users.begin(), batch_users.end()), at::kLong);
  // The per-example KL and the contrastive term are taken once on the whole step's latents.
  at::Tensor kl, contrastive;
  if (o.vae) {
    kl = kl_to_standard_normal(widened(mean), widened(logvar));  // [N]
    record["kl"] = kl.mean().item<double>();
    if (o.contrastive > 0) {
      contrastive = contrastive_latent_loss(widened(mean), users);
      record["contrastive"] = contrastive.item<double>();
    }
  }
  const int64_t K = (N + micro_batch - 1) / micro_batch;
  double bt_sum = 0, correct = 0;
  // Per-example losses l_i of examples [begin, end): -log sigmoid(margin) + beta_t KL.
  const auto micro_losses = [&](int64_t begin, int64_t end) {
    const RewardScores s = forward(begin, end);
    if (!s.chosen.defined() || !s.rejected.defined() || s.chosen.dim() != 1 ||
        s.chosen.size(0) != end - begin || s.rejected.sizes() != s.chosen.sizes())
      throw Error("reward_step", "expected rewards [" + std::to_string(end - begin) +
                                     "] for examples " + std::to_string(begin) + ".." +
                                     std::to_string(end - 1));
    const at::Tensor chosen = widened(s.chosen), rejected = widened(s.rejected);
    const at::Tensor bt = at::softplus(rejected - chosen);
    bt_sum += bt.sum().item<double>();
    correct += (chosen > rejected).sum().item<double>();
    return o.vae ? bt + o.kl_weight * kl.slice(0, begin, end) : bt;
  };
  // VPL: the latents' graph is shared by every micro-batch (and the contrastive term), so it is
  // retained until the last backward that needs it.
  const auto latents_needed_after = [&](int64_t k) {
    return o.vae && (k + 1 < K || contrastive.defined());
  };

  zero_grads(params);
  if (o.grad_surgery == GradSurgery::kNone) {
    // bf16 parameters: micro-batch gradients summed in float32 and rounded once.
    const bool widen = K > 1 && std::any_of(params.begin(), params.end(), low_precision);
    at::Tensor sum;
    double loss = 0;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t begin = k * micro_batch, end = std::min(N, begin + micro_batch);
      const at::Tensor loss_k = micro_losses(begin, end).sum() / static_cast<double>(N);
      loss += loss_k.item<double>();
      loss_k.backward({}, /*retain_graph=*/latents_needed_after(k));
      if (widen) {
        const at::Tensor g = flatten_grads(params);
        sum = sum.defined() ? sum.add_(g) : g;
        zero_grads(params);
      }
    }
    if (widen) assign_flat_grad(params, sum);
    if (contrastive.defined()) {
      (o.contrastive * contrastive).backward();
      loss += o.contrastive * contrastive.item<double>();
    }
    record["loss"] = loss;
    record["bt_loss"] = bt_sum / static_cast<double>(N);
    record["batch_accuracy"] = correct / static_cast<double>(N);
    return record;
  }
  // One backward per user present in each micro-batch, through its forward graph (retained until
  // its last user): task t's gradient is that of its user's examples' summed loss over n_t, the
  // user's examples in the whole step, so the micro-batches add up to grad L_t.
  std::vector<int32_t> present = batch_users;
  std::sort(present.begin(), present.end());
  present.erase(std::unique(present.begin(), present.end()), present.end());
  const size_t T = present.size();
  std::vector<int64_t> count(T, 0);
  for (int32_t u : batch_users)
    ++count[std::lower_bound(present.begin(), present.end(), u) - present.begin()];
  std::vector<at::Tensor> grads(T);
  std::vector<double> task_loss(T, 0);
  for (int64_t k = 0; k < K; ++k) {
    const int64_t begin = k * micro_batch, end = std::min(N, begin + micro_batch);
    const at::Tensor per_example = micro_losses(begin, end);
    const at::Tensor mine = users.slice(0, begin, end);
    std::vector<int32_t> here(batch_users.begin() + begin, batch_users.begin() + end);
    std::sort(here.begin(), here.end());
    here.erase(std::unique(here.begin(), here.end()), here.end());
    for (size_t j = 0; j < here.size(); ++j) {
      const size_t t = std::lower_bound(present.begin(), present.end(), here[j]) - present.begin();
      const at::Tensor loss_t =
          per_example.masked_select(mine == here[j]).sum() / static_cast<double>(count[t]);
      task_loss[t] += loss_t.item<double>();
      zero_grads(params);
      loss_t.backward({}, /*retain_graph=*/j + 1 < here.size() || latents_needed_after(k));
      const at::Tensor g = flatten_grads(params);
      grads[t] = grads[t].defined() ? grads[t].add_(g) : g;
    }
  }
  const at::Tensor G = at::stack(grads);  // [T, P]
  at::Tensor combined;
  if (o.grad_surgery == GradSurgery::kPcgrad) {
    combined = pcgrad(G, rng, "mean");
  } else {
    const auto alpha = mgda_weights(G);
    combined = mgda_combine(G, alpha) / static_cast<double>(T);  // mean scale, like pcgrad's
    record["mgda_min_weight"] = *std::min_element(alpha.begin(), alpha.end());
  }
  zero_grads(params);
  assign_flat_grad(params, combined);
  double loss = std::accumulate(task_loss.begin(), task_loss.end(), 0.0) / static_cast<double>(T);
  // The contrastive term couples users (it is defined on pairs of examples of different users),
  // so it is no user's task: its gradient is added after surgery, not split by user.
  if (contrastive.defined()) {
    (o.contrastive * contrastive).backward();
    loss += o.contrastive * contrastive.item<double>();
  }
  record["loss"] = loss;
  record["bt_loss"] = bt_sum / static_cast<double>(N);
  record["batch_accuracy"] = correct / static_cast<double>(N);
  return record;
}

nlohmann::json reward_step_backward(const RewardScores& s, const std::vector<int32_t>& users,
                                    const std::vector<at::Tensor>& params,
                                    const RewardLossOptions& o, std::mt19937_64& rng) {
  const int64_t B = s.chosen.defined() ? s.chosen.size(0) : 0;
  if (static_cast<int64_t>(users.size()) != B)
    throw Error("reward_step",
                "expected " + std::to_string(B) + " users, got " + std::to_string(users.size()));
  return reward_step_accumulate([&](int64_t, int64_t) { return s; }, std::max<int64_t>(B, 1), users,
                                s.mean, s.logvar, params, o, rng);
}

}  // namespace tailor
