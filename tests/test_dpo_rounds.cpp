// Iterative (on-policy) DPO: generate.rounds > 1 (stages/dpo/dpo_stage.cpp, start_round).
// - Round 2's pairs are the ones its user's judge picks among that user's adapter's own samples:
//   rebuilt here from the round-boundary checkpoint, exported with `tailor export --user`,
//   loaded as a plain PEFT model and sampled outside the stage;
// - a run interrupted in round 2 (checkpoint inside the round, or at the boundary before round
//   2's pairs existed) resumes bit-identical to an uninterrupted one;
// - recipe errors name generate.rounds.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <set>

#include <torch/torch.h>

#include "common/error.h"
#include "dist/communicator.h"
#include "dpo_test_support.h"
#include "judges/judge.h"
#include "judges/preference_sources.h"
#include "models/io/pretrained.h"
#include "models/tokenizer/tokenizer.h"
#include "stages/dpo/dpo_stage.h"
#include "test_support.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;
using testing::dpo_test_recipe;
using testing::exported_adapter;
using testing::read_jsonl;
using testing::run_dpo_in_process;
using testing::without_timing;

const std::vector<std::string> kPrompts = {"The cat",  "A story:",  "Today I",
                                           "Water is", "My friend", "In the city"};

// A fresh directory holding kPrompts as prompts.jsonl.
fs::path rounds_dir(const std::string& name) {
  const fs::path dir = test::fresh_process_dir("dpo_rounds_" + name);
  std::ofstream prompts(dir / "prompts.jsonl");
  for (const auto& p : kPrompts)
    prompts << nlohmann::json({{"prompt", p}}).dump() << "\n";
  return dir;
}

