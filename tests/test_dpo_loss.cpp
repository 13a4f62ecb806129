// DPO losses (train/losses/dpo_loss.h) against values worked out by hand, and their gradient
// with respect to LoRA adapter weights against central finite differences on a float64 model
// whose reference policy is the same model with the adapters off. ipo (TRL's: each response's
// log-prob averaged over its tokens) against the per-token formula written out here.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

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
  DpoLossConfig ipo_sum{DpoLossType::kIpoSum, 0.5, 0.0};  // (h - 1/(2 beta))^2 = (2 - 1)^2
  EXPECT_NEAR(dpo_losses(pc, pr, rc, rr, ipo_sum).losses.item<double>(), 1.0, 1e-15);
  // ipo: h of the means per token; chosen 2 tokens, rejected 4: (-1.5 + 2) - (-1.25 + 1) = 0.75.
  DpoLossConfig ipo{DpoLossType::kIpo, 0.5, 0.0};
  const DpoLosses i = dpo_losses(pc, pr, rc, rr, ipo, t1(2), t1(4));
  EXPECT_NEAR(i.losses.item<double>(), 0.0625, 1e-15);            // (0.75 - 1)^2
  EXPECT_NEAR(i.chosen_rewards.item<double>(), 0.25, 1e-15);      // 0.5 (-1.5 + 2)
  EXPECT_NEAR(i.rejected_rewards.item<double>(), -0.125, 1e-15);  // 0.5 (-1.25 + 1)
  EXPECT_NEAR(i.policy_chosen.item<double>(), -1.5, 1e-15);
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

// Two pairs whose chosen and rejected responses differ in length: ipo is ipo_sum of the sums
// divided by the lengths, policy and reference alike, and differs from ipo_sum of the sums.
TEST(DpoLoss, IpoIsIpoSumOfEachResponsesMeanLogProbPerToken) {
  const at::Tensor pc = at::tensor({-4.0, -3.0}, at::kDouble);
  const at::Tensor pr = at::tensor({-9.0, -8.0}, at::kDouble);
  const at::Tensor rc = at::tensor({-8.0, -2.0}, at::kDouble);
  const at::Tensor rr = at::tensor({-6.0, -10.0}, at::kDouble);
  const at::Tensor nc = at::tensor(std::vector<int64_t>{2, 3}, at::kLong);
  const at::Tensor nr = at::tensor(std::vector<int64_t>{3, 4}, at::kLong);
  const double beta = 0.25;
  const DpoLosses ipo = dpo_losses(pc, pr, rc, rr, {DpoLossType::kIpo, beta, 0.0}, nc, nr);
  const DpoLosses sum = dpo_losses(pc, pr, rc, rr, {DpoLossType::kIpoSum, beta, 0.0}, nc, nr);
  const at::Tensor nc64 = nc.to(at::kDouble), nr64 = nr.to(at::kDouble);
  const DpoLosses divided =
      dpo_losses(pc / nc64, pr / nr64, rc / nc64, rr / nr64, {DpoLossType::kIpoSum, beta, 0.0});
  EXPECT_TRUE(at::equal(ipo.losses, divided.losses));
  EXPECT_TRUE(at::equal(ipo.chosen_rewards, divided.chosen_rewards));
  EXPECT_TRUE(at::equal(ipo.rejected_rewards, divided.rejected_rewards));
  const double pcv[] = {-4, -3}, prv[] = {-9, -8}, rcv[] = {-8, -2}, rrv[] = {-6, -10};
  const double ncv[] = {2, 3}, nrv[] = {3, 4};
  for (int64_t b = 0; b < 2; ++b) {
    SCOPED_TRACE(b);
    const double h = (pcv[b] / ncv[b] - rcv[b] / ncv[b]) - (prv[b] / nrv[b] - rrv[b] / nrv[b]);
    const double h_sum = (pcv[b] - rcv[b]) - (prv[b] - rrv[b]);
    EXPECT_NEAR(ipo.losses[b].item<double>(), std::pow(h - 1 / (2 * beta), 2), 1e-14);
    EXPECT_NEAR(sum.losses[b].item<double>(), std::pow(h_sum - 1 / (2 * beta), 2), 1e-14);
    EXPECT_GT(std::abs(ipo.losses[b].item<double>() - sum.losses[b].item<double>()), 1.0);
    EXPECT_NEAR(ipo.chosen_rewards[b].item<double>(), beta * (pcv[b] - rcv[b]) / ncv[b], 1e-15);
    EXPECT_NEAR(ipo.rejected_rewards[b].item<double>(), beta * (prv[b] - rrv[b]) / nrv[b], 1e-15);
    EXPECT_NEAR(ipo.policy_rejected[b].item<double>(), prv[b] / nrv[b], 1e-15);
    EXPECT_EQ(sum.policy_rejected[b].item<double>(), prv[b]);
  }
  // A response max_length cut away entirely (no scored token, sum 0) counts as one token.
  const at::Tensor none = at::zeros({1}, at::kLong);
  EXPECT_EQ(dpo_loss_logps(t1(0), none, DpoLossType::kIpo).item<double>(), 0.0);
  EXPECT_EQ(dpo_loss_logps(t1(-6), t1(4), DpoLossType::kSigmoid).item<double>(), -6.0);
}

