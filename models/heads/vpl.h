// The conditional VAE reward model of VPL (Poddar et al. 2024, "Personalizing Reinforcement
// Learning from Human Feedback with Variational Preference Learning"; seed report §3.4): a user's
// answers to a few survey questions are encoded into a Gaussian latent z, and the reward of a
// response is decoded from its embedding and z, so one model predicts different preferences for
// different users.
//
// Dimensions: B batch, C context pairs per user, E embedding width (the backbone's n_embd),
// H hidden width, L latent width.
//
//   pair encoder     MLP([e_chosen; e_rejected]) 2E -> H -> H -> L, LeakyReLU(0.2)
//   sequence encoder one self-attention layer over the C pair codes (q, k, v Linear(L, L) with
//                    bias; softmax(q k^T / sqrt(L)) v; mean over the C rows), then Linear heads
//                    for the mean and the log-variance (clamped to [-clamp, clamp] as the
//                    reference code does)
//   decoder          MLP([e(x, y); z]) E + L -> H -> H -> 1, LeakyReLU(0.2)
#pragma once

#include <cstdint>
#include <utility>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

namespace tailor {

struct VplConfig {
  int64_t embed_dim = 0;  // E
  int64_t hidden_dim = 512;
  int64_t latent_dim = 512;
  double logvar_clamp = 1.0;  // 0 = no clamp
};

class VplHeadsImpl : public torch::nn::Module {
 public:
  // Weights get torch's default nn.Linear initialisation from torch's default generator.
  explicit VplHeadsImpl(const VplConfig& config);

  // context [B, C, 2, E] (each context pair's chosen then rejected embedding) ->
  // (mean [B, L], logvar [B, L]).
  std::pair<at::Tensor, at::Tensor> encode(const at::Tensor& context);
  // e [N, E], z [N, L] -> rewards [N].
  at::Tensor decode(const at::Tensor& e, const at::Tensor& z);

  const VplConfig& config() const { return config_; }

  torch::nn::Sequential pair_encoder{nullptr};
  torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr};
  torch::nn::Linear mean_head{nullptr}, logvar_head{nullptr};
  torch::nn::Sequential decoder{nullptr};

 private:
  VplConfig config_;
};
TORCH_MODULE(VplHeads);

// The final hidden state at each row's last real token: hidden [N, T, C], mask [N, T] (1 = real,
// right padding, at least one real token per row) -> [N, C]. What VPL embeds a response with and
// what HF's GPT2ForSequenceClassification scores.
at::Tensor last_token_features(const at::Tensor& hidden, const at::Tensor& mask);

// The reparameterised sample z = mean + exp(logvar / 2) * eps, eps ~ N(0, I) from torch's
// default generator.
at::Tensor sample_latent(const at::Tensor& mean, const at::Tensor& logvar);

}  // namespace tailor
