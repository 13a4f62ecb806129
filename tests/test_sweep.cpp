// `tailor sweep`'s tables (cli/sweep_table.h, cli/cli_sweep.cpp):
// - hand-written dpo summaries give one row per (recipe, user) with the hand-computed means and
//   sample stds of win rate, held-out reward accuracy and margin, the seeds finished and the mean
//   wall time, then the cross-user matrix averaged over the seeds;
// - a sweep mixing reward and dpo recipes prints the reward table unchanged, then the dpo ones;
// - summaries missing what the tables read are refused (the sweep counts such runs as failed);
// - end to end: `tailor sweep` of a tiny dpo recipe over 2 seeds prints and writes (--table) each
//   user's row with the numbers of the runs' summary.json files; runs that fail give exit code 1.
// (tests/e2e/reward_sweep.sh sweeps reward recipes end to end.)
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/sweep_table.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "dpo_test_support.h"
#include "test_support.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;
using cli::check_sweep_summary;
using cli::sweep_tables;
using cli::SweepRecipe;
using nlohmann::json;

const char* kDpoHeader =
    "| recipe | user | win rate vs base (mean ± std) | held-out reward accuracy (mean ± std) | "
    "held-out reward margin (mean ± std) | seeds finished | wall time per run |\n"
    "|---|---|---|---|---|---|---|\n";
const char* kRewardHeader =
    "| recipe | variant | accuracy (mean ± std) | converged | steps to converge | epochs to "
    "converge | wall time per run |\n|---|---|---|---|---|---|---|\n";

// A dpo summary.json as DpoStage::finish() writes it: alice and bob have judges, carol none (no
// win rate, no cross-user column).
json dpo_summary(double win_alice, double win_bob, double acc_alice, double acc_bob,
                 double margin_alice, double margin_bob, const json& cross, double wall) {
  const auto eval_of = [](double acc, double margin) {
    return json{{"rewards/accuracies", acc}, {"rewards/margins", margin}, {"pairs", 2}};
  };
  return {{"stage", "dpo"},
          {"users", {"alice", "bob", "carol"}},
          {"wall_seconds", wall},
          {"eval",
           {{"alice", eval_of(acc_alice, margin_alice)},
            {"bob", eval_of(acc_bob, margin_bob)},
            {"carol", eval_of(1.0, 3.0)}}},
          {"win_rate",
           {{"alice", {{"rate", win_alice}, {"wins", 1}, {"ties", 0}, {"losses", 0}}},
            {"bob", {{"rate", win_bob}, {"wins", 1}, {"ties", 0}, {"losses", 0}}}}},
          {"cross_user",
           {{"adapters", {"alice", "bob", "carol"}},
            {"judges", {"alice", "bob"}},
            {"win_rate", cross}}}};
}

json finished(int seed, const json& summary) {
  return {{"seed", seed}, {"summary", summary}};
}
json failed(int seed) {
  return {{"seed", seed}, {"error", "run exited non-zero"}};
}

// Two finished seeds and one failed one.
SweepRecipe dpo_recipe_runs() {
  SweepRecipe r{"recipes/users.yaml", "dpo", {}};
  r.runs.push_back(finished(
      0, dpo_summary(0.8, 0.5, 1.0, 0.5, 2.0, 0.25, {{0.8, 0.3}, {0.4, 0.5}, {0.5, 0.5}}, 10)));
  r.runs.push_back(finished(
      1, dpo_summary(0.6, 0.7, 0.5, 0.75, 1.0, 0.75, {{0.6, 0.5}, {0.2, 0.7}, {0.5, 0.4}}, 20)));
  r.runs.push_back(failed(2));
  return r;
}