// The per-token log-probs written out from explicit logits: ipo's l(y) is their mean over the
// response, computed here position by position, for responses of 3 and 1 tokens.
TEST(DpoLoss, IpoMatchesTheMeanOfPerTokenLogProbsComputedByHand) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
  // Rows: policy chosen, policy rejected, reference chosen, reference rejected; T = 5, V = 3.
  const at::Tensor logits = at::randn({4, 5, 3}, gen, at::kDouble) * 2.0;
  const std::vector<int64_t> chosen_labels = {-100, -100, 1, 2, 0};          // 3 tokens
  const std::vector<int64_t> rejected_labels = {-100, -100, 2, -100, -100};  // 1 token
  std::vector<int64_t> flat;
  for (const auto* row : {&chosen_labels, &rejected_labels, &chosen_labels, &rejected_labels})
    flat.insert(flat.end(), row->begin(), row->end());
  const at::Tensor labels = at::tensor(flat, at::kLong).view({4, 5});
  // Row r's mean of log softmax(logits[r, t])[labels[r, t + 1]] over its labelled positions.
  const auto l = logits.accessor<double, 3>();
  std::vector<double> mean(4);
  for (int64_t r = 0; r < 4; ++r) {
    const std::vector<int64_t>& y = r % 2 == 0 ? chosen_labels : rejected_labels;
    double sum = 0, tokens = 0;
    for (int64_t t = 0; t + 1 < 5; ++t) {
      if (y[static_cast<size_t>(t + 1)] == -100) continue;
      double normaliser = 0;
      for (int64_t v = 0; v < 3; ++v)
        normaliser += std::exp(l[r][t][v]);
      sum += l[r][t][y[static_cast<size_t>(t + 1)]] - std::log(normaliser);
      tokens += 1;
    }
    mean[static_cast<size_t>(r)] = sum / tokens;
  }
  const double beta = 0.1;
  const double h = (mean[0] - mean[2]) - (mean[1] - mean[3]);
  at::Tensor counts;
  const at::Tensor summed = response_logps(logits, labels, &counts);
  const auto pick = [&](const at::Tensor& t, int64_t r) { return t.narrow(0, r, 1); };
  const DpoLosses d = dpo_losses(pick(summed, 0), pick(summed, 1), pick(summed, 2), pick(summed, 3),
                                 {DpoLossType::kIpo, beta, 0.0}, pick(counts, 0), pick(counts, 1));
  EXPECT_NEAR(d.losses.item<double>(), std::pow(h - 1 / (2 * beta), 2), 1e-12);
  EXPECT_NEAR(d.chosen_rewards.item<double>(), beta * (mean[0] - mean[2]), 1e-14);
  EXPECT_NEAR(d.rejected_rewards.item<double>(), beta * (mean[1] - mean[3]), 1e-14);
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
  EXPECT_THROW(dpo_losses(x, x, x, x, {DpoLossType::kIpo, 0.1, 0.1}, x, x), Error);
  EXPECT_THROW(dpo_losses(x, x, x, x, {DpoLossType::kIpoSum, 0.1, 0.1}), Error);
  EXPECT_THROW(dpo_losses(x, x, x, x, {DpoLossType::kIpo, 0.1, 0.0}), Error);  // no lengths
  EXPECT_THROW(dpo_losses(x, x, x, x, {DpoLossType::kIpo, 0.1, 0.0}, x, at::ones({2})), Error);
  EXPECT_FALSE(enum_from_name(dpo_loss_type_names(), "kto"));
  EXPECT_EQ(enum_from_name(dpo_loss_type_names(), "ipo"), DpoLossType::kIpo);
  EXPECT_EQ(enum_from_name(dpo_loss_type_names(), "ipo_sum"), DpoLossType::kIpoSum);
  EXPECT_EQ(to_string(DpoLossType::kIpoSum), "ipo_sum");
}

