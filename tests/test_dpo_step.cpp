// Many users in one pass (train/per_user/dpo_step.h) against one run per user: four users'
// adapters trained together on mixed batches must end where four separate single-adapter runs
// (classic LoRA, reference = adapters off, written out here step by step) end on the same
// per-user batches: in float64 within 1e-10 relative; in float32 within what float32 rounding
// does to the classic runs.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

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

// Users' pairs with random ids; every user has 2 pairs per step for `steps` steps.
data::UserPairs random_pairs(const std::vector<std::string>& users, int64_t steps, int64_t vocab) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const auto ids = [&](int64_t n) {
    const at::Tensor t = at::randint(1, vocab, {n}, gen, at::kLong).to(at::kInt);
    return std::vector<int32_t>(t.data_ptr<int32_t>(), t.data_ptr<int32_t>() + n);
  };
  std::vector<data::UserPair> pairs;
  for (int64_t i = 0; i < steps * 2; ++i)
    for (size_t u = 0; u < users.size(); ++u)
      pairs.push_back(
          {users[u], ids(3 + (i + u) % 2), ids(2 + (i % 3)), ids(2 + (u % 3)), "", "", ""});
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

}  // namespace
}  // namespace tailor