TEST(SweepTable, DpoRowsPerUserAreMeanAndSampleStdOverTheSeedsThatFinished) {
  // alice: win 0.8, 0.6 -> 0.7 ± sqrt(0.02) = 0.141; accuracy 1.0, 0.5 -> 0.75 ± 0.354;
  //        margin 2.0, 1.0 -> 1.5 ± sqrt(0.5) = 0.707.
  // bob:   win 0.5, 0.7 -> 0.6 ± 0.141; accuracy 0.5, 0.75 -> 0.625 ± sqrt(0.03125) = 0.177;
  //        margin 0.25, 0.75 -> 0.5 ± 0.354.
  // carol: no judge -> no win rate; accuracy 1, 1; margin 3, 3.
  // wall: (10 + 20) / 2 = 15 s; 2 of 3 seeds finished. Cross-user: cell means over 2 seeds.
  const std::string expected =
      std::string(kDpoHeader) +
      "| users.yaml | alice | 0.700 ± 0.141 | 0.750 ± 0.354 | 1.500 ± 0.707 | 2/3 (1 failed) | 15 "
      "s |\n"
      "| users.yaml | bob | 0.600 ± 0.141 | 0.625 ± 0.177 | 0.500 ± 0.354 | 2/3 (1 failed) | 15 s "
      "|\n"
      "| users.yaml | carol | – ± – | 1.000 ± 0.000 | 3.000 ± 0.000 | 2/3 (1 failed) | 15 s |\n"
      "\nCross-user win rate against the base, users.yaml, mean over 2 seeds (rows: adapter, "
      "columns: judge):\n\n"
      "| adapter \\ judge | alice | bob |\n"
      "|---|---|---|\n"
      "| alice | 0.700 | 0.400 |\n"
      "| bob | 0.300 | 0.600 |\n"
      "| carol | 0.500 | 0.450 |\n";
  EXPECT_EQ(sweep_tables({dpo_recipe_runs()}), expected);
}

TEST(SweepTable, OneSeedHasStdZeroAndAllFailedShowsDashes) {
  SweepRecipe one{"one.yaml", "dpo", {}};
  one.runs.push_back(finished(
      4, dpo_summary(0.9, 0.1, 1.0, 0.0, 2.5, -1.0, {{0.9, 0.2}, {0.3, 0.1}, {0.5, 0.5}}, 7.4)));
  SweepRecipe none{"none.yaml", "dpo", {failed(0), failed(1)}};
  const std::string tables = sweep_tables({one, none});
  EXPECT_NE(
      tables.find(
          "| one.yaml | alice | 0.900 ± 0.000 | 1.000 ± 0.000 | 2.500 ± 0.000 | 1/1 | 7 s |\n"),
      std::string::npos)
      << tables;
  EXPECT_NE(tables.find("| one.yaml | bob | 0.100 ± 0.000 | 0.000 ± 0.000 | -1.000 ± 0.000 | 1/1 "
                        "| 7 s |\n"),
            std::string::npos)
      << tables;
  EXPECT_NE(tables.find("| none.yaml | – | – ± – | – ± – | – ± – | 0/2 (2 failed) | – s |\n"),
            std::string::npos)
      << tables;
  EXPECT_NE(tables.find("one.yaml, mean over 1 seed (rows"), std::string::npos) << tables;
  EXPECT_EQ(tables.find("none.yaml, mean over"), std::string::npos) << tables;
}

json reward_summary(double accuracy, bool converged, double step, double epoch, double wall) {
  json s = {{"stage", "reward"},      {"reward_kind", "bt"},  {"sampling", "uniform"},
            {"grad_surgery", "none"}, {"accuracy", accuracy}, {"converged", converged},
            {"wall_seconds", wall}};
  if (converged) {
    s["converge_step"] = step;
    s["converge_epoch"] = epoch;
  }
  return s;
}

TEST(SweepTable, RewardTableIsUnchangedAndAMixedSweepPrintsBoth) {
  SweepRecipe reward{"recipes/rm_synth_bt.yaml", "reward", {}};
  reward.runs.push_back(finished(0, reward_summary(0.8, true, 100, 1.0, 30)));
  reward.runs.push_back(finished(1, reward_summary(0.9, true, 200, 2.0, 50)));
  reward.runs.push_back(finished(2, reward_summary(0.7, false, 0, 0, 40)));
  // accuracy 0.8, 0.9, 0.7 -> 0.8 ± 0.1; converged 2 of 3, steps (100 + 200) / 2, epochs 1.5.
  const std::string reward_table =
      std::string(kRewardHeader) +
      "| rm_synth_bt.yaml | bt | 0.800 ± 0.100 | 2/3 | 150 | 1.50 | 40 s |\n";
  EXPECT_EQ(sweep_tables({reward}), reward_table);

  const std::string mixed = sweep_tables({dpo_recipe_runs(), reward});
  EXPECT_EQ(mixed.substr(0, reward_table.size() + 1), reward_table + "\n");
  EXPECT_EQ(mixed.substr(reward_table.size() + 1), sweep_tables({dpo_recipe_runs()}));
}

