// Reward-model judges under mpirun (runs in `mpirun -np N tailor_mpi_tests`): the ranks split a
// call's batches and gather the rewards, and every rank ends with exactly the rewards, verdicts
// and rankings one process computes; a dpo run whose reward user picks the generated pairs and
// judges the win rates writes the same pairs.jsonl and win rates as one process.
#include <gtest/gtest.h>

#include <filesystem>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "../dpo_test_support.h"
#include "common/atomic_file.h"
#include "dist/communicator.h"
#include "dist/runtime.h"
#include "judges/judge.h"
#include "judges/reward_judge.h"
#include "models/gpt2/gpt2.h"
#include "models/heads/reward_model.h"
#include "models/io/reward_export.h"
#include "stages/dpo/dpo_stage.h"
#include "zero_test_support.h"

namespace fs = std::filesystem;
using namespace tailor;
using namespace tailor::testing;

namespace {

const fs::path kTokenizer = fs::path(TAILOR_SOURCE_DIR) / "assets/tokenizers/gpt2";

// Rank 0 writes a small Bradley–Terry export into `dir`/rm; every rank returns after it exists.
void write_bt_export(const fs::path& dir) {
  auto& comm = dist::world();
  if (comm.rank() == 0) {
    GPT2Config config;
    config.n_positions = 64;
    config.n_embd = 16;
    config.n_layer = 1;
    config.n_head = 2;
    config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = 0.0;
    torch::manual_seed(51);
    RewardModel model(GPT2LMHead(config).ptr(), 1);
    model->init_head(0.5);
    save_reward_model(dir / "rm", model, /*merged=*/false, kTokenizer);
  }
  comm.barrier();
}

TEST(RewardJudgeDist, RanksGatherExactlyOneProcesssRewards) {
  auto& comm = dist::world();
  const fs::path dir = shared_temp_dir("reward_judge");
  write_bt_export(dir);
  std::vector<std::pair<std::string, std::string>> items;
  for (const char* prompt : {"What is a cat?", "Name a colour.", "Why?"})
    for (const char* answer : {" A pet.", " red", " Because it is, and that is all.", "", " RED!",
                               " a small animal", " A pet."})
      items.emplace_back(prompt, answer);
  judges::RewardJudgeOptions local, ranked;
  local.batch_size = ranked.batch_size = 4;  // 18 distinct texts: 5 batches dealt to the ranks
  ranked.comm = &comm;
  const judges::RewardJudgeSpec spec{dir / "rm", {}, {}};
  auto one = judges::make_reward_judges({spec}, {"reward_users.carol"}, local);
  auto split = judges::make_reward_judges({spec}, {"reward_users.carol"}, ranked);
  EXPECT_EQ(split[0]->rewards(items), one[0]->rewards(items));

  std::vector<judges::Matchup> matchups;
  for (size_t i = 0; i + 1 < items.size(); ++i)
    matchups.push_back({items[i].first, items[i].second, items[i + 1].second});
  EXPECT_EQ(split[0]->compare(matchups), one[0]->compare(matchups));
  const std::vector<judges::Candidates> groups = {
      {"What is a cat?", {" A pet.", " a small animal", " RED!"}},
      {"Why?", {" Because it is, and that is all.", " red"}}};
  const auto a = split[0]->rank(groups), b = one[0]->rank(groups);
  ASSERT_EQ(a.size(), b.size());
  for (size_t g = 0; g < a.size(); ++g) {
    EXPECT_EQ(a[g].order, b[g].order);
    EXPECT_EQ(a[g].prefers, b[g].prefers);
  }
  comm.barrier();
  if (comm.rank() == 0) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
}

TEST(RewardJudgeDist, GeneratedPairsAndWinRatesMatchOneProcess) {
  auto& comm = dist::world();
  const fs::path dir = shared_temp_dir("reward_judge_dpo");
  write_bt_export(dir);
  if (comm.rank() == 0) {
    std::string prompts;
    for (const char* p : {"The cat", "A story:", "Today I", "Water is", "My friend", "In the city"})
      prompts += nlohmann::json({{"prompt", p}}).dump() + "\n";
    write_file_atomic(dir / "prompts.jsonl", prompts);
  }
  comm.barrier();
  const std::vector<std::string> overrides = {
      "data.source=generated",
      "data.eval_fraction=0.34",
      "users={brief: {shorter_length: 1.0}}",
      "reward_users={carol: {model: " + (dir / "rm").string() + "}}",
      "generate.completions=4",
      "generate.max_new_tokens=8",
      "eval.completions=2",
      "eval.max_new_tokens=8",
      "eval.prompts=0",
      "train.max_steps=1",
      "train.pairs_per_user=4"};
  if (comm.rank() == 0) {
    auto single = dist::make_single_process_communicator();
    run_dpo_stage(dpo_test_recipe(dir / "prompts.jsonl", dir / "one", overrides), *single);
  }
  comm.barrier();
  run_dpo_stage(dpo_test_recipe(dir / "prompts.jsonl", dir / "ranks", overrides), comm);
  comm.barrier();
  if (comm.rank() != 0) return;
  EXPECT_EQ(read_file(dir / "ranks" / "pairs.jsonl"), read_file(dir / "one" / "pairs.jsonl"));
  const auto one = nlohmann::json::parse(read_file(dir / "one" / "summary.json"));
  const auto ranks = nlohmann::json::parse(read_file(dir / "ranks" / "summary.json"));
  EXPECT_TRUE(one["win_rate"].contains("carol"));
  // The adapters trained on N ranks differ from one process's by float rounding, so their
  // samples may differ; the base's samples and the judging may not.
  const auto base_samples = [](const fs::path& run) {
    std::vector<std::string> out;
    for (const auto& line : read_jsonl(run / "eval_samples.jsonl"))
      out.push_back(line["base"]);
    return out;
  };
  EXPECT_EQ(base_samples(dir / "ranks"), base_samples(dir / "one"));
  // The N-rank run's win rates, judged again here in one process from its own samples (adapter
  // sample r against base sample r): the judging split over the ranks counts exactly the same.
  const auto samples = read_jsonl(dir / "ranks" / "eval_samples.jsonl");
  ASSERT_FALSE(samples.empty());
  judges::RewardJudgeOptions local;
  auto carol = judges::make_reward_judges({{dir / "rm", {}, {}}}, {"reward_users.carol"}, local);
  const auto brief = judges::make_oracle_judge({{"shorter_length", 1.0}});
  for (const std::string user : {"brief", "carol"}) {
    std::vector<judges::Matchup> matchups;
    double wins = 0, ties = 0, losses = 0;
    for (const auto& line : samples) {
      // An answer cut at max_new_tokens never wins and is not judged (two such answers tie).
      const bool adapter_bad = line.contains("invalid") && line["invalid"].contains(user);
      const bool base_bad = line.contains("base_invalid");
      if (adapter_bad || base_bad)
        (adapter_bad && base_bad ? ties : adapter_bad ? losses : wins) += 1;
      else
        matchups.push_back({line["prompt"], line["users"][user], line["base"]});
    }
    if (!matchups.empty())
      for (const int v : (user == "brief" ? *brief : *carol[0]).compare(matchups))
        (v > 0 ? wins : (v < 0 ? losses : ties)) += 1;
    const auto& w = ranks["win_rate"][user];
    EXPECT_EQ(w["wins"].get<double>(), wins) << user;
    EXPECT_EQ(w["ties"].get<double>(), ties) << user;
    EXPECT_EQ(w["losses"].get<double>(), losses) << user;
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
