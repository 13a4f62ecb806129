// Many users in one pass (train/per_user/dpo_step.h) against one run per user: four users'
// adapters trained together on mixed batches must end where four separate single-adapter runs
// (classic LoRA, reference = adapters off, written out here step by step) end on the same
// per-user batches: in float64 within 1e-10 relative; in float32 within what float32 rounding
// does to the classic runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "models/core/adapter_bank.h"
#include "models/core/causal_lm.h"
#include "models/core/lora.h"
#include "models/registry.h"
#include "train/losses/dpo_loss.h"
#include "train/optim/adamw.h"
#include "train/optim/grad_clip.h"
#include "train/per_user/dpo_step.h"

namespace tailor {
namespace {

CausalLM dpo_step_model(const std::string& preset, at::ScalarType dtype = at::kFloat) {
  nlohmann::json config = preset_config(preset);
  for (const char* key : {"resid_pdrop", "embd_pdrop", "attn_pdrop", "attention_dropout"})
    if (config.contains(key)) config[key] = 0.0;
  config[config.contains("n_layer") ? "n_layer" : "num_hidden_layers"] = 2;
  torch::manual_seed(21);
  CausalLM model = causal_lm_from_config(config, "test", /*init_weights=*/true);
  model->to(dtype);
  model->train();
  return model;
}

CausalLM dpo_step_gpt2(at::ScalarType dtype = at::kFloat) {
  return dpo_step_model("gpt2-tiny", dtype);
}

// Users' pairs with random ids; every user has 2 pairs per step for `steps` steps. Responses have
// 2 to 4 tokens, plus `longer` each.
data::UserPairs random_pairs(const std::vector<std::string>& users, int64_t steps, int64_t vocab,
                             int64_t longer = 0) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const auto ids = [&](int64_t n) {
    const at::Tensor t = at::randint(1, vocab, {n}, gen, at::kLong).to(at::kInt);
    return std::vector<int32_t>(t.data_ptr<int32_t>(), t.data_ptr<int32_t>() + n);
  };
  std::vector<data::UserPair> pairs;
  for (int64_t i = 0; i < steps * 2; ++i)
    for (size_t u = 0; u < users.size(); ++u)
      pairs.push_back({users[u], ids(3 + (i + u) % 2), ids(2 + (i % 3) + longer),
                       ids(2 + (u % 3) + longer), "", "", ""});
  return data::UserPairs(std::move(pairs));
}

// Every user's factors after both computations, per user (float64 copies).
struct Adapters {
  std::vector<TensorMap> multi, single;
};

// Trains both ways for 3 steps from the same start (the model is built in float32 and converted,
// so every dtype starts from the same values). `targets`: the LoRA targets (Mistral's lm_head
// puts an adapter on the vocabulary projection, which the multi-user step runs in chunks of
// positions, each routed to its row's user).
Adapters four_users_and_single_runs(at::ScalarType dtype, double adam_eps,
                                    const std::string& preset = "gpt2-tiny",
                                    const std::vector<std::string>& targets = {"c_attn", "c_fc"}) {
  const std::vector<std::string> users = {"alice", "bob", "carol", "dave"};
  const int64_t steps = 3;
  const LoraConfig lora{4, 8.0, 0.0, false, targets};
  const DpoStepConfig config{{DpoLossType::kSigmoid, 0.5, 0.0}, 0.2};
  const double lr = 2e-2, clip = 0.05;
  const AdamWConfig adam{0.9, 0.999, adam_eps, 0.01};
  data::CollateOptions collate;
  collate.max_length = 16;
  collate.eos_id = 3;
  collate.append_eos = true;
  collate.pad_to_max_length = true;  // one sequence length in both computations

  CausalLM multi = dpo_step_model(preset, dtype);
  AdapterBank bank(*multi, lora, users);
  const data::UserPairs pairs = random_pairs(users, steps, multi->vocab_size());
  AdamW multi_opt(adam);
  for (const auto& item : multi->named_parameters())
    if (item.value().requires_grad())
      multi_opt.add_param(item.key(), item.value(), decays_by_default(item.value()));

  // One classic LoRA model per user, starting from that user's slice of the bank.
  std::vector<CausalLM> singles;
  std::vector<std::unique_ptr<AdamW>> single_opts;
  for (const auto& user : users) {
    CausalLM model = dpo_step_model(preset, dtype);
    apply_lora(*model, lora);
    const TensorMap start = bank.user_adapter(user);
    auto opt = std::make_unique<AdamW>(adam);
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_parameters()) {
      if (!item.value().requires_grad()) continue;
      item.value().copy_(start.at(item.key()));
      opt->add_param(item.key(), item.value(), decays_by_default(item.value()));
    }
    singles.push_back(model);
    single_opts.push_back(std::move(opt));
  }