// An elicit summary.json as ElicitStage::finish() writes it (what the table reads of it).
json elicit_summary(double default_acc, double info5, double info20, double random5,
                    double random20, double wall) {
  return {{"stage", "elicit"},
          {"questions", {5, 20}},
          {"wall_seconds", wall},
          {"users",
           {{"length",
             {{"default_accuracy", default_acc},
              {"selectors",
               {{"info_gain", {{"accuracy", {{"5", info5}, {"20", info20}}}}},
                {"random", {{"accuracy", {{"5", random5}, {"20", random20}}}}}}}}}}}};
}

TEST(SweepTable, ElicitRowsPerUserAndSelectorAreMeanAndStdInPercent) {
  SweepRecipe elicit{"recipes/elicit_20q.yaml", "elicit", {}};
  elicit.runs.push_back(finished(0, elicit_summary(0.40, 0.60, 0.80, 0.50, 0.70, 10)));
  elicit.runs.push_back(finished(1, elicit_summary(0.42, 0.70, 0.90, 0.50, 0.74, 20)));
  elicit.runs.push_back(failed(2));
  // info_gain at 5: 60, 70 -> 65.0 ± 7.1 (sample std 7.07); at 20: 80, 90 -> 85.0 ± 7.1;
  // random at 20: 70, 74 -> 72.0 ± 2.8; default 40, 42 -> 41.0 ± 1.4; wall (10 + 20) / 2.
  const std::string expected =
      "| recipe | user | selector | metric | % after 5 (mean ± std) | % after 20 (mean ± std) | "
      "seeds finished | wall time per run |\n"
      "|---|---|---|---|---|---|---|---|\n"
      "| elicit_20q.yaml | length | default | accuracy | 41.0 ± 1.4 | 41.0 ± 1.4 | 2/3 (1 failed) "
      "| 15 s |\n"
      "| elicit_20q.yaml | length | info_gain | accuracy | 65.0 ± 7.1 | 85.0 ± 7.1 | 2/3 (1 "
      "failed) | 15 s |\n"
      "| elicit_20q.yaml | length | random | accuracy | 50.0 ± 0.0 | 72.0 ± 2.8 | 2/3 (1 failed) "
      "| 15 s |\n";
  EXPECT_EQ(sweep_tables({elicit}), expected);

  EXPECT_NO_THROW(check_sweep_summary("elicit", elicit_summary(0.4, 0.6, 0.8, 0.5, 0.7, 1)));
  json no_default = elicit_summary(0.4, 0.6, 0.8, 0.5, 0.7, 1);
  no_default["users"]["length"].erase("default_accuracy");
  EXPECT_THROW(check_sweep_summary("elicit", no_default), Error);
  json no_questions = elicit_summary(0.4, 0.6, 0.8, 0.5, 0.7, 1);
  no_questions.erase("questions");
  EXPECT_THROW(check_sweep_summary("elicit", no_questions), Error);
}

