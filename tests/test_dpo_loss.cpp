// DPO losses (train/losses/dpo_loss.h) against values worked out by hand, and their gradient
// with respect to LoRA adapter weights against central finite differences on a float64 model
// whose reference policy is the same model with the adapters off.
#include <gtest/gtest.h>

#include <cmath>

#include <torch/torch.h>

#include "common/error.h"
#include "models/core/adapter_bank.h"
#include "models/core/causal_lm.h"
#include "models/registry.h"
#include "train/losses/dpo_loss.h"

namespace tailor {
namespace {

at::Tensor t1(double v) {
  return at::full({1}, v, at::kDouble);
}

TEST(DpoLoss, MatchesHandComputedValues) {
  // h = (-3 - -4) - (-5 - -4) = 2; beta = 0.5 -> beta h = 1.
  const at::Tensor pc = t1(-3), pr = t1(-5), rc = t1(-4), rr = t1(-4);
  DpoLossConfig sigmoid{DpoLossType::kSigmoid, 0.5, 0.0};
  const DpoLosses s = dpo_losses(pc, pr, rc, rr, sigmoid);
  EXPECT_NEAR(s.losses.item<double>(), std::log1p(std::exp(-1.0)), 1e-15);  // -log sigmoid(1)
  EXPECT_NEAR(s.chosen_rewards.item<double>(), 0.5, 1e-15);
  EXPECT_NEAR(s.rejected_rewards.item<double>(), -0.5, 1e-15);
  DpoLossConfig cdpo{DpoLossType::kSigmoid, 0.5, 0.1};
  EXPECT_NEAR(dpo_losses(pc, pr, rc, rr, cdpo).losses.item<double>(),
              0.9 * std::log1p(std::exp(-1.0)) + 0.1 * std::log1p(std::exp(1.0)), 1e-15);
  DpoLossConfig ipo{DpoLossType::kIpo, 0.5, 0.0};  // (h - 1/(2 beta))^2 = (2 - 1)^2
  EXPECT_NEAR(dpo_losses(pc, pr, rc, rr, ipo).losses.item<double>(), 1.0, 1e-15);
  // A huge margin stays finite (softplus, not log(sigmoid)).
  const double far = dpo_losses(t1(0), t1(-1e4), t1(0), t1(0), sigmoid).losses.item<double>();
  EXPECT_TRUE(std::isfinite(far));
  EXPECT_LT(far, 1e-100);
  EXPECT_NEAR(dpo_losses(t1(-1e4), t1(0), t1(0), t1(0), sigmoid).losses.item<double>(), 5000, 1e-9);
}

TEST(DpoLoss, PolicyEqualToReferenceGivesLogTwoAndZeroRewards) {
  const at::Tensor logps = at::tensor({-3.5, -12.25, -0.5}, at::kDouble);
  const at::Tensor other = at::tensor({-7.0, -1.0, -2.0}, at::kDouble);
  const DpoLosses d = dpo_losses(logps, other, logps, other, {DpoLossType::kSigmoid, 0.01, 0.0});
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_DOUBLE_EQ(d.losses[i].item<double>(), std::log(2.0));
    EXPECT_EQ(d.chosen_rewards[i].item<double>(), 0.0);
    EXPECT_EQ(d.rejected_rewards[i].item<double>(), 0.0);
  }
}

TEST(DpoLoss, ResponseLogpsSumsOnlyTheLabelledNextTokens) {
  // B = 1, T = 3, V = 2; labels: the prompt token 0 is masked, tokens 1 and 2 are learned.
  const at::Tensor logits = at::tensor({0.0, 1.0, 2.0, 0.0, 0.5, 0.5}, at::kDouble).view({1, 3, 2});
  const at::Tensor labels = at::tensor(std::vector<int64_t>{-100, 1, 0}, at::kLong).view({1, 3});
  at::Tensor counts;
  const double got = response_logps(logits, labels, &counts).item<double>();
  // position 0 predicts label[1] = 1 from logits (0, 1); position 1 predicts label[2] = 0 from (2,
  // 0).
  const double expected =
      (1.0 - std::log(1.0 + std::exp(1.0))) + (2.0 - std::log(std::exp(2.0) + 1.0));
  EXPECT_NEAR(got, expected, 1e-14);
  EXPECT_EQ(counts.item<int64_t>(), 2);
}

TEST(DpoLoss, ConfigErrorsNameTheField) {
  const at::Tensor x = t1(0);
  EXPECT_THROW(dpo_losses(x, x, x, x, {DpoLossType::kSigmoid, 0.0, 0.0}), Error);
  EXPECT_THROW(dpo_losses(x, x, x, x, {DpoLossType::kSigmoid, 0.1, 0.5}), Error);
  EXPECT_THROW(dpo_losses(x, x, x, x, {DpoLossType::kIpo, 0.1, 0.1}), Error);
  EXPECT_FALSE(enum_from_name(dpo_loss_type_names(), "kto"));
  EXPECT_EQ(enum_from_name(dpo_loss_type_names(), "ipo"), DpoLossType::kIpo);
}

// A tiny float64 GPT-2 with a one-user adapter bank; pairs share a 3-token prompt.
struct TinyPolicy {
  CausalLM model;
  std::unique_ptr<AdapterBank> bank;
  at::Tensor chosen, rejected, labels_chosen, labels_rejected;

