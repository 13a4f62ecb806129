// The VPL heads against a float64 re-implementation written here from the paper's description,
// last-token pooling against direct indexing, and the VPL export round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include <torch/torch.h>

#include "models/core/lora.h"
#include "models/gpt2/gpt2.h"
#include "models/heads/vpl.h"
#include "trainer/losses/preference_losses.h"
#include "trainer/stages/reward/vpl_export.h"

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

// The VPL training loss for one batch, as the reward stage forms it: Bradley–Terry on the decoded
// rewards with z = mean + exp(logvar / 2) * eps (eps fixed here), plus beta * KL.
at::Tensor vpl_loss(VplHeads& heads, const at::Tensor& context, const at::Tensor& e_chosen,
                    const at::Tensor& e_rejected, const at::Tensor& eps, double beta) {
  const auto [mean, logvar] = heads->encode(context);
  const at::Tensor z = mean + at::exp(0.5 * logvar) * eps;
  const at::Tensor margin = heads->decode(e_chosen, z) - heads->decode(e_rejected, z);
  return (at::softplus(-margin) + beta * kl_to_standard_normal(mean, logvar)).mean();
}

TEST(Vpl, LossMatchesFloat64FormulaAndFiniteDifferences) {
  VplHeads heads = small_heads(/*clamp=*/0);  // no clamp: the loss is smooth everywhere
  heads->to(at::kDouble);
  const int64_t B = 3, C = 2, E = 6, L = 5;
  const double beta = 0.3;
  const at::Tensor context = at::randn({B, C, 2, E}, at::kDouble);
  const at::Tensor ec = at::randn({B, E}, at::kDouble), er = at::randn({B, E}, at::kDouble);
  const at::Tensor eps = at::randn({B, L}, at::kDouble);

  // Value: the formula written out on the module's own encode/decode outputs.
  const auto [mean, logvar] = heads->encode(context);
  const at::Tensor z = mean + at::exp(0.5 * logvar) * eps;
  const at::Tensor margin = heads->decode(ec, z) - heads->decode(er, z);
  double want = 0;
  for (int64_t b = 0; b < B; ++b) {
    double kl = 0;
    for (int64_t l = 0; l < L; ++l) {
      const double m = mean[b][l].item<double>(), lv = logvar[b][l].item<double>();
      kl += 0.5 * (std::exp(lv) + m * m - 1 - lv);
    }
    want += std::log1p(std::exp(-margin[b].item<double>())) + beta * kl;
  }
  want /= B;
  at::Tensor loss = vpl_loss(heads, context, ec, er, eps, beta);
  EXPECT_NEAR(loss.item<double>(), want, 1e-12);

  // Gradient: autograd vs central differences for a few entries of every parameter.
  loss.backward();
  torch::NoGradGuard no_grad;
  for (auto& item : heads->named_parameters()) {
    at::Tensor p = item.value();
    const at::Tensor flat = p.view(-1);
    for (int64_t i = 0; i < std::min<int64_t>(3, flat.numel()); ++i) {
      const double h = 1e-6, x = flat[i].item<double>();
      flat[i] = x + h;
      const double up = vpl_loss(heads, context, ec, er, eps, beta).item<double>();
      flat[i] = x - h;
      const double down = vpl_loss(heads, context, ec, er, eps, beta).item<double>();
      flat[i] = x;
      EXPECT_NEAR(p.grad().view(-1)[i].item<double>(), (up - down) / (2 * h), 1e-7) << item.key();
    }
  }
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

  save_vpl_export(dir, backbone, heads, lora, /*merged=*/false,
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
