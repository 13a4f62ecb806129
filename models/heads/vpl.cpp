#include "models/heads/vpl.h"

#include <cmath>

#include <torch/nn/modules/activation.h>

#include "common/error.h"

namespace tailor {
namespace {

torch::nn::Sequential mlp(int64_t in, int64_t hidden, int64_t out) {
  const auto leaky = torch::nn::LeakyReLUOptions().negative_slope(0.2);
  return torch::nn::Sequential(torch::nn::Linear(in, hidden), torch::nn::LeakyReLU(leaky),
                               torch::nn::Linear(hidden, hidden), torch::nn::LeakyReLU(leaky),
                               torch::nn::Linear(hidden, out));
}

}  // namespace

VplHeadsImpl::VplHeadsImpl(const VplConfig& config) : config_(config) {
  if (config.embed_dim <= 0 || config.hidden_dim <= 0 || config.latent_dim <= 0)
    throw Error("vpl", "embed_dim, hidden_dim and latent_dim must be positive");
  const int64_t E = config.embed_dim, H = config.hidden_dim, L = config.latent_dim;
  pair_encoder = register_module("pair_encoder", mlp(2 * E, H, L));
  q = register_module("q", torch::nn::Linear(L, L));
  k = register_module("k", torch::nn::Linear(L, L));
  v = register_module("v", torch::nn::Linear(L, L));
  mean_head = register_module("mean_head", torch::nn::Linear(L, L));
  logvar_head = register_module("logvar_head", torch::nn::Linear(L, L));
  decoder = register_module("decoder", mlp(E + L, H, 1));
}

std::pair<at::Tensor, at::Tensor> VplHeadsImpl::encode(const at::Tensor& context) {
  TORCH_CHECK(context.dim() == 4 && context.size(2) == 2 && context.size(3) == config_.embed_dim,
              "VPL context must be [B, C, 2, E] with E = ", config_.embed_dim, ", got ",
              context.sizes());
  const auto B = context.size(0), C = context.size(1);
  const auto codes = pair_encoder->forward(context.reshape({B, C, 2 * config_.embed_dim}));
  const auto scores = at::matmul(q->forward(codes), k->forward(codes).transpose(1, 2)) /
                      std::sqrt(static_cast<double>(config_.latent_dim));        // [B, C, C]
  const auto attended = at::matmul(at::softmax(scores, -1), v->forward(codes));  // [B, C, L]
  const auto pooled = attended.mean(1);                                          // [B, L]
  auto logvar = logvar_head->forward(pooled);
  if (config_.logvar_clamp > 0) logvar = logvar.clamp(-config_.logvar_clamp, config_.logvar_clamp);
  return {mean_head->forward(pooled), logvar};
}

at::Tensor VplHeadsImpl::decode(const at::Tensor& e, const at::Tensor& z) {
  return decoder->forward(at::cat({e, z}, -1)).squeeze(-1);
}

at::Tensor last_token_features(const at::Tensor& hidden, const at::Tensor& mask) {
  const auto last = mask.sum(1).to(at::kLong) - 1;  // [N]
  TORCH_CHECK(last.min().item<int64_t>() >= 0, "every row needs at least one real token");
  const auto index = last.view({-1, 1, 1}).expand({hidden.size(0), 1, hidden.size(2)});
  return hidden.gather(1, index).squeeze(1);
}

at::Tensor sample_latent(const at::Tensor& mean, const at::Tensor& logvar) {
  return mean + at::exp(0.5 * logvar) * at::randn_like(mean);
}

}  // namespace tailor