  TinyPolicy() {
    nlohmann::json config = preset_config("gpt2-tiny");
    for (const char* key : {"resid_pdrop", "embd_pdrop", "attn_pdrop"})
      config[key] = 0.0;
    config["n_layer"] = 1;
    torch::manual_seed(3);
    model = causal_lm_from_config(config, "test", true);
    model->to(at::kDouble);
    bank = std::make_unique<AdapterBank>(*model, LoraConfig{2, 4.0, 0.0, false, {"c_attn", "c_fc"}},
                                         std::vector<std::string>{"user"});
    chosen = at::randint(model->vocab_size(), {2, 6}, at::kLong);
    rejected = at::randint(model->vocab_size(), {2, 6}, at::kLong);
    rejected.narrow(1, 0, 3).copy_(chosen.narrow(1, 0, 3));  // the same prompt
    labels_chosen = chosen.clone();
    labels_rejected = rejected.clone();
    labels_chosen.narrow(1, 0, 3).fill_(-100);
    labels_rejected.narrow(1, 0, 3).fill_(-100);
  }
  void randomise_adapter() {
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_parameters())
      if (is_adapter_bank_parameter(item.key())) item.value().normal_(0.0, 0.3);
  }
  // Mean sigmoid-DPO loss over the two pairs; reference = adapters off (rows routed to -1).
  at::Tensor loss(double beta, DpoLosses* parts = nullptr) {
    const at::Tensor ids = at::cat({chosen, rejected});
    const at::Tensor labels = at::cat({labels_chosen, labels_rejected});
    at::Tensor reference;
    {
      torch::NoGradGuard no_grad;
      const AdapterRoute route(*bank, {"", "", "", ""}, at::kCPU);
      reference = response_logps(model->forward(ids), labels);
    }
    const AdapterRoute route(*bank, {"user", "user", "user", "user"}, at::kCPU);
    const at::Tensor policy = response_logps(model->forward(ids), labels);
    DpoLosses d =
        dpo_losses(policy.narrow(0, 0, 2), policy.narrow(0, 2, 2), reference.narrow(0, 0, 2),
                   reference.narrow(0, 2, 2), {DpoLossType::kSigmoid, beta, 0.0});
    if (parts) *parts = d;
    return d.losses.mean();
  }
};

TEST(DpoLoss, FreshAdapterGivesLogTwoAndZeroRewards) {
  TinyPolicy p;  // lora_B = 0: the policy is the reference
  DpoLosses parts;
  EXPECT_NEAR(p.loss(0.1, &parts).item<double>(), std::log(2.0), 1e-15);
  EXPECT_EQ(parts.chosen_rewards.abs().max().item<double>(), 0.0);
  EXPECT_EQ(parts.rejected_rewards.abs().max().item<double>(), 0.0);
}

TEST(DpoLoss, GradientWithRespectToAdapterWeightsMatchesFiniteDifferences) {
  TinyPolicy p;
  p.randomise_adapter();
  const double beta = 0.5;
  p.loss(beta).backward();
  int checked = 0;
  for (auto& item : p.model->named_parameters()) {
    if (!is_adapter_bank_parameter(item.key())) continue;
    at::Tensor param = item.value();
    const at::Tensor grad = param.grad().clone();
    for (int64_t flat : {int64_t{0}, param.numel() / 2, param.numel() - 1}) {
      const double h = 1e-6;
      double plus, minus;
      {
        torch::NoGradGuard no_grad;
        param.view({-1})[flat] += h;
        plus = p.loss(beta).item<double>();
        param.view({-1})[flat] -= 2 * h;
        minus = p.loss(beta).item<double>();
        param.view({-1})[flat] += h;
      }
      const double numeric = (plus - minus) / (2 * h);
      const double analytic = grad.view({-1})[flat].item<double>();
      EXPECT_NEAR(analytic, numeric, 1e-6 * std::max(1.0, std::abs(numeric)))
          << item.key() << " element " << flat;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 2 * 2 * 3);  // two layers x (A, B) x three elements
}

}  // namespace
}  // namespace tailor
