// The per-user adapter bank (models/core/adapter_bank.h) against the single-adapter LoRA it
// generalises: a batch routed through a bank must give each row exactly what a model carrying
// only that row's user's adapter gives it (float64), the gradient of each user's slice must be
// that single-adapter model's gradient over the user's rows, and row -1 / no routing / adapters
// off must be the plain base (the DPO reference policy).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "common/error.h"
#include "models/core/adapter_bank.h"
#include "models/core/causal_lm.h"
#include "models/core/lora.h"
#include "models/io/pretrained.h"
#include "models/registry.h"

namespace tailor {
namespace {

struct BankFamily {
  std::string preset;
  std::vector<std::string> targets;
};

void PrintTo(const BankFamily& f, std::ostream* os) {
  *os << f.preset;
}

std::vector<BankFamily> bank_families() {
  return {{"gpt2-tiny", {"c_attn", "c_proj", "c_fc"}},
          {"mistral-tiny",
           {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}}};
}

// A small float64 model, initialised from `seed` (every call with the same seed: the same base).
CausalLM small_bank_model(const std::string& preset, uint64_t seed) {
  nlohmann::json config = preset_config(preset);
  for (const char* key : {"resid_pdrop", "embd_pdrop", "attn_pdrop", "attention_dropout"})
    if (config.contains(key)) config[key] = 0.0;
  for (const char* key : {"n_layer", "num_hidden_layers"})
    if (config.contains(key)) config[key] = 2;
  torch::manual_seed(seed);
  CausalLM model = causal_lm_from_config(config, "test", /*init_weights=*/true);
  model->to(at::kDouble);
  model->eval();
  return model;
}

LoraConfig lora_config(const BankFamily& f) {
  return LoraConfig{4, 8.0, 0.0, false, f.targets};
}

// Gives every bank factor random values (B too, so adapters change the output).
void randomise_bank(torch::nn::Module& model, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& item : model.named_parameters()) {
    if (!is_adapter_bank_parameter(item.key())) continue;
    item.value().copy_(at::randn(item.value().sizes(), gen, at::kDouble) * 0.2);
  }
}

// A model with the same base and one ordinary LoRA adapter holding user `u`'s factors.
CausalLM single_adapter_model(const BankFamily& f, const AdapterBank& bank,
                              const std::string& user) {
  CausalLM model = small_bank_model(f.preset, 5);
  apply_lora(*model, lora_config(f));
  const TensorMap adapter = bank.user_adapter(user);
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    if (!is_lora_parameter(item.key())) continue;
    item.value().copy_(adapter.at(item.key()));
  }
  return model;
}

double relative(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(b.abs().max().item<double>(), 1e-300);
}

class AdapterBankTest : public ::testing::TestWithParam<BankFamily> {};

TEST_P(AdapterBankTest, EachRowGoesThroughItsOwnUsersAdapterAndRowMinusOneThroughTheBase) {
  const BankFamily f = GetParam();
  CausalLM model = small_bank_model(f.preset, 5);
  AdapterBank bank(*model, lora_config(f), {"alice", "bob", "carol"});
  randomise_bank(*model, 11);
  const int64_t T = 7;
  const at::Tensor ids = at::randint(model->vocab_size(), {4, T}, at::kLong);
  const std::vector<std::string> users = {"alice", "carol", "", "bob"};
  torch::NoGradGuard no_grad;
  const at::Tensor logits = [&] {
    const AdapterRoute route(bank, users, at::kCPU);
    return model->forward(ids);
  }();
  CausalLM base = small_bank_model(f.preset, 5);
  for (int64_t row = 0; row < 4; ++row) {
    SCOPED_TRACE("row " + std::to_string(row) + " (" + users[row] + ")");
    const at::Tensor one = ids.narrow(0, row, 1);
    const at::Tensor expected = users[row].empty()
                                    ? base->forward(one)
                                    : single_adapter_model(f, bank, users[row])->forward(one);
    EXPECT_LT(relative(logits.narrow(0, row, 1), expected), 1e-12);
    // ... and the adapters matter: the base alone differs for adapter rows.
    if (!users[row].empty()) {
      EXPECT_GT(relative(base->forward(one), expected), 1e-3);
    }
  }
}