  bool clipped = false;
  for (int64_t step = 0; step < steps; ++step) {
    // This step's pairs: 2 per user, interleaved across users in the mixed batch.
    std::vector<int64_t> mixed;
    std::vector<std::vector<int64_t>> own(users.size());
    for (int64_t i = 0; i < 2; ++i)
      for (size_t u = 0; u < users.size(); ++u) {
        const int64_t index = (step * 2 + i) * static_cast<int64_t>(users.size()) + u;
        mixed.push_back(index);
        own[u].push_back(index);
      }
    dpo_forward_backward(*multi, bank, pairs.collate(mixed, collate), config, at::kCPU);
    for (double norm : clip_bank_gradients_per_user(bank, *multi, clip))
      clipped |= norm > clip;
    multi_opt.step(lr);
    multi_opt.zero_grad();

    for (size_t u = 0; u < users.size(); ++u) {
      CausalLM& model = singles[u];
      const data::PairBatch b = pairs.collate(own[u], collate);
      const int64_t B = b.pairs();
      at::Tensor reference;
      {
        torch::NoGradGuard no_grad;
        set_adapters_enabled(*model, false);
        reference =
            response_logps(model->forward(b.rows.input_ids, b.rows.attention_mask), b.rows.labels);
        set_adapters_enabled(*model, true);
      }
      at::Tensor counts;
      const at::Tensor policy = response_logps(
          model->forward(b.rows.input_ids, b.rows.attention_mask), b.rows.labels, &counts);
      const DpoLosses d =
          dpo_losses(policy.narrow(0, 0, B), policy.narrow(0, B, B), reference.narrow(0, 0, B),
                     reference.narrow(0, B, B), config.loss);
      const at::Tensor sft = -policy.narrow(0, 0, B).to(at::kDouble) /
                             counts.narrow(0, 0, B).clamp_min(1).to(at::kDouble);
      (d.losses + config.sft_weight * sft).mean().backward();
      std::vector<at::Tensor> trainable;
      for (const auto& p : model->parameters())
        if (p.requires_grad()) trainable.push_back(p);
      clip_grad_norm_(trainable, clip);
      single_opts[u]->step(lr);
      single_opts[u]->zero_grad();
    }
  }
  EXPECT_TRUE(clipped) << "the test should exercise per-user clipping";

  Adapters out;
  for (size_t u = 0; u < users.size(); ++u) {
    SCOPED_TRACE(users[u]);
    const TensorMap mine = bank.user_adapter(users[u]);
    const auto params = singles[u]->named_parameters();
    TensorMap multi_u, single_u;
    double moved = 0;
    for (const auto& [name, value] : mine) {
      const at::Tensor expected = params[name].detach();
      multi_u[name] = value.to(at::kDouble);
      single_u[name] = expected.to(at::kDouble);
      if (name.find("lora_B") != std::string::npos)
        moved = std::max(moved, expected.abs().max().item<double>());
    }
    EXPECT_GT(moved, 1e-3) << "training must have moved lora_B away from 0";
    out.multi.push_back(std::move(multi_u));
    out.single.push_back(std::move(single_u));
  }
  return out;
}