// A tiny float64 GPT-2 with a one-user adapter bank; pairs share a 3-token prompt, the chosen
// responses have 3 tokens and the rejected ones 2 (the last position is padding), so that ipo's
// division by the length differs between the two.
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
    labels_rejected.narrow(1, 5, 1).fill_(-100);
  }
  void randomise_adapter() {
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_parameters())
      if (is_adapter_bank_parameter(item.key())) item.value().normal_(0.0, 0.3);
  }
  at::Tensor ids() const { return at::cat({chosen, rejected}); }
  at::Tensor labels() const { return at::cat({labels_chosen, labels_rejected}); }
  // Mean DPO loss over the two pairs through dpo_losses; reference = adapters off (rows routed
  // to -1).
  at::Tensor loss(double beta, DpoLosses* parts = nullptr,
                  DpoLossType type = DpoLossType::kSigmoid) {
    at::Tensor reference;
    {
      torch::NoGradGuard no_grad;
      const AdapterRoute route(*bank, {"", "", "", ""}, at::kCPU);
      reference = response_logps(model->forward(ids()), labels());
    }
    const AdapterRoute route(*bank, {"user", "user", "user", "user"}, at::kCPU);
    at::Tensor counts;
    const at::Tensor policy = response_logps(model->forward(ids()), labels(), &counts);
    DpoLosses d = dpo_losses(policy.narrow(0, 0, 2), policy.narrow(0, 2, 2),
                             reference.narrow(0, 0, 2), reference.narrow(0, 2, 2),
                             {type, beta, 0.0}, counts.narrow(0, 0, 2), counts.narrow(0, 2, 2));
    if (parts) *parts = d;
    return d.losses.mean();
  }
  // TRL's IPO written out: each row's per-token log-probs, their mean over the response tokens,
  // then (h - 1/(2 beta))^2 averaged over the two pairs.
  at::Tensor ipo_loss_by_hand(double beta) {
    const auto mean_logp_per_token = [&](const std::string& user) {
      const AdapterRoute route(*bank, {user, user, user, user}, at::kCPU);
      const at::Tensor logits = model->forward(ids());                           // [4, 6, V]
      const at::Tensor log_probs = at::log_softmax(logits.slice(1, 0, -1), -1);  // [4, 5, V]
      const at::Tensor next = labels().slice(1, 1);                              // [4, 5]
      const at::Tensor scored = next.ne(-100).to(at::kDouble);
      const at::Tensor token_logp =
          log_probs.gather(-1, next.clamp_min(0).unsqueeze(-1)).squeeze(-1) * scored;
      return token_logp.sum(1) / scored.sum(1);  // [4]
    };
    at::Tensor reference;
    {
      torch::NoGradGuard no_grad;
      reference = mean_logp_per_token("");
    }
    const at::Tensor policy = mean_logp_per_token("user");
    const at::Tensor h = (policy.narrow(0, 0, 2) - reference.narrow(0, 0, 2)) -
                         (policy.narrow(0, 2, 2) - reference.narrow(0, 2, 2));
    return (h - 1.0 / (2.0 * beta)).pow(2).mean();
  }
};

// d loss / d (three elements of every adapter bank parameter): `analytic` by autograd (taken once,
// at the current weights) against central finite differences of `numeric`. Returns the number of
// elements checked.
int expect_adapter_gradient_matches_finite_differences(TinyPolicy& p,
                                                       const std::function<at::Tensor()>& analytic,
                                                       const std::function<double()>& numeric) {
  analytic().backward();
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
        plus = numeric();
        param.view({-1})[flat] -= 2 * h;
        minus = numeric();
        param.view({-1})[flat] += h;
      }
      const double difference = (plus - minus) / (2 * h);
      const double autograd = grad.view({-1})[flat].item<double>();
      EXPECT_NEAR(autograd, difference, 1e-6 * std::max(1.0, std::abs(difference)))
          << item.key() << " element " << flat;
      ++checked;
    }
  }
  return checked;
}

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
  const int checked = expect_adapter_gradient_matches_finite_differences(
      p, [&] { return p.loss(beta); }, [&] { return p.loss(beta).item<double>(); });
  EXPECT_EQ(checked, 2 * 2 * 3);  // two layers x (A, B) x three elements
}

// ipo through response_logps and dpo_losses: its value, and its gradient against central finite
// differences of the per-token formula written out (ipo_loss_by_hand), on responses of 3 and 2
// tokens.
TEST(DpoLoss, IpoValueAndGradientMatchTheMeanPerTokenFormula) {
  TinyPolicy p;
  p.randomise_adapter();
  const double beta = 0.5;
  const double by_hand = p.ipo_loss_by_hand(beta).item<double>();
  EXPECT_NEAR(p.loss(beta, nullptr, DpoLossType::kIpo).item<double>(), by_hand,
              1e-13 * std::max(1.0, by_hand));
  // The summed form is another loss on these responses: the lengths matter here.
  EXPECT_GT(std::abs(p.loss(beta, nullptr, DpoLossType::kIpoSum).item<double>() - by_hand), 1e-3);
  const int checked = expect_adapter_gradient_matches_finite_differences(
      p, [&] { return p.loss(beta, nullptr, DpoLossType::kIpo); },
      [&] { return p.ipo_loss_by_hand(beta).item<double>(); });
  EXPECT_EQ(checked, 2 * 2 * 3);
}

}  // namespace
}  // namespace tailor
