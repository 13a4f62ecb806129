// The reward stage end to end on a tiny synthetic benchmark: every variant of recipes/rm_synth_*
// runs with small overrides and writes its metrics, summary (accuracies recomputed from the
// held-out rewards it wrote) and export; VPL with adaptive sampling beats Bradley–Terry on the
// two-user conflict benchmark; the adaptive order decides which user's examples are drawn first;
// a rerun reads the context embeddings from its cache; the exported Bradley–Terry model
// re-scores the held-out pairs exactly as the run did; recipes that cannot work are refused with
// the key named.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "data/store/h5_file.h"
#include "models/gpt2/gpt2.h"
#include "models/heads/reward_model.h"
#include "models/io/reward_export.h"
#include "reward_test_support.h"
#include "stages/reward/reward_recipe.h"
#include "stages/reward/reward_stage.h"
#include "train/features/context_embeddings.h"

namespace tailor {
namespace {
namespace fs = std::filesystem;
using testing::read_jsonl;
using testing::tiny_reward_recipe;

RewardRecipe tiny_stage_recipe(const std::string& variant, const fs::path& out,
                               std::vector<std::string> extra = {}) {
  std::vector<std::string> overrides = {"train.max_steps=6", "train.batch_size=8",
                                        "train.eval_every=3", "train.log_every=2"};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return tiny_reward_recipe(variant, out, overrides);
}

class RewardStageVariants : public ::testing::TestWithParam<std::string> {};

TEST_P(RewardStageVariants, RunsAndWritesMetricsSummaryAndExport) {
  testing::InRepo in_repo;
  const fs::path out = fs::temp_directory_path() / ("tailor_test_rm_" + GetParam());
  fs::remove_all(out);
  run_reward_stage(tiny_stage_recipe(GetParam(), out));

  const auto summary = nlohmann::json::parse(read_file(out / "summary.json"));
  EXPECT_EQ(summary["steps"], 6);
  EXPECT_EQ(summary["users"], 2);

  // The reported accuracies are those of the held-out rewards the run wrote, recomputed here:
  // the fraction of pairs with reward_chosen > reward_rejected (ties 1/2), overall and per user.
  const auto predictions = read_jsonl(out / "eval_predictions.jsonl");
  ASSERT_EQ(static_cast<int64_t>(predictions.size()), summary["eval_pairs"].get<int64_t>());
  ASSERT_GT(predictions.size(), 20u);
  std::map<std::string, std::pair<double, int64_t>> right;  // user -> (correct, pairs)
  double correct = 0;
  for (const auto& p : predictions) {
    const double rc = p["reward_chosen"].get<double>(), rr = p["reward_rejected"].get<double>();
    const double score = rc > rr ? 1.0 : rc == rr ? 0.5 : 0.0;
    correct += score;
    auto& [sum, n] = right[p["user"].get<std::string>()];
    sum += score;
    ++n;
  }
  EXPECT_DOUBLE_EQ(summary["accuracy"].get<double>(), correct / predictions.size());
  ASSERT_EQ(right.size(), 2u);
  for (const auto& [user, tally] : right)
    EXPECT_DOUBLE_EQ(summary["user_accuracy"][user].get<double>(), tally.first / tally.second)
        << user;
  if (GetParam() == "bt") {
    // Two users in exact conflict: every held-out pair is asked of both with opposite labels,
    // and one shared reward gets exactly one of the two right, whatever it learned.
    std::map<std::pair<std::vector<int64_t>, std::vector<int64_t>>, int> asked;
    for (const auto& p : predictions) {
      auto w = p["chosen_ids"].get<std::vector<int64_t>>();
      auto l = p["rejected_ids"].get<std::vector<int64_t>>();
      asked[p["user"] == "user0" ? std::make_pair(w, l) : std::make_pair(l, w)] +=
          p["user"] == "user0" ? 1 : 2;
    }
    for (const auto& [pair, seen] : asked)
      EXPECT_EQ(seen, 3) << "a held-out pair not asked of both users with opposite labels";
    EXPECT_DOUBLE_EQ(summary["accuracy"].get<double>(), 0.5);
    EXPECT_DOUBLE_EQ(
        right["user0"].first / right["user0"].second + right["user1"].first / right["user1"].second,
        1.0);
  }
  if (GetParam() == "vae_adaptive") {
    // Default order: user0 is group B first. 6 steps of 8, 2 users -> 3 steps per phase:
    // phase 0 A = {user1} : B = {user0} = 1 : 2 of 24 -> 8 : 16; phase 1 B = {user1} : C =
    // {user0} = 2 : 4 -> 8 : 16.
    const auto& phases = summary["adaptive_phases"];
    ASSERT_EQ(phases.size(), 2u);
    EXPECT_EQ(phases[0]["group_b"], "user0");
    EXPECT_EQ(phases[0]["samples"], nlohmann::json({{"user0", 16}, {"user1", 8}}));
    EXPECT_EQ(phases[1]["group_b"], "user1");
    EXPECT_EQ(phases[1]["samples"], nlohmann::json({{"user0", 16}, {"user1", 8}}));
  }

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
  EXPECT_TRUE(fs::is_directory(out / "export"));
  fs::remove_all(out);
}

INSTANTIATE_TEST_SUITE_P(Recipes, RewardStageVariants,
                         ::testing::Values("bt", "vae", "vae_adaptive", "vae_pcgrad", "vae_mgda",
                                           "vae_contrastive"));

// The two-user conflict benchmark of docs/results.md (recipes/rm_synth_bt.yaml vs
// recipes/rm_synth_vae_adaptive.yaml: user0 rates by helpfulness only, user1 by honesty only,
// only the pairs they disagree on: 1,728 train and 432 held-out examples), shortened to fit CI:
// 150 steps instead of 300 and evaluation only at the end; model, data and every other key as in
// the recipes, seed 0.
// Targets: bt exactly 0.5 (every held-out pair is asked of both users with opposite labels, so
// one shared reward gets one of the two right); vae + adaptive >= 0.9 overall and for each user,
// i.e. at least 0.4 above bt. Measured with these overrides (OMP_NUM_THREADS=1, 2-core VM):
// vae + adaptive 0.998 / 0.984 / 0.993 for seeds 0 / 1 / 2 (0.938 / 0.884 / 0.840 at 100 steps,
// too close to call), about 20 s per run; docs/results.md has 0.988-1.000 at 300 steps.
TEST(RewardStage, VplWithAdaptiveSamplingBeatsBradleyTerryOnConflictingUsers) {
  testing::InRepo in_repo;
  const fs::path out = fs::temp_directory_path() / "tailor_test_rm_conflict";
  fs::remove_all(out);
  auto summary_of = [&](const std::string& variant) {
    const fs::path dir = out / variant;
    const RewardRecipe r =
        load_reward_recipe("recipes/rm_synth_" + variant + ".yaml",
                           {"output_dir=" + dir.string(), "seed=0", "train.max_steps=150",
                            "train.eval_every=0", "train.log_every=50", "export.enabled=false"});
    run_reward_stage(r);
    return nlohmann::json::parse(read_file(dir / "summary.json"));
  };
  const auto bt = summary_of("bt");
  const auto vpl = summary_of("vae_adaptive");
  EXPECT_EQ(bt["eval_pairs"], 432);
  EXPECT_EQ(vpl["eval_pairs"], 432);
  const double target = 0.9, margin = 0.4;
  EXPECT_DOUBLE_EQ(bt["accuracy"].get<double>(), 0.5);
  EXPECT_GE(vpl["accuracy"].get<double>(), target) << vpl.dump();
  EXPECT_GE(vpl["accuracy"].get<double>() - bt["accuracy"].get<double>(), margin);
  for (const char* user : {"user0", "user1"})
    EXPECT_GE(vpl["user_accuracy"][user].get<double>(), target) << user;
  std::cerr << "bt " << bt["accuracy"] << " in " << bt["wall_seconds"] << " s; vae + adaptive "
            << vpl["accuracy"] << " in " << vpl["wall_seconds"] << " s\n";
  fs::remove_all(out);
}

TEST(RewardStage, ExportedBradleyTerryModelRescoresHeldOutPairsIdentically) {
  testing::InRepo in_repo;
  const fs::path out = fs::temp_directory_path() / "tailor_test_rm_bt_export";
  fs::remove_all(out);
  run_reward_stage(tiny_stage_recipe("bt", out));
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
  testing::InRepo in_repo;
  const fs::path a = fs::temp_directory_path() / "tailor_test_rm_seed_a";
  const fs::path b = fs::temp_directory_path() / "tailor_test_rm_seed_b";
  const fs::path c = fs::temp_directory_path() / "tailor_test_rm_seed_c";
  for (const auto& dir : {a, b, c})
    fs::remove_all(dir);
  run_reward_stage(tiny_stage_recipe("vae_adaptive", a, {"export.enabled=false"}));
  run_reward_stage(tiny_stage_recipe("vae_adaptive", b, {"export.enabled=false"}));
  run_reward_stage(tiny_stage_recipe("vae_adaptive", c, {"export.enabled=false", "seed=1"}));
  EXPECT_EQ(read_file(a / "eval_predictions.jsonl"), read_file(b / "eval_predictions.jsonl"));
  EXPECT_NE(read_file(a / "eval_predictions.jsonl"), read_file(c / "eval_predictions.jsonl"));
  for (const auto& dir : {a, b, c})
    fs::remove_all(dir);
}

std::string summary_field(const fs::path& run, const std::string& key) {
  return nlohmann::json::parse(read_file(run / "summary.json"))[key].dump();
}

// A rerun with the same data and model reads the context embeddings from
// output_dir/cache/context_embeddings.h5 instead of recomputing them: it says so in
// summary.json, trains identically, and when the cached values are altered on disk (same key),
// the rerun's rewards change with them, so they really come from the file.
TEST(RewardStage, RerunReadsContextEmbeddingsFromTheCache) {
  testing::InRepo in_repo;
  const fs::path out = fs::temp_directory_path() / "tailor_test_rm_cache";
  fs::remove_all(out);
  const RewardRecipe recipe = tiny_stage_recipe("vae_adaptive", out, {"export.enabled=false"});
  const fs::path cache = out / "cache" / "context_embeddings.h5";
  run_reward_stage(recipe);
  EXPECT_EQ(summary_field(out, "context_cache"), "\"computed\"");
  ASSERT_TRUE(fs::is_regular_file(cache));
  const std::string first = read_file(out / "eval_predictions.jsonl");

  run_reward_stage(recipe);
  EXPECT_EQ(summary_field(out, "context_cache"), "\"hit\"");
  EXPECT_EQ(read_file(out / "eval_predictions.jsonl"), first);

  // Negate every cached embedding, keeping the key and shape the stage checks.
  std::string key;
  int64_t rows = 0, dim = 0;
  std::vector<float> values;
  {
    const auto old = h5::File::open_read_only(cache);
    key = old.string_attribute("key");
    rows = old.int_attribute("rows");
    dim = old.int_attribute("dim");
    values = old.read_float32("embeddings");
  }
  ASSERT_EQ(static_cast<int64_t>(values.size()), rows * dim);
  for (float& v : values)
    v = -v;
  {
    auto file = h5::File::create(cache);
    file.set_attribute("key", key);
    file.set_attribute("rows", rows);
    file.set_attribute("dim", dim);
    file.write_float32("embeddings", values);
    file.close();
  }
  run_reward_stage(recipe);
  EXPECT_EQ(summary_field(out, "context_cache"), "\"hit\"");
  EXPECT_NE(read_file(out / "eval_predictions.jsonl"), first);
  fs::remove_all(out);
}

// context_embeddings() itself: a first call computes with the model and writes the file; a call
// with the same key returns exactly the file's values without running the model (here a model
// with other weights, and values replaced on disk); another key recomputes.
TEST(RewardStage, ContextEmbeddingCacheReturnsTheStoredValues) {
  const fs::path dir = fs::temp_directory_path() / "tailor_test_context_cache";
  fs::remove_all(dir);
  const fs::path cache = dir / "context_embeddings.h5";
  GPT2Config config;
  config.vocab_size = 50;
  config.n_positions = 8;
  config.n_embd = 8;
  config.n_layer = 1;
  config.n_head = 2;
  torch::manual_seed(1);
  GPT2LMHead model(config);
  torch::manual_seed(2);
  GPT2LMHead other(config);
  const std::vector<std::vector<int32_t>> sequences = {{1, 2, 3}, {4, 5}, {6}, {7, 8, 9, 10}};
  const std::vector<int64_t> needed = {0, 2, 3};
  std::ostringstream log;
  bool hit = true;
  const at::Tensor computed = context_embeddings(*model, sequences, needed, cache, "k1", log, &hit);
  EXPECT_FALSE(hit);
  ASSERT_TRUE(fs::is_regular_file(cache));
  // Row 2 is the last real token's final hidden state; row 1 (not needed) is zero.
  model->eval();
  const at::Tensor ids = at::tensor({6}, at::kLong).view({1, 1});
  const at::Tensor direct = model->hidden_states(ids, at::ones_like(ids))[0][0];
  EXPECT_LT((computed[2] - direct).abs().max().item<float>(), 1e-6);
  EXPECT_EQ(computed[1].abs().max().item<float>(), 0.0f);
  // The other model embeds differently, so a recomputation would show.
  const at::Tensor recomputed =
      context_embeddings(*other, sequences, needed, dir / "x.h5", "k1", log);
  ASSERT_GT((recomputed - computed).abs().max().item<float>(), 1e-3);

  std::vector<float> stored(4 * 8);
  for (size_t i = 0; i < stored.size(); ++i)
    stored[i] = 0.25f * static_cast<float>(i) - 3.0f;
  {
    auto file = h5::File::create(cache);
    file.set_attribute("key", "k1");
    file.set_attribute("rows", 4);
    file.set_attribute("dim", 8);
    file.write_float32("embeddings", stored);
    file.close();
  }
  const at::Tensor read = context_embeddings(*other, sequences, needed, cache, "k1", log, &hit);
  EXPECT_TRUE(hit);
  EXPECT_TRUE(at::equal(read, at::tensor(stored, at::kFloat).view({4, 8})));
  const at::Tensor fresh = context_embeddings(*other, sequences, needed, cache, "k2", log, &hit);
  EXPECT_FALSE(hit);
  EXPECT_TRUE(at::equal(fresh, recomputed));
  fs::remove_all(dir);
}

TEST(RewardStage, ManyUserSettingsAreAccepted) {
  testing::InRepo in_repo;
  for (const auto& users : std::vector<std::vector<std::string>>{
           {"users.kind=random", "users.count=4", "users.conflict_only=false"},
           {"users.kind=clustered", "users.count=20", "users.conflict_only=false"}}) {
    const fs::path out = fs::temp_directory_path() / "tailor_test_rm_many_users";
    fs::remove_all(out);
    auto extra = users;
    extra.push_back("export.enabled=false");
    extra.push_back("train.max_steps=2");
    run_reward_stage(tiny_stage_recipe("vae_adaptive", out, extra));
    const auto summary = nlohmann::json::parse(read_file(out / "summary.json"));
    EXPECT_EQ(summary["users"], users[1] == "users.count=4" ? 4 : 20);
    fs::remove_all(out);
  }
}

// Wiring: real per-user pairs (data.source pairs, users.kind from_data) reach their own users. Two
// users with opposite tastes on the same questions, "alice" preferring the long answer and "bob"
// the short one: each user's held-out pairs, as the run scored them, keep that user's direction.
TEST(RewardStage, RealPerUserPairsReachTheirOwnUsers) {
  testing::InRepo in_repo;
  const fs::path out = fs::temp_directory_path() / "tailor_test_rm_pairs";
  fs::remove_all(out);
  fs::create_directories(out);
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
  const fs::path vae = out / "vae";
  run_reward_stage(
      tiny_stage_recipe("vae", vae,
                        {"data.source=pairs", "data.path=" + (out / "pairs.jsonl").string(),
                         "users.kind=from_data", "export.enabled=false"}));
  const auto summary = nlohmann::json::parse(read_file(vae / "summary.json"));
  EXPECT_EQ(summary["users"], 2);
  // The held-out pairs of each user, as the run scored them: alice's chosen is the longer text.
  int64_t alice = 0, bob = 0;
  for (const auto& p : read_jsonl(vae / "eval_predictions.jsonl")) {
    const size_t chosen = p["chosen_ids"].size(), rejected = p["rejected_ids"].size();
    if (p["user"] == "alice") {
      EXPECT_GT(chosen, rejected);
      ++alice;
    } else {
      EXPECT_EQ(p["user"], "bob");
      EXPECT_LT(chosen, rejected);
      ++bob;
    }
  }
  EXPECT_GT(alice, 0);
  EXPECT_GT(bob, 0);
  EXPECT_EQ(alice + bob, 12);  // data.eval_fraction 0.2 of the 60 pairs
  fs::remove_all(out);
}

TEST(RewardStage, AdaptiveOrderChoosesWhichUserTrainsFirst) {
  testing::InRepo in_repo;
  const fs::path out = fs::temp_directory_path() / "tailor_test_rm_order";
  fs::remove_all(out);
  run_reward_stage(tiny_stage_recipe(
      "vae_adaptive", out, {"train.adaptive_order=[user1, user0]", "export.enabled=false"}));
  // What the run drew, per phase (6 steps of 8, 3 per phase): phase 0 trains user1 as group B,
  // A = {user0} : B = {user1} = 1 : 2 of 24 -> user0 8, user1 16; phase 1 B = {user0} : C =
  // {user1} = 2 : 4 -> user0 8, user1 16. The default order gives user0 16, user1 8 in both
  // phases (RewardStageVariants/vae_adaptive).
  const auto summary = nlohmann::json::parse(read_file(out / "summary.json"));
  const auto& phases = summary["adaptive_phases"];
  ASSERT_EQ(phases.size(), 2u) << summary.dump();
  EXPECT_EQ(phases[0]["phase"], 0);
  EXPECT_EQ(phases[0]["group_b"], "user1");
  EXPECT_EQ(phases[0]["samples"], nlohmann::json({{"user0", 8}, {"user1", 16}}));
  EXPECT_EQ(phases[1]["phase"], 1);
  EXPECT_EQ(phases[1]["group_b"], "user0");
  EXPECT_EQ(phases[1]["samples"], nlohmann::json({{"user0", 8}, {"user1", 16}}));
  std::string message;
  try {
    run_reward_stage(
        tiny_stage_recipe("vae_adaptive", out, {"train.adaptive_order=[user1, carol]"}));
  } catch (const Error& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("train.adaptive_order: unknown user \"carol\""), std::string::npos)
      << message;
  fs::remove_all(out);
}

TEST(RewardStage, RecipeMistakesNameTheKey) {
  testing::InRepo in_repo;
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
