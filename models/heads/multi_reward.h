// The multi-reward model of 20 Questions: a frozen backbone's features of a (prompt, completion)
// (train/features/response_features.h) pass through one hidden layer, and one linear head per
// training preference scores the hidden vector:
//
//   h(x, y) = W1 ((f(x, y) - mean) / scale) + b1      [H], dropout (p = 0.5) while training
//   r_k(x, y) = a_k . h(x, y) + c_k                    k = 1..K (the training oracles)
//
// The paper adds the hidden layer without a nonlinearity, so h is affine in the features; the
// per-dimension standardisation (mean, scale: the training samples' statistics, saved with the
// weights) keeps features of very different magnitudes from steering the first steps.
// A new user is a preference embedding w in R^H that replaces the heads: r_w(x, y) = w . h(x, y).
// Dimensions: N rows, D = the backbone's hidden size, H = hidden_dim (128), K = heads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

namespace tailor {

struct MultiRewardConfig {
  int64_t embed_dim = 0;  // D
  int64_t hidden_dim = 128;
  double dropout = 0.5;
  std::vector<std::string> heads;  // one name per head (the oracles it learned), K >= 1
};

class MultiRewardImpl : public torch::nn::Module {
 public:
  // Linear layers get torch's default initialisation from torch's default generator; mean 0 and
  // scale 1 until set_standardization().
  explicit MultiRewardImpl(const MultiRewardConfig& config);

  // features [N, D] -> h [N, H] (dropout only in training mode).
  at::Tensor hidden(const at::Tensor& features);
  // features [N, D] -> rewards [N, K].
  at::Tensor forward(const at::Tensor& features);
  // The unpersonalised model's embedding: the mean of the K heads' weight vectors [H].
  at::Tensor mean_head() const;

  // Rescales h by s = the largest head's norm (W1, b1 times s; the heads divided by s), which
  // leaves every head's reward unchanged and puts every head on or inside the unit ball: the
  // 20 Questions prior over a user's embedding is uniform on that ball, so after this a user as
  // decided as the most decided training oracle is inside the prior, whatever scale training
  // happened to split between the two layers. Returns s.
  double normalize_heads();

  // The training features' per-dimension mean and standard deviation (a zero deviation counts
  // as 1, so a constant feature stays 0).
  void set_standardization(const at::Tensor& features);

  const MultiRewardConfig& config() const { return config_; }

  torch::nn::Linear hidden_layer{nullptr};  // D -> H
  torch::nn::Dropout dropout{nullptr};
  torch::nn::Linear heads{nullptr};        // H -> K
  at::Tensor feature_mean, feature_scale;  // buffers [D]

 private:
  MultiRewardConfig config_;
};
TORCH_MODULE(MultiReward);

}  // namespace tailor