TEST_P(AdapterBankTest, EachUsersGradientIsItsSingleAdapterGradientOverItsRows) {
  const BankFamily f = GetParam();
  CausalLM model = small_bank_model(f.preset, 5);
  AdapterBank bank(*model, lora_config(f), {"alice", "bob", "carol"});
  randomise_bank(*model, 12);
  const int64_t T = 6;
  const at::Tensor ids = at::randint(model->vocab_size(), {5, T}, at::kLong);
  const std::vector<std::string> users = {"bob", "alice", "bob", "", "alice"};  // carol: none
  const at::Tensor weights = at::randn({5, T, model->vocab_size()}, at::kDouble);
  {
    const AdapterRoute route(bank, users, at::kCPU);
    (model->forward(ids) * weights).sum().backward();
  }
  const auto bank_params = model->named_parameters();
  for (const std::string user : {"alice", "bob", "carol"}) {
    SCOPED_TRACE(user);
    const int64_t u = bank.index_of(user);
    CausalLM single = single_adapter_model(f, bank, user);
    std::vector<int64_t> mine;
    for (int64_t row = 0; row < 5; ++row)
      if (users[row] == user) mine.push_back(row);
    if (!mine.empty()) {
      const at::Tensor rows = at::tensor(mine, at::kLong);
      (single->forward(ids.index_select(0, rows)) * weights.index_select(0, rows)).sum().backward();
    }
    for (const auto& path : bank.module_paths()) {
      const at::Tensor bank_grad_A = bank_params[path + ".lora_bank_A"].grad()[u];
      const at::Tensor bank_grad_B = bank_params[path + ".lora_bank_B"].grad()[u];
      if (mine.empty()) {  // a user without rows gets no gradient at all
        EXPECT_EQ(bank_grad_A.abs().max().item<double>(), 0.0) << path;
        EXPECT_EQ(bank_grad_B.abs().max().item<double>(), 0.0) << path;
        continue;
      }
      const auto single_params = single->named_parameters();
      EXPECT_LT(relative(bank_grad_A, single_params[path + ".lora_A.weight"].grad()), 1e-10)
          << path;
      EXPECT_LT(relative(bank_grad_B, single_params[path + ".lora_B.weight"].grad()), 1e-10)
          << path;
    }
  }
  // The base stays frozen.
  for (const auto& item : bank_params)
    if (!is_adapter_bank_parameter(item.key())) {
      EXPECT_FALSE(item.value().requires_grad());
    }
}

