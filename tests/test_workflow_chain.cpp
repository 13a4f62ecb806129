// The chain stage end to end (stages/chain/), at toy size: a 1-layer base, 12 prompts, K = 3 and
// 2 answers, 2 DPO steps. What is checked is the wiring the stage exists for, against values
// read from the steps' own outputs and the recipe, not recomputed by the stage's code:
//   - the profiles of the elicit runs are the dpo run's training judges for <user>@20q and
//     <user>@pref, and the users' oracles (eval_users) judge every row, chains included;
//   - each row of the table is the win rate its run reports for that user's adapter, the rows
//     whose judge also labelled the training pairs are marked, and the margins are differences;
//   - baseline DPO n trains on n prompts' worth of pairs at most, two samples each.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <tuple>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/atomic_file.h"
#include "jsonl_test_support.h"
#include "test_support.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json read_chain_json(const fs::path& file) {
  return json::parse(read_file(file));
}

TEST(ChainStage, ProfilesPickThePairsAndOnlyTheUsersJudge) {
  const fs::path dir = test::fresh_process_dir("chain_stage");
  const std::string src = TAILOR_SOURCE_DIR;
  const std::string model = "{init: random, preset: gpt2-tiny, n_layer: 1, n_embd: 32, n_head: 2}";
  {
    std::string prompts;
    for (int i = 0; i < 12; ++i)
      prompts +=
          json({{"prompt", "Tell me about animal " + std::to_string(i) + "."}}).dump() + "\n";
    write_file_atomic(dir / "prompts.jsonl", prompts);
  }
  const std::string data = "{source: generated, path: " + (dir / "prompts.jsonl").string() +
                           ", template: zephyr, max_length: 64, eval_fraction: 0.25}";
  const std::string base_model = "{init: pretrained, path: " + (dir / "base/export").string() + "}";
  write_file_atomic(dir / "base.yaml",
                    "stage: sft\nseed: 7\noutput_dir: " + (dir / "base").string() +
                        "\ntokenizer: " + src + "/assets/tokenizers/gpt2\nmodel: " + model +
                        "\nlora: {enabled: false}\ndata: {train: " + src +
                        "/assets/datasets/styles/sft_instruct_train.jsonl, format: "
                        "prompt_response, template: zephyr, max_length: 96, eval_fraction: 0.0}\n"
                        "train: {max_steps: 4, micro_batch_size: 8, log_every: 2}\n"
                        "samples: {prompts: 0}\n");
  const std::string elicit = "stage: elicit\nseed: 0\noutput_dir: " + (dir / "e").string() +
                             "\ntokenizer: " + src +
                             "/assets/tokenizers/gpt2\nmodel: " + base_model +
                             "\nusers: {a: {shorter_length: 1.0}}\ndata: " + data +
                             "\ngenerate: {completions: 6, max_new_tokens: 6}\n"
                             "reward: {oracles: [new_lines, short_words, readability], "
                             "hidden_dim: 16, pairs_per_prompt: 6}\n"
                             "train: {max_steps: 10, batch_size: 16, log_every: 5}\n";
  write_file_atomic(dir / "elicit_20q.yaml",
                    elicit +
                        "elicit: {method: twenty_questions, selector: [info_gain], "
                        "questions: [3], samples: 20, burn_in: 50, thinning: 5}\n");
  write_file_atomic(dir / "elicit_pref.yaml",
                    elicit +
                        "elicit: {method: pref, selector: [active], questions: [2]}\n"
                        "pref: {rank: 2, training_users: 10, answers_per_user: 20, "
                        "dev_answers_per_user: 5}\n");
  const std::string dpo = "stage: dpo\nseed: 0\noutput_dir: " + (dir / "d").string() +
                          "\ntokenizer: " + src + "/assets/tokenizers/gpt2\nmodel: " + base_model +
                          "\nlora: {rank: 4, alpha: 8.0, targets: [c_attn]}\n"
                          "users: {a: {shorter_length: 1.0}}\ndata: " +
                          data +
                          "\ngenerate: {completions: 4, max_new_tokens: 6}\n"
                          "train: {max_steps: 2, pairs_per_user: 2, log_every: 1}\n"
                          "eval: {prompts: 0, completions: 2, max_new_tokens: 6, "
                          "cross_user: false}\n";
  write_file_atomic(dir / "dpo.yaml", dpo);
  write_file_atomic(dir / "baseline.yaml", dpo);
  write_file_atomic(
      dir / "chain.yaml",
      "stage: chain\nseed: 1\noutput_dir: " + (dir / "chain").string() + "\nbase_recipe: " +
          (dir / "base.yaml").string() + "\nbase_dir: " + (dir / "base").string() +
          "\nusers: {length: {shorter_length: 1.0}, lowercase: {lowercase: 1.0}}\n"
          "system_prompts: {length: {text: \"Answer in as few words as you can.\"}, "
          "lowercase: {text: \"Answer in lowercase.\"}}\n"
          "twenty_questions: " +
          (dir / "elicit_20q.yaml").string() +
          "\ntwenty_questions_answers: 3\npref: " + (dir / "elicit_pref.yaml").string() +
          "\npref_answers: 2\ndpo: " + (dir / "dpo.yaml").string() + "\nbaseline: " +
          (dir / "baseline.yaml").string() + "\nbaseline_prompts: [2, 3]\nbaseline_epochs: 1\n");
  ASSERT_EQ(cli::run_command({"tailor run", (dir / "chain.yaml").string()}), 0);

  const fs::path out = dir / "chain";
  const json summary = read_chain_json(out / "summary.json");
  const json dpo_summary = read_chain_json(out / "dpo" / "summary.json");
  // The profiles the elicit runs wrote are the training judges of the chains' adapters.
  for (const std::string user : {"length", "lowercase"}) {
    SCOPED_TRACE(user);
    for (const auto& [method, dir_name, selector, answers] :
         {std::tuple<std::string, std::string, std::string, int>{"20q", "elicit_20q", "info_gain",
                                                                 3},
          {"pref", "elicit_pref", "active", 2}}) {
      const fs::path profile =
          fs::absolute(out / dir_name / "users" / user / selector / "profile.json");
      EXPECT_EQ(read_chain_json(profile).at("answers"), answers);
      EXPECT_EQ(dpo_summary["judges"]["training"][user + "@" + method],
                "profile " + profile.string());
    }
    EXPECT_EQ(dpo_summary["judges"]["training"][user + "@oracle"],
              user == "length" ? "oracles {shorter_length: 1}" : "oracles {lowercase: 1}");
    EXPECT_EQ(dpo_summary["judges"]["eval"][user],
              user == "length" ? "oracles {shorter_length: 1}" : "oracles {lowercase: 1}");
  }
  // The table: rows in order, each the win rate its run reports, judged by the user's oracle.
  const std::vector<std::pair<std::string, std::string>> rows = {{"20q", "dpo"},
                                                                 {"pref", "dpo"},
                                                                 {"system", "dpo"},
                                                                 {"baseline_n2", "baseline_n2"},
                                                                 {"baseline_n3", "baseline_n3"},
                                                                 {"oracle", "dpo"}};
  const json& table = summary.at("table");
  ASSERT_EQ(table.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& [key, run] = rows[i];
    SCOPED_TRACE(key);
    EXPECT_EQ(table[i]["key"], key);
    const json step = read_chain_json(out / run / "summary.json");
    for (const std::string user : {"length", "lowercase"}) {
      const std::string adapter =
          run == "dpo" ? user + "@" + key : user;  // baselines train the users themselves
      const json& w = step["win_rate"][adapter];
      EXPECT_EQ(table[i]["win_rate"][user], w["rate"]);
      EXPECT_EQ(w["judge"], user);
      const bool oracle_labelled = key == "oracle" || key.rfind("baseline", 0) == 0;
      EXPECT_EQ(table[i]["judge_picked_training_pairs"][user].get<bool>(), oracle_labelled);
    }
  }
  for (const std::string user : {"length", "lowercase"})
    EXPECT_EQ(summary["margin_over_baseline_n3"]["20q"][user].get<double>(),
              table[0]["win_rate"][user].get<double>() - table[4]["win_rate"][user].get<double>());
  // Baseline DPO n: pairs from n training prompts at most, the first two samples of each.
  for (int n : {2, 3}) {
    const json step = read_chain_json(out / ("baseline_n" + std::to_string(n)) / "summary.json");
    for (const std::string user : {"length", "lowercase"})
      EXPECT_LE(step["train_pairs"][user].get<int>(), n) << user;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tailor