// The worst relative difference of b from a over every user's factors (max-norm per tensor).
double worst_relative(const std::vector<TensorMap>& a, const std::vector<TensorMap>& b) {
  double worst = 0;
  for (size_t u = 0; u < a.size(); ++u)
    for (const auto& [name, reference] : a[u]) {
      const double scale = reference.abs().max().item<double>();
      worst = std::max(worst, (b[u].at(name) - reference).abs().max().item<double>() / scale);
    }
  return worst;
}

// float64: the two computations differ only by summation order (row padding, batched products);
// 1e-10 leaves six orders of magnitude above float64 rounding for three Adam steps.
TEST(DpoStep, FourUsersInOnePassEqualFourSingleUserRunsFloat64) {
  const Adapters r = four_users_and_single_runs(at::kDouble, 1e-8);
  const double worst = worst_relative(r.single, r.multi);
  std::cout << "[dpo] float64: worst relative difference " << worst << "\n";
  EXPECT_LT(worst, 1e-10);
}

// float32: no fixed bound holds on every BLAS (OPENBLAS_CORETYPE=Haswell and the AVX-512
// kernels round differently). Both float32 computations are compared with the float64 run of the
// same inputs instead: the multi-user step may be at most 4x as far from it as the classic
// single-adapter LoRA step is, so float32 rounding is the only difference allowed, whatever its
// size on this machine. (Adam's eps is 1e-5 here: with 1e-8 an element whose gradient is ~1e-9,
// lora_A right after B leaves 0, turns a last-bit difference into a ~1e-4 change of its update.)
TEST(DpoStep, FourUsersInOnePassEqualFourSingleUserRunsFloat32) {
  const Adapters f32 = four_users_and_single_runs(at::kFloat, 1e-5);
  const Adapters f64 = four_users_and_single_runs(at::kDouble, 1e-5);
  const double multi = worst_relative(f64.multi, f32.multi);
  const double single = worst_relative(f64.single, f32.single);
  std::cout << "[dpo] float32 against float64: multi-user " << multi << ", single-adapter "
            << single << "\n";
  EXPECT_LT(single, 1e-3) << "the float32 single-adapter runs should track float64";
  EXPECT_LE(multi, 4 * single);
  EXPECT_LT(worst_relative(f64.single, f64.multi), 1e-10);
}

// Mistral with an adapter on lm_head too: the policy's vocabulary projection runs per chunk of
// response positions with each position routed to its row's adapter, and its gradient is
// recomputed chunk by chunk; the single runs take plain autograd through full [B, T, V] logits.
TEST(DpoStep, MistralWithLmHeadAdaptersEqualsSingleUserRunsFloat64) {
  const Adapters r = four_users_and_single_runs(at::kDouble, 1e-8, "mistral-tiny",
                                                {"q_proj", "v_proj", "down_proj", "lm_head"});
  const double worst = worst_relative(r.single, r.multi);
  std::cout << "[dpo] mistral + lm_head, float64: worst relative difference " << worst << "\n";
  EXPECT_LT(worst, 1e-10);
}

TEST(DpoStep, StatisticsUseTrlsDefinitionsPerUser) {
  CausalLM model = dpo_step_gpt2();
  model->eval();
  AdapterBank bank(*model, LoraConfig{2, 4.0, 0.0, false, {"c_attn"}}, {"a", "b"});
  const data::UserPairs pairs = random_pairs({"a", "b"}, 1, model->vocab_size());
  data::CollateOptions collate;
  collate.max_length = 16;
  collate.eos_id = 3;
  const auto stats = dpo_forward_backward(*model, bank, pairs.collate({0, 1, 2, 3}, collate),
                                          {{DpoLossType::kSigmoid, 0.1, 0.0}, 0.0}, at::kCPU);
  ASSERT_EQ(stats.size(), 2u);
  for (const auto& [user, s] : stats) {
    SCOPED_TRACE(user);
    EXPECT_EQ(s.pairs, 2);
    // Fresh adapters: the policy is the reference, so every reward is 0 and the loss ln 2.
    EXPECT_NEAR(s.loss, std::log(2.0), 1e-12);
    EXPECT_EQ(s.rewards_chosen, 0.0);
    EXPECT_EQ(s.margin, 0.0);
    EXPECT_EQ(s.accuracy, 0.0);  // chosen > rejected is false for equal rewards
    EXPECT_LT(s.logps_chosen, 0.0);
  }
}