TEST_P(AdapterBankTest, NoRouteAdaptersOffAndAFreshBankAreAllTheBase) {
  const BankFamily f = GetParam();
  CausalLM model = small_bank_model(f.preset, 5);
  CausalLM base = small_bank_model(f.preset, 5);
  AdapterBank bank(*model, lora_config(f), {"alice", "bob"});
  const at::Tensor ids = at::randint(model->vocab_size(), {2, 5}, at::kLong);
  torch::NoGradGuard no_grad;
  const at::Tensor expected = base->forward(ids);
  {
    const AdapterRoute route(bank, {"alice", "bob"}, at::kCPU);
    // Fresh: B = 0, so every adapter adds nothing.
    EXPECT_EQ(relative(model->forward(ids), expected), 0.0);
    randomise_bank(*model, 13);
    EXPECT_GT(relative(model->forward(ids), expected), 1e-3);
    set_adapters_enabled(*model, false);  // the reference policy
    EXPECT_EQ(relative(model->forward(ids), expected), 0.0);
    set_adapters_enabled(*model, true);
    // A nested route hands the outer one back when it ends.
    { const AdapterRoute base_only(bank, std::string()); }
    EXPECT_GT(relative(model->forward(ids), expected), 1e-3);
  }
  // Outside every route the base runs alone, even after a route left by an exception.
  EXPECT_EQ(relative(model->forward(ids), expected), 0.0);
  try {
    const AdapterRoute route(bank, {"alice", "bob"}, at::kCPU);
    throw Error("test", "leaves the scope");
  } catch (const Error&) {
  }
  EXPECT_EQ(relative(model->forward(ids), expected), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Families, AdapterBankTest, ::testing::ValuesIn(bank_families()),
                         [](const auto& info) {
                           return info.param.preset == "gpt2-tiny" ? std::string("Gpt2")
                                                                   : std::string("Mistral");
                         });

TEST(AdapterBank, OneUserDrawsWhatApplyLoraDrawsAndExportsPeftNames) {
  const BankFamily f = bank_families()[0];
  CausalLM banked = small_bank_model(f.preset, 5);
  CausalLM single = small_bank_model(f.preset, 5);
  torch::manual_seed(99);
  AdapterBank bank(*banked, lora_config(f), {"solo"});
  torch::manual_seed(99);
  const auto wrapped = apply_lora(*single, lora_config(f));
  EXPECT_EQ(bank.module_paths(), wrapped);
  const TensorMap adapter = bank.user_adapter("solo");
  const auto params = single->named_parameters();
  ASSERT_EQ(adapter.size(), 2 * wrapped.size());
  for (const auto& [name, tensor] : adapter) {
    ASSERT_NE(params.find(name), nullptr) << name;
    // apply_lora keeps lora_A in the model's dtype; the draw itself is float32 in both.
    EXPECT_TRUE(at::equal(tensor, params[name].detach())) << name;
  }
}

TEST(AdapterBank, ErrorsNameTheProblem) {
  const BankFamily f = bank_families()[0];
  CausalLM model = small_bank_model(f.preset, 5);
  EXPECT_THROW(AdapterBank(*model, lora_config(f), {}), Error);
  EXPECT_THROW(AdapterBank(*model, lora_config(f), {"a", "a"}), Error);
  AdapterBank bank(*model, lora_config(f), {"alice", "bob"});
  try {
    bank.index_of("carol");
    ADD_FAILURE() << "unknown user accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("users: alice, bob"), std::string::npos) << e.what();
  }
  EXPECT_THROW(AdapterRoute(bank, at::tensor(std::vector<int64_t>{0, 2}, at::kLong)), Error);
  EXPECT_THROW(AdapterBank(*model, lora_config(f), {"again"}), Error);  // already has a bank
  EXPECT_THROW(apply_lora(*model, lora_config(f)), Error);
  const AdapterRoute route(bank, {"alice", "bob", "alice"}, at::kCPU);  // 3 rows, batch of 2
  try {
    model->forward(at::zeros({2, 3}, at::kLong));
    ADD_FAILURE() << "routing of the wrong length accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("names 3 rows but the input has 2 rows"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace tailor

namespace tailor {
namespace {

// Each user's adapter written as a PEFT directory and loaded onto a fresh base gives what the
// bank gives that user's rows.
TEST(AdapterBank, EachUsersPeftExportReloadsToTheSameOutputs) {
  const BankFamily f = bank_families()[1];  // Mistral: Linear layout, fan_in_fan_out false
  CausalLM model = small_bank_model(f.preset, 5);
  AdapterBank bank(*model, lora_config(f), {"alice", "bob"});
  randomise_bank(*model, 17);
  const at::Tensor ids = at::randint(model->vocab_size(), {1, 6}, at::kLong);
  const std::filesystem::path root =
      std::filesystem::temp_directory_path() / "tailor_adapter_bank_export";
  std::filesystem::remove_all(root);
  for (const std::string user : {"alice", "bob"}) {
    SCOPED_TRACE(user);
    const auto dir = root / "users" / user;
    save_user_peft_adapter(dir, bank, user, lora_config(f), "base", /*fan_in_fan_out=*/false);
    CausalLM reloaded = small_bank_model(f.preset, 5);
    load_peft_adapter(dir, *reloaded);
    torch::NoGradGuard no_grad;
    const AdapterRoute route(bank, std::vector<std::string>{user}, at::kCPU);
    EXPECT_LT(relative(reloaded->forward(ids), model->forward(ids)), 1e-12);
  }
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace tailor
