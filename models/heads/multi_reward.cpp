#include "models/heads/multi_reward.h"

#include <c10/core/GradMode.h>

#include "common/error.h"

namespace tailor {

MultiRewardImpl::MultiRewardImpl(const MultiRewardConfig& config) : config_(config) {
  if (config.embed_dim < 1 || config.hidden_dim < 1)
    throw Error("multi_reward", "embed_dim and hidden_dim must be >= 1");
  if (config.heads.empty()) throw Error("multi_reward", "needs at least one head");
  if (!(config.dropout >= 0 && config.dropout < 1))
    throw Error("multi_reward", "dropout must be in [0, 1)");
  hidden_layer = register_module(
      "hidden", torch::nn::Linear(torch::nn::LinearOptions(config.embed_dim, config.hidden_dim)));
  dropout = register_module("dropout", torch::nn::Dropout(config.dropout));
  heads =
      register_module("heads", torch::nn::Linear(torch::nn::LinearOptions(
                                   config.hidden_dim, static_cast<int64_t>(config.heads.size()))));
  feature_mean = register_buffer("feature_mean", at::zeros({config.embed_dim}));
  feature_scale = register_buffer("feature_scale", at::ones({config.embed_dim}));
}

at::Tensor MultiRewardImpl::hidden(const at::Tensor& features) {
  if (features.dim() != 2 || features.size(1) != config_.embed_dim)
    throw Error("multi_reward", "features must be [N, " + std::to_string(config_.embed_dim) +
                                    "], got " + std::to_string(features.dim()) + " dims");
  const at::Tensor x = (features.to(feature_mean.scalar_type()) - feature_mean) / feature_scale;
  return dropout(hidden_layer(x));
}

at::Tensor MultiRewardImpl::forward(const at::Tensor& features) {
  return heads(hidden(features));
}

at::Tensor MultiRewardImpl::mean_head() const {
  return heads->weight.detach().mean(0);
}

double MultiRewardImpl::normalize_heads() {
  c10::NoGradGuard no_grad;
  const double s = heads->weight.norm(2, {1}).max().item<double>();
  if (!(s > 0)) throw Error("multi_reward", "every head is zero; nothing to normalise");
  hidden_layer->weight.mul_(s);
  hidden_layer->bias.mul_(s);
  heads->weight.div_(s);
  return s;
}

void MultiRewardImpl::set_standardization(const at::Tensor& features) {
  c10::NoGradGuard no_grad;
  const at::Tensor f = features.to(feature_mean.scalar_type());
  feature_mean.copy_(f.mean(0));
  at::Tensor scale = f.std(0, /*unbiased=*/false);
  feature_scale.copy_(at::where(scale > 0, scale, at::ones_like(scale)));
}

}  // namespace tailor