// The bank's gradients (float64 copies, by parameter name), then zeroed.
std::map<std::string, at::Tensor> take_bank_gradients(CausalLMImpl& model) {
  std::map<std::string, at::Tensor> out;
  for (auto& item : model.named_parameters())
    if (is_adapter_bank_parameter(item.key()) && item.value().grad().defined()) {
      out[item.key()] = item.value().grad().to(at::kDouble).clone();
      item.value().grad().zero_();
    }
  return out;
}

double worst_gradient_difference(const std::map<std::string, at::Tensor>& expected,
                                 const std::map<std::string, at::Tensor>& got) {
  double worst = 0;
  for (const auto& [name, e] : expected)
    worst = std::max(worst, (got.at(name) - e).abs().max().item<double>() /
                                std::max(e.abs().max().item<double>(), 1e-300));
  return worst;
}

// ipo and ipo_sum through dpo_forward_backward (two users, four pairs whose chosen and rejected
// responses differ in length) against the step written out with plain autograd through full
// logits: per-token log-probs, each row's sum, divided by its number of response tokens for ipo
// only, (h - 1/(2 beta))^2, each user's mean. Also the precomputed reference (summed, as the
// stage holds it) against the in-step one.
TEST(DpoStep, IpoDividesEachResponseByItsTokensAsAHandWrittenStepDoes) {
  CausalLM model = dpo_step_model("gpt2-tiny", at::kDouble);
  const std::vector<std::string> users = {"a", "b"};
  AdapterBank bank(*model, LoraConfig{2, 4.0, 0.0, false, {"c_attn", "c_fc"}}, users);
  {
    torch::NoGradGuard no_grad;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(29);
    for (auto& item : model->named_parameters())
      if (is_adapter_bank_parameter(item.key()))
        item.value().copy_(at::randn(item.value().sizes(), gen, at::kDouble) * 0.3);
  }
  const data::UserPairs pairs = random_pairs(users, 1, model->vocab_size());
  data::CollateOptions collate;
  collate.max_length = 16;
  collate.eos_id = 3;
  collate.append_eos = true;
  const data::PairBatch batch = pairs.collate({0, 1, 2, 3}, collate);
  const int64_t B = batch.pairs();
  const at::Tensor counts = response_token_counts(batch);
  ASSERT_EQ(counts.size(0), 2 * B);
  EXPECT_FALSE(at::equal(counts.narrow(0, 0, B), counts.narrow(0, B, B)))
      << "the test needs chosen and rejected responses of different lengths";
  const double beta = 0.5;

  // The step by hand: rows through full logits, the per-token log-probs of the labelled next
  // tokens summed per row and, for ipo, divided by the row's count of them.
  const auto by_hand = [&](DpoLossType type, std::map<std::string, double>* user_loss,
                           std::map<std::string, double>* user_reward_chosen,
                           std::map<std::string, double>* user_logps_chosen) {
    const at::Tensor ids = batch.rows.input_ids, mask = batch.rows.attention_mask;
    const at::Tensor next = batch.rows.labels.slice(1, 1);  // [2B, T-1]
    const at::Tensor scored = next.ne(-100).to(at::kDouble);
    const auto per_row = [&](const at::Tensor& logits) {
      const at::Tensor log_probs = at::log_softmax(logits.slice(1, 0, -1), -1);
      const at::Tensor token_logp =
          log_probs.gather(-1, next.clamp_min(0).unsqueeze(-1)).squeeze(-1) * scored;
      const at::Tensor sum = token_logp.sum(1);
      return type == DpoLossType::kIpo ? sum / scored.sum(1) : sum;
    };
    at::Tensor reference;
    {
      torch::NoGradGuard no_grad;
      const AdapterRoute route(bank, std::vector<std::string>(2 * B, ""), at::kCPU);
      reference = per_row(model->forward(ids, mask));
    }
    std::vector<std::string> row_users(batch.users);
    row_users.insert(row_users.end(), batch.users.begin(), batch.users.end());
    const AdapterRoute route(bank, row_users, at::kCPU);
    const at::Tensor policy = per_row(model->forward(ids, mask));
    const at::Tensor chosen_ratio = policy.narrow(0, 0, B) - reference.narrow(0, 0, B);
    const at::Tensor h = chosen_ratio - (policy.narrow(0, B, B) - reference.narrow(0, B, B));
    const at::Tensor losses = (h - 1.0 / (2.0 * beta)).pow(2);
    at::Tensor total = at::zeros({}, at::kDouble);
    for (int64_t b = 0; b < B; ++b) {
      const std::string& user = batch.users[static_cast<size_t>(b)];
      const double n = static_cast<double>(
          std::count(batch.users.begin(), batch.users.end(), user));  // the user's mean
      total = total + losses[b] / n;
      (*user_loss)[user] += losses[b].item<double>() / n;
      (*user_reward_chosen)[user] += beta * chosen_ratio[b].item<double>() / n;
      (*user_logps_chosen)[user] += policy[b].item<double>() / n;
    }
    total.backward();
  };

  std::map<std::string, std::map<std::string, at::Tensor>> step_grads;
  for (const DpoLossType type : {DpoLossType::kIpo, DpoLossType::kIpoSum}) {
    SCOPED_TRACE(to_string(type));
    const DpoStepConfig config{{type, beta, 0.0}, 0.0};
    const auto stats = dpo_forward_backward(*model, bank, batch, config, at::kCPU);
    step_grads[to_string(type)] = take_bank_gradients(*model);
    std::map<std::string, double> loss, reward_chosen, logps_chosen;
    by_hand(type, &loss, &reward_chosen, &logps_chosen);
    const auto hand_grads = take_bank_gradients(*model);
    const double worst = worst_gradient_difference(hand_grads, step_grads[to_string(type)]);
    std::cout << "[dpo] " << to_string(type) << " against the hand-written step: worst relative "
              << "gradient difference " << worst << "\n";
    EXPECT_LT(worst, 1e-10);
    for (const auto& user : users) {
      SCOPED_TRACE(user);
      const DpoUserStats& s = stats.at(user);
      EXPECT_NEAR(s.loss, loss[user], 1e-10 * std::max(1.0, loss[user]));
      EXPECT_NEAR(s.rewards_chosen, reward_chosen[user], 1e-12);
      EXPECT_NEAR(s.logps_chosen, logps_chosen[user], 1e-10 * std::abs(logps_chosen[user]));
    }
  }
  // The two losses differ on these responses, so the division is what the comparison tests.
  EXPECT_GT(worst_gradient_difference(step_grads["ipo"], step_grads["ipo_sum"]), 1e-2);

  // The stage's precomputed reference holds sums (reference_log_probs); the step divides them.
  const at::Tensor reference = reference_log_probs(*model, bank, batch, at::kCPU);
  dpo_forward_backward(*model, bank, batch, {{DpoLossType::kIpo, beta, 0.0}, 0.0}, at::kCPU,
                       nullptr, &reference);
  EXPECT_LT(worst_gradient_difference(step_grads["ipo"], take_bank_gradients(*model)), 1e-12);
}