// Two users of opposite tastes on the base's samples, two rounds over 4 steps (round 2 = steps
// 3-4), every prompt a training prompt.
std::vector<std::string> rounds_overrides(std::vector<std::string> more = {}) {
  std::vector<std::string> out = {
      "data.source=generated",
      "data.eval_fraction=0",
      "users={brief: {shorter_length: 1.0}, verbose: {shorter_length: -1.0}}",
      "generate.completions=4",
      "generate.max_new_tokens=8",
      "generate.rounds=2",
      "train.max_steps=4",
      "optimizer.lr=0.05"};
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

// A wiring test: round 2's pairs are the user's judge on the adapter's own samples, drawn again
// here with the production sampler and pair picker (whose choices test_dpo_stage.cpp and
// OracleJudge.PicksThePairsAndVerdictsOfTheMixtureVotes check against independent values).
TEST(DpoRounds, RoundTwoWiresTheAdaptersOwnSamplesToTheJudge) {
  const fs::path dir = rounds_dir("pairs");
  const fs::path out = dir / "run";
  const DpoRecipe recipe =
      dpo_test_recipe(dir / "prompts.jsonl", out, rounds_overrides({"train.checkpoint_every=2"}));
  run_dpo_in_process(recipe);
  const auto round1 = read_jsonl(out / "pairs.jsonl");
  const auto round2 = read_jsonl(out / "pairs_round_2.jsonl");
  ASSERT_FALSE(round2.empty());
  EXPECT_NE(round1, round2);

  // The round's samples, drawn again outside the stage: the base + the user's adapter at the
  // end of round 1 (step 2), as PEFT exports it; sampling seed generate.seed + 1 (round 2).
  const Tokenizer tokenizer = Tokenizer::from_dir(TAILOR_SOURCE_DIR "/assets/tokenizers/gpt2");
  GenerationConfig config;
  config.max_new_tokens = 8;
  config.temperature = 1.0;  // generate.* defaults: plain sampling
  config.top_k = 0;
  config.top_p = 1.0;
  config.seed = static_cast<uint64_t>(recipe.generate.seed + 1);
  for (const std::string user : {"brief", "verbose"}) {
    const fs::path adapter = dir / ("adapter_" + user);
    const std::string command = std::string(TAILOR_BINARY) + " export --checkpoint " +
                                (out / "checkpoints" / "step_00000002").string() + " --user " +
                                user + " --out " + adapter.string() + " 2>/dev/null";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    CausalLM model = load_pretrained(adapter);  // the base, and the user's adapter in adapter/
    load_peft_adapter(adapter / "adapter", *model);
    model->eval();
    std::vector<bool> cut;
    const auto samples = sample_completions(*model, tokenizer, PromptTemplate::kPlain, kPrompts,
                                            config, 4, 0, 8, &cut);
    std::vector<std::vector<std::string>> answers(kPrompts.size());
    std::vector<std::set<std::string>> cut_texts(kPrompts.size());
    for (size_t k = 0; k < samples.size(); ++k) {
      answers[k / 4].push_back(samples[k]);
      if (cut[k]) cut_texts[k / 4].insert(samples[k]);
    }
    const auto judge =
        judges::make_oracle_judge({{"shorter_length", user == "brief" ? 1.0 : -1.0}});
    std::vector<nlohmann::json> expected, got;
    for (const auto& per_prompt : pick_pairs(user, *judge, kPrompts, answers, 1, &cut_texts))
      for (const auto& p : per_prompt)
        expected.push_back({{"prompt", p.prompt}, {"chosen", p.chosen}, {"rejected", p.rejected}});
    for (const auto& p : round2)
      if (p["user"] == user)
        got.push_back(
            {{"prompt", p["prompt"]}, {"chosen", p["chosen"]}, {"rejected", p["rejected"]}});
    ASSERT_FALSE(expected.empty()) << user;
    // The pairs file holds a sample's invalid UTF-8 bytes (a token split mid-character) as
    // U+FFFD: compare the texts as written.
    const auto as_written = [](const std::vector<nlohmann::json>& lines) {
      std::vector<std::string> out;
      for (const auto& j : lines)
        out.push_back(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      return out;
    };
    EXPECT_EQ(as_written(got), as_written(expected)) << user;
  }
  // The round is in the metrics (with its first step) and the summary.
  bool logged = false;
  for (const auto& record : read_jsonl(out / "metrics.jsonl"))
    if (record.contains("round")) {
      EXPECT_EQ(record["round"], 2);
      EXPECT_EQ(record["step"], 3);
      logged = true;
    }
  EXPECT_TRUE(logged);
  fs::remove_all(dir);
}

// Interrupted at step 4 (round 2), resumed: the same adapters and metrics as an uninterrupted
// run, from a checkpoint inside round 2 (its pairs file read back) and from one at the boundary
// (round 2's pairs sampled again by the resumed run).
TEST(DpoRounds, ResumeInRoundTwoIsBitExact) {
  const fs::path dir = rounds_dir("resume");
  run_dpo_in_process(dpo_test_recipe(dir / "prompts.jsonl", dir / "straight",
                                     rounds_overrides({"lora.dropout=0.1"})));
  for (const std::string every : {"3", "2"}) {
    const fs::path out = dir / ("resumed_" + every);
    const auto overrides =
        rounds_overrides({"lora.dropout=0.1", "train.checkpoint_every=" + every});
    ::setenv("TAILOR_FAULT_RANK", "0", 1);
    ::setenv("TAILOR_FAULT_STEP", "4", 1);
    EXPECT_THROW(run_dpo_in_process(dpo_test_recipe(dir / "prompts.jsonl", out, overrides)), Error);
    ::unsetenv("TAILOR_FAULT_RANK");
    ::unsetenv("TAILOR_FAULT_STEP");
    auto resume = overrides;
    resume.push_back("train.resume=true");
    run_dpo_in_process(dpo_test_recipe(dir / "prompts.jsonl", out, resume));
    for (const std::string user : {"brief", "verbose"}) {
      const TensorMap a = exported_adapter(dir / "straight", user);
      const TensorMap b = exported_adapter(out, user);
      for (const auto& [name, t] : a)
        EXPECT_TRUE(at::equal(t, b.at(name))) << every << " " << user << " " << name;
    }
    EXPECT_EQ(without_timing(read_jsonl(dir / "straight" / "metrics.jsonl")),
              without_timing(read_jsonl(out / "metrics.jsonl")))
        << every;
    EXPECT_EQ(read_jsonl(dir / "straight" / "pairs_round_2.jsonl"),
              read_jsonl(out / "pairs_round_2.jsonl"));
  }
  fs::remove_all(dir);
}

TEST(DpoRounds, RecipeErrorsNameTheKey) {
  const auto& error_of = testing::dpo_recipe_error;
  EXPECT_NE(error_of({"generate.rounds=2"}).find("generate.rounds"), std::string::npos);
  EXPECT_NE(error_of({"generate.rounds=2"}).find("data.source generated"), std::string::npos);
  const std::string too_many = error_of(rounds_overrides({"generate.rounds=5"}));
  EXPECT_NE(too_many.find("generate.rounds: 5 rounds need at least as many steps"),
            std::string::npos)
      << too_many;
  EXPECT_NE(error_of({"generate.rounds=0"}).find("generate.rounds"), std::string::npos);
}

}  // namespace
}  // namespace tailor