// PReF: the metric is AUC, and with two users the mean over users per selector follows
// (summary selector_means.mean_curve, indexed by K).
TEST(SweepTable, PrefRowsReadTheAucAndTheMeanOfUsers) {
  const auto summary = [](double a5, double b5, double mean5, double wall) {
    json users = json::object();
    for (const auto& [name, v] : std::vector<std::pair<std::string, double>>{{"a", a5}, {"b", b5}})
      users[name] = {{"default_auc", 0.5}, {"selectors", {{"active", {{"auc", {{"5", v}}}}}}}};
    return json{{"stage", "elicit"},
                {"metric", "auc"},
                {"questions", {5}},
                {"wall_seconds", wall},
                {"users", users},
                {"selector_means", {{"mean_curve", {{"active", {0.5, 0, 0, 0, 0, mean5}}}}}}};
  };
  SweepRecipe pref{"recipes/elicit_pref.yaml", "elicit", {}};
  pref.runs.push_back(finished(0, summary(0.60, 0.70, 0.65, 10)));
  pref.runs.push_back(finished(1, summary(0.62, 0.74, 0.68, 30)));
  // a: 60, 62 -> 61.0 ± 1.4; b: 70, 74 -> 72.0 ± 2.8; mean: 65, 68 -> 66.5 ± 2.1; wall 20 s.
  const std::string expected =
      "| recipe | user | selector | metric | % after 5 (mean ± std) | seeds finished | wall time "
      "per run |\n"
      "|---|---|---|---|---|---|---|\n"
      "| elicit_pref.yaml | a | default | auc | 50.0 ± 0.0 | 2/2 | 20 s |\n"
      "| elicit_pref.yaml | a | active | auc | 61.0 ± 1.4 | 2/2 | 20 s |\n"
      "| elicit_pref.yaml | b | default | auc | 50.0 ± 0.0 | 2/2 | 20 s |\n"
      "| elicit_pref.yaml | b | active | auc | 72.0 ± 2.8 | 2/2 | 20 s |\n"
      "| elicit_pref.yaml | (mean of users) | active | auc | 66.5 ± 2.1 | 2/2 | 20 s |\n";
  EXPECT_EQ(sweep_tables({pref}), expected);
  EXPECT_NO_THROW(check_sweep_summary("elicit", summary(0.6, 0.7, 0.65, 1)));
  json accuracy_keys = summary(0.6, 0.7, 0.65, 1);
  accuracy_keys["metric"] = "accuracy";  // its users hold default_auc, not default_accuracy
  EXPECT_THROW(check_sweep_summary("elicit", accuracy_keys), Error);
}

// Preference agents: the win rates against the baselines in the summary's baseline_order, the
// cross-user matrix with the seeds whose diagonal was each row's maximum, the learning curve with
// its sizes in numeric order.
TEST(SweepTable, AgentTablesAreMeanAndStdOfWinRatesMatrixAndCurve) {
  const auto summary = [](double large, double naive, double cross_ab, bool diagonal, double wall) {
    return json{
        {"wall_seconds", wall},
        {"baselines", {{"large", "large baseline"}, {"naive", "naive fine-tune"}}},
        {"baseline_order", {"naive", "large"}},
        {"win_rates", {{"a", {{"large", large}, {"naive", naive}}}}},
        {"win_rates_mean", {{"large", large}, {"naive", naive}}},
        {"cross_user",
         {{"win_rate", {{"a", {{"a", large}, {"b", cross_ab}}}}},
          {"diagonal_is_row_max", diagonal}}},
        {"curves", {{"a", {{"rules", {{"5", 0.6}, {"40", large}}}, {"naive", {{"5", 0.5}}}}}}}};
  };
  SweepRecipe agent{"recipes/agent_demo.yaml", "agent", {}};
  agent.runs.push_back(finished(0, summary(0.80, 0.60, 0.40, true, 60)));
  agent.runs.push_back(finished(1, summary(0.90, 0.50, 0.50, false, 80)));
  // large: 80, 90 -> 85.0 ± 7.1; naive: 60, 50 -> 55.0 ± 7.1; cross (a judging b): 45.0 ± 7.1;
  // rules at 5: 60, 60 -> 60.0 ± 0.0; wall (60 + 80) / 2 = 70.
  const std::string expected =
      "| agent_demo.yaml: user | vs naive fine-tune | vs large baseline |\n"
      "|---|---:|---:|\n"
      "| a | 55.0 ± 7.1 | 85.0 ± 7.1 |\n"
      "| mean | 55.0 ± 7.1 | 85.0 ± 7.1 |\n"
      "\nCross-user matrix (win % against M_L alone; rows: users judging, columns: agents); each "
      "agent best on its own user in 1/2 seeds.\n\n"
      "| judge \\ agent | a |\n|---|---:|\n| a | 85.0 ± 7.1 |\n"
      "\nLearning curve (win % against M_L alone, mean over users and seeds): rule fine-tuning "
      "(the agent) vs naive fine-tuning, by demonstrations per user.\n\n"
      "| method | n = 5 | n = 40 |\n|---|---:|---:|\n"
      "| agent (rules) | 60.0 ± 0.0 | 85.0 ± 7.1 |\n"
      "| naive fine-tune | 50.0 ± 0.0 | – |\n"
      "\n2/2; 70 s per run. Judged by each user's oracle, which also picked the user's "
      "demonstrations (for every method alike).\n";
  EXPECT_EQ(sweep_tables({agent}), expected);
  EXPECT_NO_THROW(check_sweep_summary("agent", summary(0.8, 0.6, 0.4, true, 1)));
  json no_curves = summary(0.8, 0.6, 0.4, true, 1);
  no_curves.erase("curves");
  EXPECT_THROW(check_sweep_summary("agent", no_curves), Error);
}

