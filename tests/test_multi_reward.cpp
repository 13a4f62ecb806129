// The multi-reward model of 20 Questions (models/heads/multi_reward.h) and its export
// (models/io/multi_reward_export.h): the forward pass against float64 loops written here, the
// head normalisation (rewards unchanged, largest head norm 1), the standardisation statistics,
// an export round trip on a tiny GPT-2 backbone, and the load errors.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "models/gpt2/gpt2.h"
#include "models/heads/multi_reward.h"
#include "models/io/multi_reward_export.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace tailor {
namespace {

MultiReward tiny_multi_reward(int64_t D, int64_t H, uint64_t seed) {
  torch::manual_seed(seed);
  MultiRewardConfig c;
  c.embed_dim = D;
  c.hidden_dim = H;
  c.heads = {"new_lines", "short_words", "readability"};
  MultiReward model(c);
  model->to(at::kDouble);
  return model;
}

// rewards[n][k] = sum_j A[k][j] (sum_i W[j][i] (f[n][i] - mean[i]) / scale[i] + b[j]) + c[k],
// in plain float64 loops.
std::vector<std::vector<double>> reference_rewards(MultiRewardImpl& m, const at::Tensor& f) {
  auto W = m.hidden_layer->weight.accessor<double, 2>();
  auto b = m.hidden_layer->bias.accessor<double, 1>();
  auto A = m.heads->weight.accessor<double, 2>();
  auto c = m.heads->bias.accessor<double, 1>();
  auto mean = m.feature_mean.accessor<double, 1>();
  auto scale = m.feature_scale.accessor<double, 1>();
  auto x = f.accessor<double, 2>();
  std::vector<std::vector<double>> out(f.size(0));
  for (int64_t n = 0; n < f.size(0); ++n) {
    std::vector<double> h(W.size(0));
    for (int64_t j = 0; j < W.size(0); ++j) {
      h[j] = b[j];
      for (int64_t i = 0; i < W.size(1); ++i)
        h[j] += W[j][i] * (x[n][i] - mean[i]) / scale[i];
    }
    for (int64_t k = 0; k < A.size(0); ++k) {
      double r = c[k];
      for (int64_t j = 0; j < A.size(1); ++j)
        r += A[k][j] * h[j];
      out[n].push_back(r);
    }
  }
  return out;
}

TEST(MultiReward, ForwardIsTheAffineHiddenLayerThenTheHeadsInFloat64) {
  MultiReward m = tiny_multi_reward(5, 7, 3);
  torch::manual_seed(4);
  const at::Tensor train = at::randn({40, 5}, at::kDouble) * 3 + 2;
  m->set_standardization(train);
  // The statistics are the per-column mean and population standard deviation.
  auto t = train.accessor<double, 2>();
  for (int64_t i = 0; i < 5; ++i) {
    double s = 0, ss = 0;
    for (int64_t n = 0; n < 40; ++n)
      s += t[n][i];
    for (int64_t n = 0; n < 40; ++n)
      ss += (t[n][i] - s / 40) * (t[n][i] - s / 40);
    EXPECT_NEAR(m->feature_mean[i].item<double>(), s / 40, 1e-12);
    EXPECT_NEAR(m->feature_scale[i].item<double>(), std::sqrt(ss / 40), 1e-12);
  }
  m->eval();
  const at::Tensor f = at::randn({6, 5}, at::kDouble);
  const at::Tensor r = m->forward(f);
  const auto expected = reference_rewards(*m, f);
  for (int64_t n = 0; n < 6; ++n)
    for (int64_t k = 0; k < 3; ++k)
      EXPECT_NEAR(r[n][k].item<double>(), expected[n][k], 1e-12) << n << "," << k;
  // The unpersonalised embedding is the mean of the heads' weight rows.
  const at::Tensor mean_head = m->mean_head();
  for (int64_t j = 0; j < 7; ++j) {
    double s = 0;
    for (int64_t k = 0; k < 3; ++k)
      s += m->heads->weight[k][j].item<double>();
    EXPECT_NEAR(mean_head[j].item<double>(), s / 3, 1e-15);
  }
}

TEST(MultiReward, NormalizingTheHeadsKeepsEveryRewardAndPutsTheHeadsInTheUnitBall) {
  MultiReward m = tiny_multi_reward(4, 6, 5);
  {
    torch::NoGradGuard no_grad;
    m->heads->weight.mul_(9.0);  // heads of norm ~ several, as training leaves them
  }
  m->eval();
  torch::manual_seed(6);
  const at::Tensor f = at::randn({8, 4}, at::kDouble);
  const auto before = reference_rewards(*m, f);
  double largest = 0;
  for (int64_t k = 0; k < 3; ++k) {
    double ss = 0;
    for (int64_t j = 0; j < 6; ++j)
      ss += std::pow(m->heads->weight[k][j].item<double>(), 2);
    largest = std::max(largest, std::sqrt(ss));
  }
  EXPECT_NEAR(m->normalize_heads(), largest, 1e-12);
  const at::Tensor after = m->forward(f);
  for (int64_t n = 0; n < 8; ++n)
    for (int64_t k = 0; k < 3; ++k)
      EXPECT_NEAR(after[n][k].item<double>(), before[n][k], 1e-11);
  EXPECT_NEAR(m->heads->weight.norm(2, {1}).max().item<double>(), 1.0, 1e-14);
}

TEST(MultiReward, DropoutActsOnlyWhileTraining) {
  MultiReward m = tiny_multi_reward(4, 64, 7);
  const at::Tensor f = at::randn({3, 4}, at::kDouble);
  m->eval();
  const at::Tensor h_eval = m->hidden(f);
  m->train();
  const at::Tensor h_train = m->hidden(f);
  // Dropout 0.5 zeroes about half the units and doubles the rest.
  const double zeros = (h_train == 0).to(at::kDouble).mean().item<double>();
  EXPECT_GT(zeros, 0.3);
  EXPECT_LT(zeros, 0.7);
  const at::Tensor kept = h_train != 0;
  EXPECT_LT(
      (h_train.masked_select(kept) - 2 * h_eval.masked_select(kept)).abs().max().item<double>(),
      1e-12);
}

GPT2Config tiny_backbone_config() {
  GPT2Config config;
  config.vocab_size = 61;
  config.n_positions = 16;
  config.n_embd = 8;
  config.n_layer = 1;
  config.n_head = 2;
  config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = 0.0;
  return config;
}

TEST(MultiRewardExport, RoundTripKeepsTheRewardsTheBackboneAndTheEncoding) {
  const fs::path dir = fs::temp_directory_path() / "tailor_multi_reward_export";
  fs::remove_all(dir);
  torch::manual_seed(11);
  GPT2LMHead backbone(tiny_backbone_config());
  backbone->eval();
  torch::manual_seed(12);
  MultiRewardConfig c;
  c.embed_dim = 8;
  c.hidden_dim = 5;
  c.heads = {"a", "b"};
  MultiReward model(c);
  model->set_standardization(at::randn({20, 8}) * 2 + 1);
  model->eval();
  const std::string id =
      save_multi_reward_export(dir, *backbone, *model, {PromptTemplate::kMistralInstruct, 77},
                               fs::path(TAILOR_SOURCE_DIR) / "assets/tokenizers/gpt2");
  EXPECT_EQ(id.size(), 16u);
  EXPECT_EQ(multi_reward_export_id(dir), id);
  EXPECT_TRUE(is_multi_reward_dir(dir));

  MultiRewardExport loaded = load_multi_reward_export(dir);
  EXPECT_EQ(loaded.id, id);
  EXPECT_EQ(loaded.encoding.prompt_template, PromptTemplate::kMistralInstruct);
  EXPECT_EQ(loaded.encoding.max_length, 77);
  EXPECT_EQ(loaded.model->config().heads, c.heads);
  const at::Tensor f = at::randn({4, 8});
  EXPECT_TRUE(at::equal(loaded.model->forward(f), model->forward(f)));
  const at::Tensor ids = at::tensor(std::vector<int64_t>{1, 5, 9, 2}).view({1, 4});
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(loaded.backbone->hidden_states(ids, at::ones_like(ids)),
                        backbone->hidden_states(ids, at::ones_like(ids))));

  // A changed weights file no longer matches the id the profiles recorded.
  {
    std::ofstream out(dir / "multi_reward.safetensors", std::ios::app | std::ios::binary);
    out << " ";
  }
  EXPECT_NE(test::error_of([&] { load_multi_reward_export(dir); }).find("its hash is not the id"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              load_multi_reward_export(dir / "backbone");
            }).find("no multi_reward_config.json (not a multi-reward export"),
            std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tailor
