// The reward stage end to end on a tiny synthetic benchmark: every variant of recipes/rm_synth_*
// runs with small overrides and writes its metrics, summary and export; the exported
// Bradley–Terry model re-scores the held-out pairs exactly as the run did; recipes that cannot
// work are refused with the key named.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "models/heads/reward_model.h"
#include "models/io/reward_export.h"
#include "trainer/stages/reward/reward_recipe.h"
#include "trainer/stages/reward/reward_stage.h"

namespace tailor {
namespace {
namespace fs = std::filesystem;

// Runs from the repository root so the recipes' relative tokenizer path resolves.
struct InRepo {
  fs::path old = fs::current_path();
  InRepo() { fs::current_path(TAILOR_SOURCE_DIR); }
  ~InRepo() { fs::current_path(old); }
};

RewardRecipe tiny(const std::string& variant, const fs::path& out,
                  std::vector<std::string> extra = {}) {
  std::vector<std::string> overrides = {"output_dir=" + out.string(),
                                        "data.synthetic_prompts=60",
                                        "model.n_layer=1",
                                        "model.n_embd=16",
                                        "model.n_head=2",
                                        "vae.latent_dim=8",
                                        "vae.hidden_dim=16",
                                        "vae.survey_size=12",
                                        "vae.context_size=4",
                                        "train.max_steps=6",
                                        "train.batch_size=8",
                                        "train.eval_every=3",
                                        "train.log_every=2",
                                        "schedule.warmup_steps=1"};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return load_reward_recipe("recipes/rm_synth_" + variant + ".yaml", overrides);
}

std::vector<nlohmann::json> read_jsonl(const fs::path& file) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

class RewardStageVariants : public ::testing::TestWithParam<std::string> {};

TEST_P(RewardStageVariants, RunsAndWritesMetricsSummaryAndExport) {
  InRepo in_repo;
  const fs::path out = fs::temp_directory_path() / ("tailor_test_rm_" + GetParam());
  fs::remove_all(out);
  ASSERT_EQ(run_reward_stage(tiny(GetParam(), out)), 0);

  const auto summary = nlohmann::json::parse(read_file(out / "summary.json"));
  EXPECT_EQ(summary["steps"], 6);
  EXPECT_EQ(summary["users"], 2);
  const double accuracy = summary["accuracy"].get<double>();
  EXPECT_GE(accuracy, 0.0);
  EXPECT_LE(accuracy, 1.0);
  EXPECT_TRUE(summary["user_accuracy"].contains("user0"));
  EXPECT_TRUE(summary["user_accuracy"].contains("user1"));

  // Evaluations at steps 3 and 6 with per-user records; train records every 2 steps.
  int evals = 0, trains = 0;
  for (const auto& record : read_jsonl(out / "metrics.jsonl")) {
    if (record.contains("eval/accuracy")) {
      ++evals;
      EXPECT_TRUE(record.contains("eval/user0/auc"));
      EXPECT_TRUE(record.contains("eval/user1/loss"));
    } else {
      ++trains;
      EXPECT_TRUE(record.contains("loss"));
      EXPECT_TRUE(record.contains("lr"));
    }
  }
  EXPECT_EQ(evals, 2);
  EXPECT_EQ(trains, 3);
  const auto predictions = read_jsonl(out / "eval_predictions.jsonl");
  EXPECT_EQ(static_cast<int64_t>(predictions.size()), summary["eval_pairs"].get<int64_t>());
  EXPECT_TRUE(fs::is_directory(out / "export"));
  fs::remove_all(out);
}

INSTANTIATE_TEST_SUITE_P(Recipes, RewardStageVariants,
                         ::testing::Values("bt", "vae", "vae_adaptive", "vae_pcgrad", "vae_mgda",
                                           "vae_contrastive"));

TEST(RewardStage, ExportedBradleyTerryModelRescoresHeldOutPairsIdentically) {
  InRepo in_repo;
  const fs::path out = fs::temp_directory_path() / "tailor_test_rm_bt_export";
  fs::remove_all(out);
  ASSERT_EQ(run_reward_stage(tiny("bt", out)), 0);
  RewardModel model = load_reward_model(out / "export");
  model->eval();
  torch::NoGradGuard no_grad;
  int checked = 0;
  for (const auto& p : read_jsonl(out / "eval_predictions.jsonl")) {
    for (const char* side : {"chosen", "rejected"}) {
      const auto ids = p[std::string(side) + "_ids"].get<std::vector<int64_t>>();
      const at::Tensor input = at::tensor(ids, at::kLong).view({1, -1});
      const double reward = model->forward(input, at::ones_like(input))[0][0].item<double>();
      EXPECT_NEAR(reward, p[std::string("reward_") + side].get<double>(), 1e-5);
    }
    if (++checked == 10) break;
  }
  EXPECT_EQ(checked, 10);
  fs::remove_all(out);
}

TEST(RewardStage, SameSeedSameRunOtherSeedOtherRun) {
  InRepo in_repo;
  const fs::path a = fs::temp_directory_path() / "tailor_test_rm_seed_a";
  const fs::path b = fs::temp_directory_path() / "tailor_test_rm_seed_b";
  const fs::path c = fs::temp_directory_path() / "tailor_test_rm_seed_c";
  for (const auto& dir : {a, b, c})
    fs::remove_all(dir);
  ASSERT_EQ(run_reward_stage(tiny("vae_adaptive", a, {"export.enabled=false"})), 0);
  ASSERT_EQ(run_reward_stage(tiny("vae_adaptive", b, {"export.enabled=false"})), 0);
  ASSERT_EQ(run_reward_stage(tiny("vae_adaptive", c, {"export.enabled=false", "seed=1"})), 0);
  EXPECT_EQ(read_file(a / "eval_predictions.jsonl"), read_file(b / "eval_predictions.jsonl"));
  EXPECT_NE(read_file(a / "eval_predictions.jsonl"), read_file(c / "eval_predictions.jsonl"));
  // The context-embedding cache is reused by a rerun of the same data and model.
  EXPECT_TRUE(fs::is_regular_file(a / "cache/context_embeddings.h5"));
  for (const auto& dir : {a, b, c})
    fs::remove_all(dir);
}

TEST(RewardStage, ManyUserSettingsAreAccepted) {
  InRepo in_repo;
  for (const auto& users : std::vector<std::vector<std::string>>{
           {"users.kind=random", "users.count=4", "users.conflict_only=false"},
           {"users.kind=clustered", "users.count=20", "users.conflict_only=false"}}) {
    const fs::path out = fs::temp_directory_path() / "tailor_test_rm_many_users";
    fs::remove_all(out);
    auto extra = users;
    extra.push_back("export.enabled=false");
    extra.push_back("train.max_steps=2");
    ASSERT_EQ(run_reward_stage(tiny("vae_adaptive", out, extra)), 0);
    const auto summary = nlohmann::json::parse(read_file(out / "summary.json"));
    EXPECT_EQ(summary["users"], users[1] == "users.count=4" ? 4 : 20);
    fs::remove_all(out);
  }
}

TEST(RewardStage, RealPerUserPairsTrainWithTheirOwnUsers) {
  InRepo in_repo;
  const fs::path out = fs::temp_directory_path() / "tailor_test_rm_pairs";
  fs::remove_all(out);
  fs::create_directories(out);
  // Two users with opposite tastes on the same questions: "alice" prefers the long answer.
  std::string lines;
  for (int i = 0; i < 30; ++i) {
    const std::string prompt = "Question number " + std::to_string(i) + "?";
    const std::string longer = "A long and detailed answer about item " + std::to_string(i) + ".";
    const std::string shorter = "Short " + std::to_string(i) + ".";
    lines += nlohmann::json(
                 {{"prompt", prompt}, {"chosen", longer}, {"rejected", shorter}, {"user", "alice"}})
                 .dump() +
             "\n";
    lines += nlohmann::json(
                 {{"prompt", prompt}, {"chosen", shorter}, {"rejected", longer}, {"user", "bob"}})
                 .dump() +
             "\n";
  }
  write_file_atomic(out / "pairs.jsonl", lines);
  const RewardRecipe recipe =
      tiny("vae", out / "run",
           {"data.source=pairs", "data.path=" + (out / "pairs.jsonl").string(),
            "users.kind=from_data", "export.enabled=false"});
  ASSERT_EQ(run_reward_stage(recipe), 0);
  const auto summary = nlohmann::json::parse(read_file(out / "run" / "summary.json"));
  EXPECT_EQ(summary["users"], 2);
  EXPECT_TRUE(summary["user_accuracy"].contains("alice"));
  EXPECT_TRUE(summary["user_accuracy"].contains("bob"));
  fs::remove_all(out);
}

TEST(RewardStage, AdaptiveOrderChoosesWhichUserTrainsFirst) {
  InRepo in_repo;
  const fs::path out = fs::temp_directory_path() / "tailor_test_rm_order";
  fs::remove_all(out);
  ASSERT_EQ(run_reward_stage(tiny("vae_adaptive", out,
                                  {"train.adaptive_order=[user1, user0]", "export.enabled=false"})),
            0);
  std::string message;
  try {
    run_reward_stage(tiny("vae_adaptive", out, {"train.adaptive_order=[user1, carol]"}));
  } catch (const Error& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("train.adaptive_order: unknown user \"carol\""), std::string::npos)
      << message;
  fs::remove_all(out);
}

TEST(RewardStage, RecipeMistakesNameTheKey) {
  InRepo in_repo;
  auto error_of = [](const std::vector<std::string>& overrides) {
    try {
      load_reward_recipe("recipes/rm_synth_vae.yaml", overrides);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error_of({"users.count=3"}).find("users.count: two_conflict has exactly 2 users"),
            std::string::npos);
  EXPECT_NE(error_of({"data.source=ultrafeedback"}).find("data.path: required"), std::string::npos);
  EXPECT_NE(error_of({"data.source=pairs", "data.path=x.jsonl"}).find("users.kind"),
            std::string::npos);
  EXPECT_NE(error_of({"train.adaptive_ratio=[1, 2]"}).find("train.adaptive_ratio"),
            std::string::npos);
  EXPECT_NE(error_of({"train.grad_surgery=cagrad"}).find("train.grad_surgery: expected one of"),
            std::string::npos);
}

}  // namespace
}  // namespace tailor
