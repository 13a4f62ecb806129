// The VPL heads against a float64 re-implementation written here from the paper's description,
// last-token pooling against direct indexing, the reward stage's training step (loss terms,
// per-user gradients, PCGrad/MGDA, contrastive term) against a float64 reference and finite
// differences, and the VPL export round trip.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "models/core/lora.h"
#include "models/gpt2/gpt2.h"
#include "models/heads/vpl.h"
#include "models/io/vpl_export.h"
#include "stages/reward/reward_step.h"
#include "test_support.h"

namespace tailor {
namespace {
namespace fs = std::filesystem;

at::Tensor d(const at::Tensor& t) {
  return t.detach().to(at::kDouble);
}
at::Tensor leaky(const at::Tensor& x) {
  return at::where(x > 0, x, 0.2 * x);
}
at::Tensor linear(const torch::nn::Linear& l, const at::Tensor& x) {
  return at::matmul(x, d(l->weight).t()) + d(l->bias);
}
// MLP of three Linear layers (Sequential indices 0, 2, 4) with LeakyReLU(0.2) between.
at::Tensor mlp(torch::nn::Sequential s, const at::Tensor& x) {
  auto l0 = s[0]->as<torch::nn::Linear>(), l2 = s[2]->as<torch::nn::Linear>(),
       l4 = s[4]->as<torch::nn::Linear>();
  auto lin = [](torch::nn::LinearImpl* l, const at::Tensor& v) {
    return at::matmul(v, d(l->weight).t()) + d(l->bias);
  };
  return lin(l4, leaky(lin(l2, leaky(lin(l0, x)))));
}

VplHeads small_heads(double clamp = 1.0) {
  torch::manual_seed(3);
  VplConfig c;
  c.embed_dim = 6;
  c.hidden_dim = 10;
  c.latent_dim = 5;
  c.logvar_clamp = clamp;
  return VplHeads(c);
}

TEST(Vpl, LastTokenFeaturesPicksEachRowsLastRealToken) {
  const at::Tensor hidden = at::randn({3, 5, 4});
  const at::Tensor mask = at::tensor({1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0}).view({3, 5});
  const at::Tensor got = last_token_features(hidden, mask);
  EXPECT_TRUE(at::equal(got[0], hidden[0][4]));
  EXPECT_TRUE(at::equal(got[1], hidden[1][1]));
  EXPECT_TRUE(at::equal(got[2], hidden[2][0]));
}

TEST(Vpl, EncodeAndDecodeMatchFloat64Reference) {
  VplHeads heads = small_heads(/*clamp=*/0.3);  // small clamp so clamping is exercised
  const int64_t B = 2, C = 3, E = 6, L = 5;
  const at::Tensor context = at::randn({B, C, 2, E});
  const auto [mean, logvar] = heads->encode(context);

  // Reference: per user, pair codes -> one attention layer -> mean over rows -> heads.
  const at::Tensor codes = mlp(heads->pair_encoder, d(context).reshape({B, C, 2 * E}));
  const at::Tensor q = linear(heads->q, codes), k = linear(heads->k, codes),
                   v = linear(heads->v, codes);
  at::Tensor attn = at::matmul(q, k.transpose(1, 2)) / std::sqrt(static_cast<double>(L));
  attn = at::exp(attn - std::get<0>(attn.max(-1, true)));
  attn = attn / attn.sum(-1, true);
  const at::Tensor pooled = at::matmul(attn, v).mean(1);
  const at::Tensor want_mean = linear(heads->mean_head, pooled);
  const at::Tensor want_logvar = linear(heads->logvar_head, pooled).clamp(-0.3, 0.3);
  EXPECT_LT((d(mean) - want_mean).abs().max().item<double>(), 1e-5);
  EXPECT_LT((d(logvar) - want_logvar).abs().max().item<double>(), 1e-5);
  EXPECT_GT((want_logvar.abs() == 0.3).sum().item<int64_t>(), 0) << "clamp not exercised";

  const at::Tensor e = at::randn({B, E});
  const at::Tensor z = at::randn({B, L});
  const at::Tensor want = mlp(heads->decoder, at::cat({d(e), d(z)}, 1)).squeeze(1);
  EXPECT_LT((d(heads->decode(e, z)) - want).abs().max().item<double>(), 1e-5);
}

TEST(Vpl, LatentDoesNotDependOnTheOrderOfContextPairs) {
  VplHeads heads = small_heads();
  const at::Tensor context = at::randn({1, 4, 2, 6});
  const at::Tensor shuffled = context.index_select(1, at::tensor({2, 0, 3, 1}));
  EXPECT_LT(
      (heads->encode(context).first - heads->encode(shuffled).first).abs().max().item<float>(),
      1e-5);
  // ... but it does depend on which response of a pair was chosen.
  const at::Tensor flipped = context.flip({2});
  EXPECT_GT((heads->encode(context).first - heads->encode(flipped).first).abs().max().item<float>(),
            1e-4);
}

TEST(Vpl, SampleLatentHasTheRequestedMoments) {
  torch::manual_seed(0);
  const at::Tensor mean = at::full({20000, 2}, 0.5);
  const at::Tensor logvar = at::full({20000, 2}, std::log(4.0));  // std 2
  const at::Tensor z = sample_latent(mean, logvar);
  EXPECT_NEAR(z.mean().item<double>(), 0.5, 0.05);
  EXPECT_NEAR(z.std().item<double>(), 2.0, 0.05);
}

// ---- The reward stage's step (stages/reward/reward_step.h) against a float64 reference.
//
// A small differentiable "backbone" (features = tanh([x_chosen; x_rejected] W^T), W trainable)
// feeds VplHeads in float64; vpl_scores + reward_step_backward, exactly as the stage calls them,
// write the step's gradient. The reference below re-derives every term from the formulas in
// the VPL paper (Poddar et al. 2024; docs/reward_modeling.md) with its own encode/decode (the
// mlp()/linear() helpers above), takes per-objective gradients by central finite differences, and
// combines them with PCGrad / MGDA written out here.

struct StepBatch {
  at::Tensor x_chosen, x_rejected;  // [B, F] backbone inputs
  at::Tensor context;               // [B, C, 2, E] frozen context embeddings
  at::Tensor eps;                   // [B, L] reparameterisation noise
  std::vector<int32_t> users;       // [B]
};

struct StepModel {
  at::Tensor W;  // [E, F]
  VplHeads heads{nullptr};
  std::vector<at::Tensor> params() const {
    std::vector<at::Tensor> out{W};
    for (const auto& p : heads->parameters())
      out.push_back(p);
    return out;
  }
};

constexpr int64_t kStepE = 4, kStepF = 3, kStepL = 3, kStepC = 2;

StepModel step_model() {
  torch::manual_seed(11);
  VplConfig c;
  c.embed_dim = kStepE;
  c.hidden_dim = 6;
  c.latent_dim = kStepL;
  c.logvar_clamp = 0;  // no clamp: the loss is smooth for the finite differences
  StepModel m;
  m.heads = VplHeads(c);
  m.heads->to(at::kDouble);
  m.W = (0.7 * at::randn({kStepE, kStepF}, at::kDouble)).requires_grad_();
  return m;
}

// Users' examples interleaved, with unequal counts, so a per-user mean differs from the batch
// mean. User u's context pairs are drawn around a user-specific centre.
StepBatch step_batch(const std::vector<int32_t>& users) {
  torch::manual_seed(12);
  const int64_t B = static_cast<int64_t>(users.size());
  StepBatch b;
  b.users = users;
  b.x_chosen = at::randn({B, kStepF}, at::kDouble);
  b.x_rejected = at::randn({B, kStepF}, at::kDouble);
  const at::Tensor centre = 1.5 * at::randn({4, 1, 2, kStepE}, at::kDouble);
  b.context = at::randn({B, kStepC, 2, kStepE}, at::kDouble) * 0.3;
  for (int64_t i = 0; i < B; ++i)
    b.context[i] += centre[users[i]];
  b.eps = at::randn({B, kStepL}, at::kDouble);
  return b;
}

// What the stage does in one step, on the small model.
nlohmann::json stage_step(StepModel& m, const StepBatch& b, const RewardLossOptions& o,
                          uint64_t seed = 7) {
  const at::Tensor features = at::tanh(at::matmul(at::cat({b.x_chosen, b.x_rejected}, 0), m.W.t()));
  const RewardScores s = vpl_scores(m.heads, features, b.context, b.eps);
  std::mt19937_64 rng(seed);
  return reward_step_backward(s, b.users, m.params(), o, rng);
}

// The reference objectives at the model's current parameters, from the formulas:
//   l_i = log(1 + exp(-(r_w - r_l))) + beta * 0.5 sum_d (exp(lv_d) + m_d^2 - 1 - lv_d),
//   per_user[u] = mean of l_i over user u's examples, batch = mean of l_i over the batch,
//   contrastive = (1 / (B (B - 1))) sum_{i != j} (h_i == h_j ? -1 : +1) cos(m_i, m_j).
struct StepObjectives {
  std::map<int32_t, double> per_user;
  double batch = 0, bt = 0, kl = 0, contrastive = 0;
};

StepObjectives reference_objectives(const StepModel& m, const StepBatch& b, double beta) {
  torch::NoGradGuard no_grad;
  const int64_t B = static_cast<int64_t>(b.users.size());
  const at::Tensor W = d(m.W);
  const at::Tensor ec = at::tanh(at::matmul(b.x_chosen, W.t()));
  const at::Tensor er = at::tanh(at::matmul(b.x_rejected, W.t()));
  VplHeads heads = m.heads;
  const at::Tensor codes = mlp(heads->pair_encoder, b.context.reshape({B, kStepC, 2 * kStepE}));
  const at::Tensor q = linear(heads->q, codes), k = linear(heads->k, codes),
                   v = linear(heads->v, codes);
  at::Tensor attn = at::exp(at::matmul(q, k.transpose(1, 2)) / std::sqrt(double(kStepL)));
  attn = attn / attn.sum(-1, true);
  const at::Tensor pooled = at::matmul(attn, v).mean(1);
  const at::Tensor mean = linear(heads->mean_head, pooled);
  const at::Tensor logvar = linear(heads->logvar_head, pooled);
  const at::Tensor z = mean + at::exp(0.5 * logvar) * b.eps;
  const at::Tensor rw = mlp(heads->decoder, at::cat({ec, z}, 1)).squeeze(1);
  const at::Tensor rl = mlp(heads->decoder, at::cat({er, z}, 1)).squeeze(1);

  const auto rw_a = rw.accessor<double, 1>(), rl_a = rl.accessor<double, 1>();
  const auto m_a = mean.accessor<double, 2>(), lv_a = logvar.accessor<double, 2>();
  StepObjectives out;
  std::map<int32_t, int64_t> count;
  std::vector<double> norm(B, 0);
  for (int64_t i = 0; i < B; ++i) {
    double kl = 0;
    for (int64_t l = 0; l < kStepL; ++l) {
      kl += 0.5 * (std::exp(lv_a[i][l]) + m_a[i][l] * m_a[i][l] - 1 - lv_a[i][l]);
      norm[i] += m_a[i][l] * m_a[i][l];
    }
    norm[i] = std::max(std::sqrt(norm[i]), 1e-8);
    const double bt = std::log1p(std::exp(-(rw_a[i] - rl_a[i])));
    const double li = bt + beta * kl;
    out.per_user[b.users[i]] += li;
    ++count[b.users[i]];
    out.batch += li / B;
    out.bt += bt / B;
    out.kl += kl / B;
  }
  for (auto& [u, sum] : out.per_user)
    sum /= static_cast<double>(count[u]);
  for (int64_t i = 0; i < B; ++i) {
    for (int64_t j = 0; j < B; ++j) {
      if (i == j) continue;
      double dot = 0;
      for (int64_t l = 0; l < kStepL; ++l)
        dot += m_a[i][l] * m_a[j][l];
      const double cos = dot / (norm[i] * norm[j]);
      out.contrastive += (b.users[i] == b.users[j] ? -cos : cos) / static_cast<double>(B * (B - 1));
    }
  }
  return out;
}

using Vec = std::vector<double>;

Vec axpy(double a, const Vec& x, const Vec& y) {  // a x + y
  Vec out(y);
  for (size_t i = 0; i < x.size(); ++i)
    out[i] += a * x[i];
  return out;
}

// Central differences (h = 1e-6) of every reference objective in every parameter entry, in the
// order of StepModel::params().
struct StepGradients {
  std::map<int32_t, Vec> per_user;
  Vec batch, contrastive;
};

StepGradients reference_gradients(StepModel& m, const StepBatch& b, double beta) {
  torch::NoGradGuard no_grad;
  StepGradients g;
  const double h = 1e-6;
  for (const at::Tensor& p : m.params()) {
    EXPECT_TRUE(p.is_contiguous());
    double* x = p.data_ptr<double>();
    for (int64_t i = 0; i < p.numel(); ++i) {
      const double keep = x[i];
      x[i] = keep + h;
      const StepObjectives up = reference_objectives(m, b, beta);
      x[i] = keep - h;
      const StepObjectives down = reference_objectives(m, b, beta);
      x[i] = keep;
      for (const auto& [u, value] : up.per_user)
        g.per_user[u].push_back((value - down.per_user.at(u)) / (2 * h));
      g.batch.push_back((up.batch - down.batch) / (2 * h));
      g.contrastive.push_back((up.contrastive - down.contrastive) / (2 * h));
    }
  }
  return g;
}

Vec step_model_grads(const StepModel& m) {
  Vec out;
  for (const at::Tensor& p : m.params()) {
    EXPECT_TRUE(p.grad().defined());
    const at::Tensor g = p.grad().contiguous();
    out.insert(out.end(), g.data_ptr<double>(), g.data_ptr<double>() + g.numel());
  }
  return out;
}

// PCGrad (Yu et al. 2020, Algorithm 1): each g_i projected against the ORIGINAL g_j it conflicts
// with, j in `orders[i]`; mean of the projected gradients.
Vec reference_pcgrad(const std::vector<Vec>& g, const std::vector<std::vector<size_t>>& orders) {
  Vec sum(g[0].size(), 0.0);
  for (size_t i = 0; i < g.size(); ++i) {
    Vec gi = g[i];
    for (size_t j : orders[i]) {
      const double c = test::dot(gi, g[j]);
      if (c < 0) gi = axpy(-c / test::dot(g[j], g[j]), g[j], gi);
    }
    sum = axpy(1.0 / static_cast<double>(g.size()), gi, sum);
  }
  return sum;
}

TEST(VplStep, ScoresShareOneLatentPerPairAndUseTheMeanWithoutNoise) {
  StepModel m = step_model();
  const StepBatch b = step_batch({0, 1, 0});
  const int64_t B = 3;
  const at::Tensor features = at::randn({2 * B, kStepE}, at::kDouble);
  const auto [mean, logvar] = m.heads->encode(b.context);
  torch::NoGradGuard no_grad;
  for (const bool noise : {true, false}) {
    const RewardScores s = vpl_scores(m.heads, features, b.context, noise ? b.eps : at::Tensor());
    const at::Tensor z = noise ? d(mean) + at::exp(0.5 * d(logvar)) * b.eps : d(mean);
    const at::Tensor want_w = mlp(m.heads->decoder, at::cat({features.slice(0, 0, B), z}, 1));
    const at::Tensor want_l = mlp(m.heads->decoder, at::cat({features.slice(0, B, 2 * B), z}, 1));
    EXPECT_LT((d(s.chosen) - want_w.squeeze(1)).abs().max().item<double>(), 1e-12) << noise;
    EXPECT_LT((d(s.rejected) - want_l.squeeze(1)).abs().max().item<double>(), 1e-12) << noise;
    EXPECT_TRUE(at::allclose(s.mean, mean));
  }
}

// Two users, 3 + 2 interleaved examples; every mode of the stage's step with the contrastive
// term on (coefficient 0.5) and beta = 0.3, against the reference:
//   none:   grad(batch mean of l_i) + c grad(contrastive)
//   pcgrad: PCGrad mean of the per-user gradients grad(per_user[u]) + c grad(contrastive)
//   mgda:   c* g0 + (1 - c*) g1 with c* = clip((|g1|^2 - g0.g1) / |g0 - g1|^2, 0, 1)
//           + c grad(contrastive)
// The contrastive gradient is added after surgery, as the stage does: it couples users, so it
// belongs to no user's task (see reward_step.h). The test also checks that putting it inside the
// tasks instead would give a different gradient, so the order is really tested.
TEST(VplStep, GradientsMatchFloat64ReferenceAndFiniteDifferences) {
  const double beta = 0.05, coef = 0.5;
  StepModel m = step_model();
  StepBatch b = step_batch({1, 0, 1, 1, 0});
  // user0's two pairs are two of user1's with the answers swapped, so the users disagree.
  for (const auto& [mine, theirs] : {std::pair<int64_t, int64_t>{1, 0}, {4, 2}}) {
    b.x_chosen[mine] = b.x_rejected[theirs];
    b.x_rejected[mine] = b.x_chosen[theirs];
  }
  const StepObjectives ref = reference_objectives(m, b, beta);
  const StepGradients fd = reference_gradients(m, b, beta);
  const Vec& g0 = fd.per_user.at(0);
  const Vec& g1 = fd.per_user.at(1);
  const Vec gc = axpy(coef, fd.contrastive, Vec(g0.size(), 0.0));  // coef * grad contrastive
  ASSERT_EQ(fd.per_user.size(), 2u);
  ASSERT_LT(test::dot(g0, g1), 0) << "the users' gradients should conflict, so PCGrad projects";
  const double scale = std::max({test::max_abs(g0), test::max_abs(g1), test::max_abs(gc)});

  struct Case {
    std::string surgery;
    Vec want;
    double loss;
    double tol;
  };
  std::vector<Case> cases;
  // none: pure float64 autograd, so a tight tolerance (finite-difference error ~1e-9).
  cases.push_back({"none", axpy(1.0, gc, fd.batch), ref.batch + coef * ref.contrastive, 1e-7});
  // Surgery flattens per-user gradients to float32 (grad_surgery.h: flatten_grads), so compare
  // to float32 precision of the gradients' scale.
  const Vec pc = reference_pcgrad({g0, g1}, {{1}, {0}});
  const double mean_user_loss = 0.5 * (ref.per_user.at(0) + ref.per_user.at(1));
  cases.push_back(
      {"pcgrad", axpy(1.0, gc, pc), mean_user_loss + coef * ref.contrastive, 1e-6 * scale});
  const Vec diff = axpy(-1.0, g1, g0);
  const double c_star =
      std::clamp((test::dot(g1, g1) - test::dot(g0, g1)) / test::dot(diff, diff), 0.0, 1.0);
  ASSERT_GT(c_star, 0.0);
  ASSERT_LT(c_star, 1.0);
  const Vec mg = axpy(c_star, g0, axpy(1.0 - c_star, g1, Vec(g0.size(), 0.0)));
  cases.push_back(
      {"mgda", axpy(1.0, gc, mg), mean_user_loss + coef * ref.contrastive, 1e-6 * scale});

  for (const Case& c : cases) {
    RewardLossOptions o;
    o.vae = true;
    o.kl_weight = beta;
    o.contrastive = coef;
    o.grad_surgery = *enum_from_name(grad_surgery_names(), c.surgery);
    const nlohmann::json record = stage_step(m, b, o);
    const Vec got = step_model_grads(m);
    EXPECT_LT(test::max_abs_diff(got, c.want), c.tol) << c.surgery;
    EXPECT_NEAR(record["loss"].get<double>(), c.loss, 1e-12) << c.surgery;
    EXPECT_NEAR(record["bt_loss"].get<double>(), ref.bt, 1e-12) << c.surgery;
    EXPECT_NEAR(record["kl"].get<double>(), ref.kl, 1e-12) << c.surgery;
    EXPECT_NEAR(record["contrastive"].get<double>(), ref.contrastive, 1e-12) << c.surgery;
    if (c.surgery == "mgda") {
      EXPECT_NEAR(record["mgda_min_weight"].get<double>(), std::min(c_star, 1 - c_star), 1e-5);
    }
    // The step replaces .grad(): a second call gives the same gradient, not twice it.
    stage_step(m, b, o);
    EXPECT_LT(test::max_abs_diff(step_model_grads(m), got), 1e-12) << c.surgery;
  }

  // These references are far enough apart that the checks above tell them apart: the per-user
  // mean against the batch mean, and the contrastive term inside each user's task (PCGrad then
  // projects it too) against after surgery.
  const Vec pc_inside = reference_pcgrad({axpy(1.0, gc, g0), axpy(1.0, gc, g1)}, {{1}, {0}});
  EXPECT_GT(test::max_abs_diff(pc_inside, cases[1].want), 100 * cases[1].tol);
  EXPECT_GT(test::max_abs_diff(fd.batch, axpy(0.5, g0, axpy(0.5, g1, Vec(g0.size(), 0.0)))),
            100 * cases[0].tol);
}

// Three users: PCGrad's visiting order is random (drawn from the stage's generator), so the
// step's gradient must equal the reference for one of the 2^3 orders, and the orders must not
// all agree (else the check would be empty). Without surgery the step is the batch mean.
TEST(VplStep, ThreeUsersPCGradIsOneOfTheVisitingOrders) {
  const double beta = 0.1;
  StepModel m = step_model();
  const StepBatch b = step_batch({2, 0, 1, 0, 2, 2, 1});
  const StepGradients fd = reference_gradients(m, b, beta);
  ASSERT_EQ(fd.per_user.size(), 3u);
  const std::vector<Vec> g = {fd.per_user.at(0), fd.per_user.at(1), fd.per_user.at(2)};
  const double tol =
      1e-6 * std::max({test::max_abs(g[0]), test::max_abs(g[1]), test::max_abs(g[2])});
  RewardLossOptions o;
  o.vae = true;
  o.kl_weight = beta;
  o.grad_surgery = GradSurgery::kPcgrad;
  for (uint64_t seed : {1, 2, 3}) {
    stage_step(m, b, o, seed);
    const Vec got = step_model_grads(m);
    double best = 1e300, worst = 0;
    for (int bits = 0; bits < 8; ++bits) {
      std::vector<std::vector<size_t>> orders(3);
      for (size_t i = 0; i < 3; ++i) {
        std::vector<size_t> others;
        for (size_t j = 0; j < 3; ++j)
          if (j != i) others.push_back(j);
        if (bits >> i & 1) std::swap(others[0], others[1]);
        orders[i] = others;
      }
      const double diff = test::max_abs_diff(got, reference_pcgrad(g, orders));
      best = std::min(best, diff);
      worst = std::max(worst, diff);
    }
    EXPECT_LT(best, tol) << "seed " << seed;
    EXPECT_GT(worst, 100 * tol) << "the visiting order should matter for these gradients";
  }
  o.grad_surgery = GradSurgery::kNone;
  stage_step(m, b, o);
  EXPECT_LT(test::max_abs_diff(step_model_grads(m), fd.batch), 1e-7);
}

TEST(Vpl, ExportReloadsWithIdenticalRewards) {
  const fs::path dir = fs::temp_directory_path() / "tailor_test_vpl_export";
  fs::remove_all(dir);
  torch::manual_seed(5);
  GPT2Config config;
  config.vocab_size = 50257;  // the bundled tokenizer is exported with the model
  config.n_positions = 16;
  config.n_embd = 8;
  config.n_layer = 1;
  config.n_head = 2;
  GPT2LMHead backbone(config);
  LoraConfig lora{4, 8.0, 0.0, false, {"c_attn"}};
  apply_lora(*backbone, lora);
  {
    torch::NoGradGuard no_grad;
    for (auto& item : backbone->named_parameters())
      if (item.key().find("lora_B") != std::string::npos) item.value().normal_(0, 0.5);
  }
  VplConfig vc;
  vc.embed_dim = 8;
  vc.hidden_dim = 12;
  vc.latent_dim = 4;
  VplHeads heads(vc);
  const at::Tensor ids = at::randint(0, 50257, {3, 7}, at::kLong);
  const at::Tensor mask = at::ones({3, 7}, at::kLong);
  const at::Tensor z = at::randn({3, 4});
  backbone->eval();
  const at::Tensor want =
      heads->decode(last_token_features(backbone->hidden_states(ids, mask), mask), z);

  save_vpl_export(dir, *backbone, heads, lora, /*merged=*/false,
                  fs::path(TAILOR_SOURCE_DIR) / "assets/tokenizers/gpt2");
  EXPECT_TRUE(fs::is_regular_file(dir / "vpl_heads.safetensors"));
  EXPECT_TRUE(fs::is_regular_file(dir / "backbone/adapter/adapter_config.json"));
  auto [loaded_backbone, loaded_heads] = load_vpl_export(dir);
  loaded_backbone->eval();
  const at::Tensor got =
      loaded_heads->decode(last_token_features(loaded_backbone->hidden_states(ids, mask), mask), z);
  EXPECT_LT((got - want).abs().max().item<float>(), 1e-5);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tailor