TEST(SweepTable, SummariesMissingWhatTheTableReadsAreRefused) {
  const json good = dpo_recipe_runs().runs[0]["summary"];
  EXPECT_NO_THROW(check_sweep_summary("dpo", good));
  json no_users = good;
  no_users.erase("users");
  EXPECT_THROW(check_sweep_summary("dpo", no_users), Error);
  json ragged = good;
  ragged["cross_user"]["win_rate"][1] = {0.5};
  EXPECT_THROW(check_sweep_summary("dpo", ragged), Error);
  json no_wall = good;
  no_wall.erase("wall_seconds");
  EXPECT_THROW(check_sweep_summary("dpo", no_wall), Error);

  EXPECT_NO_THROW(check_sweep_summary("reward", reward_summary(0.8, true, 1, 1, 1)));
  EXPECT_NO_THROW(check_sweep_summary("reward", reward_summary(0.8, false, 0, 0, 1)));
  json no_step = reward_summary(0.8, true, 1, 1, 1);
  no_step.erase("converge_step");
  EXPECT_THROW(check_sweep_summary("reward", no_step), Error);
  // A dpo summary is no reward summary.
  EXPECT_THROW(check_sweep_summary("reward", good), Error);
}

// ---- end to end ----

// Runs a shell command; returns its stdout and sets *status to its exit code.
std::string run_shell(const std::string& command, int* status) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return out;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe))
    out.append(buffer, n);
  const int raw = pclose(pipe);
  *status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return out;
}

// A tiny dpo recipe: random gpt2-tiny, alice's and bob's pairs (each with a judge, so win rates
// and the cross-user matrix exist), 2 steps, 2 held-out prompts x 2 short samples.
fs::path write_tiny_dpo_recipe(const fs::path& dir, const fs::path& pairs,
                               const std::string& name) {
  const fs::path file = dir / name;
  std::ofstream(file) << "stage: dpo\n"
                         "seed: 0\n"
                         "output_dir: "
                      << (dir / "out").string()
                      << "\n"
                         "tokenizer: " TAILOR_SOURCE_DIR
                         "/assets/tokenizers/gpt2\n"
                         "model: {init: random, preset: gpt2-tiny}\n"
                         "lora: {rank: 4, alpha: 8.0, targets: [c_attn]}\n"
                         "data: {source: pairs, path: "
                      << pairs.string()
                      << ", eval_fraction: 0.25, max_length: 48}\n"
                         "users: {alice: {shorter_length: 1.0}, bob: {shorter_length: -1.0}}\n"
                         "dpo: {beta: 0.5}\n"
                         "optimizer: {lr: 0.01, weight_decay: 0.0}\n"
                         "schedule: {type: constant, warmup_steps: 0}\n"
                         "train: {max_steps: 2, pairs_per_user: 2, log_every: 1}\n"
                         "eval: {prompts: 2, completions: 2, max_new_tokens: 6}\n"
                         "export: {enabled: false}\n";
  return file;
}

std::string mean_std_text(const std::vector<double>& v) {
  const double mean = (v[0] + v[1]) / 2;
  const double std = std::sqrt((v[0] - mean) * (v[0] - mean) + (v[1] - mean) * (v[1] - mean));
  char text[64];
  std::snprintf(text, sizeof text, "%.3f ± %.3f", mean, std);
  return text;
}