// LoRA dropout on lm_head (Mistral) with the policy's vocabulary projection in two chunks: the
// gradient dpo_forward_backward leaves in the bank against central finite differences of the
// loss it returns, every evaluation drawing the same dropout masks (the same seed). The
// projection's gradient is recomputed chunk by chunk; had the recomputation drawn other masks, it
// would be the gradient of another loss. Checked: lm_head's lora_bank_B (its gradient takes the
// mask directly) and layer 0's v_proj lora_bank_A (through the hidden states' gradient, which
// the recomputation gives), each at its largest element, clear of rounding noise.
TEST(DpoStep, LmHeadLoraDropoutGradientIsThatOfTheLossComputed) {
  CausalLM model = dpo_step_model("mistral-tiny", at::kDouble);  // training mode: dropout on
  const std::vector<std::string> users = {"a", "b"};
  AdapterBank bank(*model, LoraConfig{2, 4.0, 0.5, false, {"v_proj", "lm_head"}}, users);
  {
    torch::NoGradGuard no_grad;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(31);
    for (auto& item : model->named_parameters())
      if (is_adapter_bank_parameter(item.key()))
        item.value().copy_(at::randn(item.value().sizes(), gen, at::kDouble) * 0.2);
  }
  const data::UserPairs pairs = random_pairs(users, 2, model->vocab_size(), /*longer=*/5);
  data::CollateOptions collate;
  collate.max_length = 16;
  collate.eos_id = 3;
  collate.append_eos = true;
  const data::PairBatch batch = pairs.collate({0, 1, 2, 3, 4, 5, 6, 7}, collate);
  // More scored positions than one chunk holds (dpo_step.cpp: 2^22 / V positions per chunk).
  ASSERT_GT(response_token_counts(batch).sum().item<int64_t>(),
            (int64_t{1} << 22) / model->vocab_size());
  const at::Tensor reference = reference_log_probs(*model, bank, batch, at::kCPU);
  const DpoStepConfig config{{DpoLossType::kSigmoid, 0.5, 0.0}, 0.0};
  const auto loss_with_draws = [&](uint64_t seed) {
    torch::manual_seed(seed);
    double total = 0;  // the summed per-user means that dpo_forward_backward differentiates
    for (const auto& [user, s] :
         dpo_forward_backward(*model, bank, batch, config, at::kCPU, nullptr, &reference))
      total += s.loss;
    return total;
  };
  const uint64_t seed = 7;
  const double loss = loss_with_draws(seed);
  const auto grads = take_bank_gradients(*model);
  EXPECT_GT(std::abs(loss_with_draws(seed + 1) - loss), 1e-6) << "dropout should change the loss";
  int checked = 0;
  for (auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    if (name != "lm_head.lora_bank_B" && !(name.find("layers.0.") != std::string::npos &&
                                           name.find("v_proj.lora_bank_A") != std::string::npos))
      continue;
    SCOPED_TRACE(name);
    at::Tensor param = item.value();
    const at::Tensor grad = grads.at(name).reshape({-1});
    const int64_t flat = grad.abs().argmax().item<int64_t>();
    const auto nudge = [&](double by) {
      torch::NoGradGuard no_grad;
      param.view({-1})[flat] += by;
    };
    const double h = 1e-6;
    nudge(h);
    const double plus = loss_with_draws(seed);  // with the graph: the step runs its backward
    nudge(-2 * h);
    const double minus = loss_with_draws(seed);
    nudge(h);
    const double numeric = (plus - minus) / (2 * h);
    EXPECT_NEAR(grad[flat].item<double>(), numeric, 1e-6 * std::abs(numeric) + 1e-9);
    EXPECT_GT(std::abs(numeric), 1e-4);
    ++checked;
  }
  EXPECT_EQ(checked, 2);
  take_bank_gradients(*model);  // the finite differences' runs leave theirs
}

}  // namespace
}  // namespace tailor