TEST(TailorSweep, DpoRecipeOverTwoSeedsPrintsEachUsersRowFromTheSummaries) {
  const fs::path dir = test::fresh_process_dir("sweep_dpo");
  testing::write_user_pairs(dir / "pairs.jsonl", testing::dpo_user_pairs(8), {"alice", "bob"});
  const fs::path recipe = write_tiny_dpo_recipe(dir, dir / "pairs.jsonl", "tiny_dpo.yaml");
  int status = -1;
  const std::string out = run_shell(
      "OMP_NUM_THREADS=1 " + std::string(TAILOR_BINARY) + " sweep " + recipe.string() +
          " --seeds 0,1 --table " + (dir / "table.md").string() + " 2>" + (dir / "stderr").string(),
      &status);
  ASSERT_EQ(status, 0) << out << read_file(dir / "stderr");
  const std::string table = read_file(dir / "table.md");
  // stdout ends with the same tables.
  ASSERT_GE(out.size(), table.size());
  EXPECT_EQ(out.substr(out.size() - table.size()), table);
  EXPECT_EQ(table.find("| recipe | variant |"), std::string::npos) << table;  // no reward table

  std::vector<json> summaries;
  for (const char* seed : {"seed0", "seed1"})
    summaries.push_back(json::parse(read_file(dir / "out" / seed / "summary.json")));
  EXPECT_EQ(summaries[0]["seed"], 0);
  EXPECT_EQ(summaries[1]["seed"], 1);
  char wall[32];
  std::snprintf(
      wall, sizeof wall, "%.0f s",
      (summaries[0]["wall_seconds"].get<double>() + summaries[1]["wall_seconds"].get<double>()) /
          2);
  for (const std::string user : {"alice", "bob"}) {
    std::vector<double> win, acc, margin;
    for (const auto& s : summaries) {
      win.push_back(s["win_rate"][user]["rate"].get<double>());
      acc.push_back(s["eval"][user]["rewards/accuracies"].get<double>());
      margin.push_back(s["eval"][user]["rewards/margins"].get<double>());
    }
    const std::string row = "| tiny_dpo.yaml | " + user + " | " + mean_std_text(win) + " | " +
                            mean_std_text(acc) + " | " + mean_std_text(margin) + " | 2/2 | " +
                            wall + " |\n";
    EXPECT_NE(table.find(row), std::string::npos) << row << "\n" << table;
  }
  // The cross-user matrix, each cell the mean of the two runs'.
  EXPECT_NE(table.find("| adapter \\ judge | alice | bob |\n|---|---|---|\n"), std::string::npos)
      << table;
  for (size_t i = 0; i < 2; ++i) {
    std::string row = "| " + summaries[0]["cross_user"]["adapters"][i].get<std::string>() + " |";
    for (size_t j = 0; j < 2; ++j) {
      char cell[32];
      std::snprintf(cell, sizeof cell, " %.3f |",
                    (summaries[0]["cross_user"]["win_rate"][i][j].get<double>() +
                     summaries[1]["cross_user"]["win_rate"][i][j].get<double>()) /
                        2);
      row += cell;
    }
    EXPECT_NE(table.find(row + "\n"), std::string::npos) << row << "\n" << table;
  }
  // sweep.json keeps every run's summary.
  const json sweep = json::parse(read_file(dir / "out" / "sweep.json"));
  EXPECT_EQ(sweep["stage"], "dpo");
  ASSERT_EQ(sweep["runs"].size(), 2u);
  for (size_t i = 0; i < 2; ++i)
    EXPECT_EQ(sweep["runs"][i]["summary"], summaries[i]);
  fs::remove_all(dir);
}

// Runs that fail (here: the pairs file is missing, which only the run checks) are reported in the
// table and give exit code 1.
TEST(TailorSweep, FailedDpoRunsAreReportedAndExitOne) {
  const fs::path dir = test::fresh_process_dir("sweep_dpo_fail");
  const fs::path recipe = write_tiny_dpo_recipe(dir, dir / "missing.jsonl", "broken.yaml");
  int status = -1;
  const std::string out =
      run_shell("OMP_NUM_THREADS=1 " + std::string(TAILOR_BINARY) + " sweep " + recipe.string() +
                    " --seeds 0,1 2>" + (dir / "stderr").string(),
                &status);
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find("| broken.yaml | – | – ± – | – ± – | – ± – | 0/2 (2 failed) | – s |\n"),
            std::string::npos)
      << out;
  EXPECT_NE(read_file(dir / "stderr").find("[sweep] " + recipe.string() + " seed 1 failed"),
            std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tailor
