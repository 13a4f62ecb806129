// The per-user DPO stage (stages/dpo/dpo_stage.h) end to end on a random gpt2-tiny base:
// - four users trained in one run end with the same adapters as four one-user runs;
// - fresh adapters give loss ln 2 and zero rewards at the first step;
// - an interrupted run resumed from its checkpoint ends bit-identical to an uninterrupted one;
// - each exported PEFT adapter, reloaded onto the exported base, reproduces the run's held-out
//   log-prob margins (recomputed here in float64);
// - with simulated users, the pairs follow each user's oracle and the win rates in summary.json
//   are the ones counted again from the written samples;
// - recipe errors name the key.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <tuple>

#include <torch/torch.h>

#include "common/atomic_file.h"
#include "common/error.h"
#include "dist/communicator.h"
#include "dpo_test_support.h"
#include "judges/oracles.h"
#include "models/io/pretrained.h"
#include "models/io/safetensors.h"
#include "models/tokenizer/prompt_format.h"
#include "models/tokenizer/tokenizer.h"
#include "stages/dpo/dpo_stage.h"
#include "test_support.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;
using testing::dpo_test_recipe;
using testing::dpo_user_pairs;
using testing::eos_prone_base;
using testing::exported_adapter;
using testing::read_jsonl;
using testing::run_dpo_in_process;
using testing::without_timing;
using testing::write_user_pairs;

const std::vector<std::string> kDpoUsers = {"alice", "bob", "carol", "dave"};

// A four-user run, float32 or float64 (train.precision fp64). Several tests read each.
fs::path make_four_user_run(const std::string& name, const std::vector<std::string>& overrides) {
  const fs::path dir = test::fresh_process_dir("dpo_stage_" + name);
  write_user_pairs(dir / "pairs.jsonl", dpo_user_pairs(8));
  const fs::path run_dir = dir / "run";
  std::vector<std::string> all = {"data.pad_to_max_length=true"};
  all.insert(all.end(), overrides.begin(), overrides.end());
  run_dpo_in_process(dpo_test_recipe(dir / "pairs.jsonl", run_dir, all));
  return run_dir;
}

// float32, as users train.
const fs::path& four_user_run() {
  static const fs::path out = make_four_user_run("four", {});
  return out;
}

// float64: where two ways of running claim to compute the same thing, they are compared here,
// free of float32 rounding (which differs between BLAS kernels: OPENBLAS_CORETYPE=Haswell against
// AVX-512). The runs differ only in summation order, so 1e-10 relative leaves six orders of
// magnitude above float64 rounding after three Adam steps. One padded length in every run: the
// one-user runs' batches are shorter otherwise.
const fs::path& four_user_run_fp64() {
  static const fs::path out = make_four_user_run("four_fp64", {"train.precision=fp64"});
  return out;
}

TEST(DpoStage, FourUsersInOneRunEqualFourOneUserRuns) {
  const fs::path& all = four_user_run_fp64();
  const fs::path dir = test::fresh_process_dir("dpo_stage_single");
  for (const auto& user : kDpoUsers) {
    write_user_pairs(dir / user / "pairs.jsonl", dpo_user_pairs(8), {user});
    run_dpo_in_process(dpo_test_recipe(dir / user / "pairs.jsonl", dir / user / "run",
                                       {"data.pad_to_max_length=true", "train.precision=fp64"}));
    const TensorMap single = exported_adapter(dir / user / "run", user);
    const TensorMap together = exported_adapter(all, user);
    ASSERT_EQ(single.size(), together.size());
    // The adapters moved away from their start (lora_B starts at zero).
    double moved = 0;
    for (const auto& [name, t] : together)
      if (name.find("lora_B") != std::string::npos) moved += t.abs().sum().item<double>();
    EXPECT_GT(moved, 0.0) << user;
    std::string where;
    const double diff = testing::adapter_relative_difference(together, single, &where);
    std::cout << user << ": worst relative difference " << diff << " (" << where << ")\n";
    EXPECT_LE(diff, 1e-10) << user;
  }
  fs::remove_all(dir);
}

// lora_B starts at zero, so at the first step the policy is the reference: the loss is exactly
// ln 2 and the rewards 0 in exact arithmetic (float64: within 1e-9 of it, the policy's and the
// reference's log-probs coming from differently shaped batches).
TEST(DpoStage, FreshAdaptersGiveLn2AndZeroRewardsAtTheFirstStep) {
  const auto records = read_jsonl(four_user_run_fp64() / "metrics.jsonl");
  ASSERT_FALSE(records.empty());
  const auto& first = records.front();
  ASSERT_EQ(first["step"].get<int64_t>(), 1);
  EXPECT_NEAR(first["loss"].get<double>(), std::log(2.0), 1e-9);
  for (const auto& user : kDpoUsers) {
    EXPECT_NEAR(first["users/" + user + "/loss"].get<double>(), std::log(2.0), 1e-9) << user;
    EXPECT_NEAR(first["users/" + user + "/rewards/chosen"].get<double>(), 0.0, 1e-9) << user;
    EXPECT_NEAR(first["users/" + user + "/rewards/margins"].get<double>(), 0.0, 1e-9) << user;
  }
  // And training lowered every user's loss below ln 2 by the last step.
  nlohmann::json last;
  for (const auto& r : records)
    if (r.contains("users/alice/loss")) last = r;
  ASSERT_EQ(last["step"].get<int64_t>(), 3);
  for (const auto& user : kDpoUsers)
    EXPECT_LT(last["users/" + user + "/loss"].get<double>(), std::log(2.0)) << user;
}

// dpo.precompute_reference (the default) computes each distinct training pair's reference once
// before training; alice/bob and carol/dave hold the same pairs in opposite order, so the mirror
// bookkeeping is exercised. Against the reference computed inside every step (off), the adapters
// must end the same: a pair given another pair's reference, or chosen and rejected swapped, would
// move them far apart.
TEST(DpoStage, PrecomputedReferenceTrainsAsTheInStepReference) {
  const fs::path& on = four_user_run_fp64();
  const fs::path dir = test::fresh_process_dir("dpo_stage_reference_off");
  write_user_pairs(dir / "pairs.jsonl", dpo_user_pairs(8));
  run_dpo_in_process(dpo_test_recipe(
      dir / "pairs.jsonl", dir / "run",
      {"data.pad_to_max_length=true", "dpo.precompute_reference=false", "train.precision=fp64"}));
  for (const auto& user : kDpoUsers) {
    const double diff = testing::adapter_relative_difference(exported_adapter(on, user),
                                                             exported_adapter(dir / "run", user));
    std::cout << user << ": precomputed vs in-step reference, worst relative difference " << diff
              << "\n";
    EXPECT_LE(diff, 1e-10) << user;
  }
  fs::remove_all(dir);
}

// The held-out margins the run wrote (eval_pairs.jsonl) against the exported base + adapter,
// scored here in float64 on the sequences as training builds them (prompt, response, EOS).
TEST(DpoStage, ExportedAdaptersReproduceTheHeldOutMargins) {
  const fs::path& out = four_user_run();
  const auto pairs = read_jsonl(out / "eval_pairs.jsonl");
  ASSERT_EQ(pairs.size(), kDpoUsers.size() * 2);  // 8 pairs each, a quarter held out
  const Tokenizer tokenizer = Tokenizer::from_dir(TAILOR_SOURCE_DIR "/assets/tokenizers/gpt2");
  for (const auto& user : kDpoUsers) {
    CausalLM model = load_pretrained(out / "export" / "base", at::kDouble);
    load_peft_adapter(out / "export" / "users" / user, *model);
    model->eval();
    torch::NoGradGuard no_grad;
    const auto logp = [&](const std::string& prompt, const std::string& response) {
      std::vector<int64_t> ids;
      for (int32_t id : encode_sft_field(tokenizer, PromptTemplate::kPlain, "prompt", prompt))
        ids.push_back(id);
      const size_t first = ids.size();
      for (int32_t id : encode_sft_field(tokenizer, PromptTemplate::kPlain, "chosen", response))
        ids.push_back(id);
      ids.push_back(tokenizer.eos_id());
      const at::Tensor x = at::tensor(ids, at::kLong).unsqueeze(0);
      const at::Tensor lp = at::log_softmax(model->forward(x, at::ones_like(x)), -1)[0];
      double sum = 0;
      for (size_t t = first; t < ids.size(); ++t)
        sum += lp[static_cast<int64_t>(t) - 1][ids[t]].item<double>();
      return sum;
    };
    int checked = 0;
    for (const auto& p : pairs) {
      if (p["user"] != user) continue;
      const double c = logp(p["prompt"], p["chosen"]), r = logp(p["prompt"], p["rejected"]);
      EXPECT_NEAR(p["logp_chosen"].get<double>(), c, 1e-5 * std::abs(c)) << user;
      EXPECT_NEAR(p["logp_rejected"].get<double>(), r, 1e-5 * std::abs(r)) << user;
      EXPECT_NEAR(p["margin"].get<double>(), c - r, 1e-5 * (std::abs(c) + std::abs(r))) << user;
      ++checked;
    }
    EXPECT_EQ(checked, 2) << user;
  }
  const auto summary = nlohmann::json::parse(read_file(out / "summary.json"));
  EXPECT_EQ(summary["users"], nlohmann::json(kDpoUsers));
  EXPECT_EQ(summary["eval"]["alice"]["pairs"].get<int>(), 2);
}

// The same through the command line: `tailor score --adapter export/users/<user>` on the held-out
// pairs gives the margins the run evaluated (acceptance: the export is what the run trained).
TEST(DpoStage, TailorScoreWithEachExportedAdapterGivesTheRunsMargins) {
  const fs::path& out = four_user_run();
  const auto pairs = read_jsonl(out / "eval_pairs.jsonl");
  const fs::path dir = test::fresh_process_dir("dpo_stage_score");
  for (const auto& user : kDpoUsers) {
    std::vector<nlohmann::json> mine;
    {
      std::ofstream input(dir / (user + ".jsonl"));
      for (const auto& p : pairs) {
        if (p["user"] != user) continue;
        mine.push_back(p);
        input << nlohmann::json({{"prompt", p["prompt"]},
                                 {"chosen", p["chosen"]},
                                 {"rejected", p["rejected"]}})
                     .dump()
              << "\n";
      }
    }
    const std::string command = std::string(TAILOR_BINARY) + " score --model " +
                                (out / "export" / "base").string() + " --adapter " +
                                (out / "export" / "users" / user).string() + " --input " +
                                (dir / (user + ".jsonl")).string() + " --output " +
                                (dir / (user + ".out.jsonl")).string() + " 2>/dev/null";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    const auto scored = read_jsonl(dir / (user + ".out.jsonl"));
    ASSERT_EQ(scored.size(), mine.size()) << user;
    for (size_t i = 0; i < mine.size(); ++i) {
      const double run_margin = mine[i]["margin"].get<double>();
      const double cli_margin = scored[i]["margin"].get<double>();
      const double scale = std::abs(mine[i]["logp_chosen"].get<double>()) +
                           std::abs(mine[i]["logp_rejected"].get<double>());
      EXPECT_NEAR(cli_margin, run_margin, 1e-5 * scale) << user << " pair " << i;
      EXPECT_NEAR(scored[i]["chosen"].get<double>(), mine[i]["logp_chosen"].get<double>(),
                  1e-5 * std::abs(mine[i]["logp_chosen"].get<double>()))
          << user;
    }
  }
  fs::remove_all(dir);
}

// `tailor export --user`: one user's base + adapter, or its merged model, from the checkpoint.
TEST(DpoStage, ExportOneUserFromTheCheckpointPlainAndMerged) {
  const fs::path& out = four_user_run();
  const fs::path dir = test::fresh_process_dir("dpo_stage_export_user");
  const std::string export_cmd =
      std::string(TAILOR_BINARY) + " export --checkpoint " + out.string() + " --user bob --out ";
  ASSERT_EQ(std::system((export_cmd + (dir / "bob").string() + " >/dev/null").c_str()), 0);
  ASSERT_EQ(std::system(
                (export_cmd + (dir / "bob_merged").string() + " --merge-lora >/dev/null").c_str()),
            0);
  // The adapter equals the one the run exported for bob.
  const TensorMap adapter =
      safetensors::load(dir / "bob" / "adapter" / "adapter_model.safetensors");
  const TensorMap from_run = testing::exported_adapter(out, "bob");
  ASSERT_EQ(adapter.size(), from_run.size());
  for (const auto& [name, t] : from_run)
    EXPECT_TRUE(at::equal(adapter.at(name), t)) << name;
  // The merged model computes what base + adapter computes.
  CausalLM with_adapter = load_pretrained(out / "export" / "base");
  load_peft_adapter(out / "export" / "users" / "bob", *with_adapter);
  CausalLM merged = load_pretrained(dir / "bob_merged");
  with_adapter->eval();
  merged->eval();
  torch::NoGradGuard no_grad;
  const at::Tensor ids = at::arange(100, 120, at::kLong).unsqueeze(0);
  const at::Tensor a = with_adapter->forward(ids, at::ones_like(ids));
  const at::Tensor b = merged->forward(ids, at::ones_like(ids));
  EXPECT_LE((a - b).abs().max().item<double>(), 1e-5 * a.abs().max().item<double>());
  // Without --user the command names the users.
  const std::string missing = std::string(TAILOR_BINARY) + " export --checkpoint " + out.string() +
                              " --out " + (dir / "x").string() + " 2>" + (dir / "err.txt").string();
  EXPECT_NE(std::system(missing.c_str()), 0);
  const std::string err = read_file(dir / "err.txt");
  EXPECT_NE(err.find("--user"), std::string::npos) << err;
  EXPECT_NE(err.find("alice, bob, carol, dave"), std::string::npos) << err;
  fs::remove_all(dir);
}

TEST(DpoStage, ResumedRunEndsBitIdenticalToAnUninterruptedOne) {
  const fs::path dir = test::fresh_process_dir("dpo_stage_resume");
  write_user_pairs(dir / "pairs.jsonl", dpo_user_pairs(8), {"alice", "bob"});
  const std::vector<std::string> overrides = {"train.max_steps=4", "train.checkpoint_every=2",
                                              "lora.dropout=0.1"};  // dropout: RNG state too
  run_dpo_in_process(dpo_test_recipe(dir / "pairs.jsonl", dir / "straight", overrides));

  ::setenv("TAILOR_FAULT_RANK", "0", 1);
  ::setenv("TAILOR_FAULT_STEP", "4", 1);  // after the step-2 checkpoint and step 3
  EXPECT_THROW(run_dpo_in_process(dpo_test_recipe(dir / "pairs.jsonl", dir / "resumed", overrides)),
               Error);
  ::unsetenv("TAILOR_FAULT_RANK");
  ::unsetenv("TAILOR_FAULT_STEP");
  auto resume = overrides;
  resume.push_back("train.resume=true");
  run_dpo_in_process(dpo_test_recipe(dir / "pairs.jsonl", dir / "resumed", resume));

  for (const std::string user : {"alice", "bob"}) {
    const TensorMap a = exported_adapter(dir / "straight", user);
    const TensorMap b = exported_adapter(dir / "resumed", user);
    for (const auto& [name, t] : a)
      EXPECT_TRUE(at::equal(t, b.at(name))) << user << " " << name;
  }
  // The metrics of every step appear once and equal the uninterrupted run's.
  EXPECT_EQ(without_timing(read_jsonl(dir / "straight" / "metrics.jsonl")),
            without_timing(read_jsonl(dir / "resumed" / "metrics.jsonl")));
  fs::remove_all(dir);
}

// Simulated users judge the base's own samples: the short-answer user and its opposite.
TEST(DpoStage, GeneratedPairsFollowTheOraclesAndWinRatesRecount) {
  const fs::path dir = test::fresh_process_dir("dpo_stage_generated");
  {
    std::ofstream prompts(dir / "prompts.jsonl");
    for (const char* p : {"The cat", "A story:", "Today I", "Water is", "My friend", "In the city"})
      prompts << nlohmann::json({{"prompt", p}}).dump() << "\n";
  }
  const DpoRecipe recipe =
      dpo_test_recipe(dir / "prompts.jsonl", dir / "run",
                      {"data.source=generated", "data.eval_fraction=0.34",
                       "users={brief: {shorter_length: 1.0}, verbose: {shorter_length: -1.0}}",
                       "generate.completions=4", "generate.max_new_tokens=10", "eval.completions=3",
                       "eval.max_new_tokens=10", "eval.prompts=0", "train.max_steps=2"});
  run_dpo_in_process(recipe);
  const auto& shorter = judges::oracle("shorter_length");

  // Every pair is oriented by its user's taste, and held-out prompts gave no training pairs.
  const auto pairs = read_jsonl(dir / "run" / "pairs.jsonl");
  ASSERT_FALSE(pairs.empty());
  for (const auto& p : pairs) {
    const double c = shorter.score(p["prompt"], p["chosen"]);
    const double r = shorter.score(p["prompt"], p["rejected"]);
    if (p["user"] == "brief")
      EXPECT_GT(c, r) << p.dump();
    else
      EXPECT_LT(c, r) << p.dump();
  }

  // A random base almost never samples EOS, so with 10 new tokens every answer stopped at the
  // limit: each response is marked truncated (trained without a closing EOS).
  for (const auto& p : pairs) {
    EXPECT_EQ(p.value("chosen_truncated", false), true) << p.dump();
    EXPECT_EQ(p.value("rejected_truncated", false), true) << p.dump();
  }
  // The held-out margins carry the marks, and tailor score, honouring them, reproduces the run's
  // log-probs; read without the marks (an EOS appended), the same lines score differently.
  {
    const auto held_out = read_jsonl(dir / "run" / "eval_pairs.jsonl");
    ASSERT_FALSE(held_out.empty());
    std::ofstream marked(dir / "marked.jsonl"), plain(dir / "plain.jsonl");
    for (const auto& p : held_out) {
      ASSERT_TRUE(p.value("chosen_truncated", false)) << p.dump();
      nlohmann::json line = {
          {"prompt", p["prompt"]}, {"chosen", p["chosen"]}, {"rejected", p["rejected"]}};
      plain << line.dump() << "\n";
      line["chosen_truncated"] = p["chosen_truncated"];
      line["rejected_truncated"] = p["rejected_truncated"];
      marked << line.dump() << "\n";
    }
    marked.close();
    plain.close();
    const std::string user = held_out[0]["user"];
    for (const std::string name : {"marked", "plain"}) {
      const std::string command = std::string(TAILOR_BINARY) + " score --model " +
                                  (dir / "run" / "export" / "base").string() + " --adapter " +
                                  (dir / "run" / "export" / "users" / user).string() + " --input " +
                                  (dir / (name + ".jsonl")).string() + " --output " +
                                  (dir / (name + ".out")).string() + " 2>/dev/null";
      ASSERT_EQ(std::system(command.c_str()), 0) << command;
    }
    const auto marked_out = read_jsonl(dir / "marked.out");
    const auto plain_out = read_jsonl(dir / "plain.out");
    for (size_t i = 0; i < held_out.size(); ++i) {
      if (held_out[i]["user"] != user) continue;
      const double logp = held_out[i]["logp_chosen"].get<double>();
      EXPECT_NEAR(marked_out[i]["chosen"].get<double>(), logp, 1e-5 * std::abs(logp));
      EXPECT_GT(std::abs(plain_out[i]["chosen"].get<double>() - logp), 1e-3);
    }
  }

  // The win rates, counted again from eval_samples.jsonl: adapter sample r vs base sample r.
  const auto summary = nlohmann::json::parse(read_file(dir / "run" / "summary.json"));
  const auto samples = read_jsonl(dir / "run" / "eval_samples.jsonl");
  ASSERT_EQ(samples.size(), 2u * 3u);  // 2 held-out prompts x 3 samples
  for (const std::string user : {"brief", "verbose"}) {
    const double sign = user == "brief" ? 1.0 : -1.0;
    std::map<std::string, std::map<std::string, double>> by_judge;  // adapter -> judge -> wins
    double wins = 0, ties = 0, losses = 0;
    for (const auto& s : samples) {
      // An answer cut at max_new_tokens never wins (two such answers tie).
      const bool adapter_bad = s.contains("invalid") && s["invalid"].contains(user);
      const bool base_bad = s.contains("base_invalid");
      if (adapter_bad || base_bad) {
        (adapter_bad && base_bad ? ties : adapter_bad ? losses : wins) += 1;
        continue;
      }
      const double a = sign * shorter.score(s["prompt"], s["users"][user]);
      const double b = sign * shorter.score(s["prompt"], s["base"]);
      (a > b + 1e-9 ? wins : (b > a + 1e-9 ? losses : ties)) += 1;
    }
    const auto& w = summary["win_rate"][user];
    EXPECT_EQ(w["wins"].get<double>(), wins) << user;
    EXPECT_EQ(w["ties"].get<double>(), ties) << user;
    EXPECT_EQ(w["losses"].get<double>(), losses) << user;
    EXPECT_DOUBLE_EQ(w["rate"].get<double>(), (wins + ties / 2) / (wins + ties + losses)) << user;
  }
  // The cross-user matrix's diagonal is each user's own win rate.
  const auto& cross = summary["cross_user"];
  ASSERT_EQ(cross["adapters"], nlohmann::json({"brief", "verbose"}));
  for (size_t i = 0; i < 2; ++i)
    EXPECT_DOUBLE_EQ(
        cross["win_rate"][i][i].get<double>(),
        summary["win_rate"][cross["adapters"][i].get<std::string>()]["rate"].get<double>());
  fs::remove_all(dir);
}

// Code points of UTF-8 text, counted here (the bytes that do not continue a sequence), for
// recounting shorter_length's verdicts without the production oracle.
int64_t dpo_test_code_points(const std::string& text) {
  int64_t n = 0;
  for (unsigned char c : text)
    n += (c & 0xC0) != 0x80;
  return n;
}

// eval_users judge the win rates and nothing else: two runs that differ only in eval_users train
// identical adapters, and their win rates differ; each number says which judge gave it and
// whether that judge also picked the training pairs. The rates are recounted here from
// eval_samples.jsonl with a character count written in this test.
TEST(DpoStage, EvalUsersChangeTheWinRatesAndNotTheTraining) {
  const fs::path dir = test::fresh_process_dir("dpo_stage_eval_users");
  const fs::path base = eos_prone_base(dir / "base");
  testing::write_animal_prompts(dir / "prompts.jsonl", 12);
  const auto run = [&](const std::string& name, const std::string& eval_users) {
    std::vector<std::string> overrides = {"model.init=pretrained",
                                          "model.path=" + base.string(),
                                          "data.source=generated",
                                          "data.eval_fraction=0.34",
                                          "users={brief: {shorter_length: 1.0}}",
                                          "generate.completions=4",
                                          "generate.max_new_tokens=10",
                                          "eval.completions=6",
                                          "eval.max_new_tokens=10",
                                          "eval.prompts=0",
                                          "train.max_steps=2"};
    if (!eval_users.empty()) overrides.push_back("eval_users=" + eval_users);
    run_dpo_in_process(dpo_test_recipe(dir / "prompts.jsonl", dir / name, overrides));
    return nlohmann::json::parse(read_file(dir / name / "summary.json"));
  };
  const auto own = run("own", "");
  const auto same = run("same", "{brief: {shorter_length: 1.0}}");
  const auto opposite = run("opposite", "{brief: {shorter_length: -1.0}}");

  const TensorMap a = exported_adapter(dir / "same", "brief");
  const TensorMap b = exported_adapter(dir / "opposite", "brief");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a)
    EXPECT_TRUE(at::equal(t, b.at(name))) << name;

  EXPECT_EQ(own["judges"]["eval_source"], "training judges");
  EXPECT_EQ(same["judges"]["eval_source"], "eval_users");
  EXPECT_TRUE(own["win_rate"]["brief"]["judge_picked_training_pairs"].get<bool>());
  EXPECT_TRUE(same["win_rate"]["brief"]["judge_picked_training_pairs"].get<bool>());
  EXPECT_FALSE(opposite["win_rate"]["brief"]["judge_picked_training_pairs"].get<bool>());
  EXPECT_EQ(opposite["win_rate"]["brief"]["judge_description"], "oracles {shorter_length: -1}");
  EXPECT_DOUBLE_EQ(own["win_rate"]["brief"]["rate"].get<double>(),
                   same["win_rate"]["brief"]["rate"].get<double>());

  // Recount: invalid answers (empty, cut off) never win; otherwise fewer code points wins (brief)
  // or loses (the opposite judge); equal lengths tie.
  const auto samples = read_jsonl(dir / "same" / "eval_samples.jsonl");
  double valid_pairs = 0;
  for (const auto& [name, summary, sign] :
       {std::tuple<const char*, const nlohmann::json*, int>{"same", &same, 1},
        {"opposite", &opposite, -1}}) {
    double wins = 0, ties = 0, losses = 0;
    for (const auto& line : samples) {
      const std::string adapter = line["users"]["brief"], base_text = line["base"];
      const bool adapter_bad = line.contains("invalid"), base_bad = line.contains("base_invalid");
      // An answer without any non-space character is invalid whatever the flags say.
      if (adapter.find_first_not_of(" \n\t") == std::string::npos) {
        EXPECT_TRUE(adapter_bad);
      }
      if (adapter_bad || base_bad) {
        (adapter_bad && base_bad ? ties : adapter_bad ? losses : wins) += 1;
        continue;
      }
      valid_pairs += sign > 0;
      const int64_t d =
          sign * (dpo_test_code_points(base_text) - dpo_test_code_points(adapter));  // > 0: win
      (d > 0 ? wins : d < 0 ? losses : ties) += 1;
    }
    const double rate = (wins + ties / 2) / (wins + ties + losses);
    EXPECT_NEAR((*summary)["win_rate"]["brief"]["rate"].get<double>(), rate, 1e-12) << name;
  }
  // The base of this test answers validly often enough for the judges to matter.
  EXPECT_GE(valid_pairs, 4) << "too few valid answers to compare judges";

  // An independent recount: `tailor generate` samples the held-out prompts from the base and
  // from the exported adapter (the eval's sampling settings), and a scorer written here judges
  // them: an answer that is empty or stopped at the length never wins, else fewer code points.
  {
    std::vector<std::string> held_out;
    for (const auto& line : samples)
      if (held_out.empty() || held_out.back() != line["prompt"]) held_out.push_back(line["prompt"]);
    std::ofstream prompts(dir / "held_out.jsonl");
    for (const auto& p : held_out)
      prompts << nlohmann::json({{"prompt", p}}).dump() << "\n";
    prompts.close();
    const auto generate = [&](const std::string& adapter, const fs::path& out) {
      const std::string command =
          std::string(TAILOR_BINARY) + " generate --model " + base.string() +
          (adapter.empty() ? "" : " --adapter " + adapter) +
          " --tokenizer " TAILOR_SOURCE_DIR "/assets/tokenizers/gpt2 --input " +
          (dir / "held_out.jsonl").string() + " --output " + out.string() +
          " --temperature 1 --top-k 0 --top-p 1 --seed 1 --num-return-sequences 6"
          " --max-new-tokens 10 2>/dev/null";
      ASSERT_EQ(std::system(command.c_str()), 0) << command;
    };
    generate("", dir / "base_samples.jsonl");
    generate((dir / "same" / "export" / "users" / "brief").string(), dir / "adapter_samples.jsonl");
    const auto base_lines = read_jsonl(dir / "base_samples.jsonl");
    const auto adapter_lines = read_jsonl(dir / "adapter_samples.jsonl");
    ASSERT_EQ(base_lines.size(), adapter_lines.size());
    ASSERT_EQ(base_lines.size(), held_out.size() * 6);
    const auto invalid = [](const nlohmann::json& line) {
      const std::string text = line["completion"];
      return line["finish_reason"] != "eos" ||
             text.find_first_not_of(" \n\t\r") == std::string::npos;
    };
    double wins = 0, ties = 0, losses = 0;
    for (size_t i = 0; i < base_lines.size(); ++i) {
      const bool a_bad = invalid(adapter_lines[i]), b_bad = invalid(base_lines[i]);
      if (a_bad || b_bad) {
        (a_bad && b_bad ? ties : a_bad ? losses : wins) += 1;
        continue;
      }
      const int64_t d = dpo_test_code_points(base_lines[i]["completion"]) -
                        dpo_test_code_points(adapter_lines[i]["completion"]);
      (d > 0 ? wins : d < 0 ? losses : ties) += 1;
    }
    EXPECT_NEAR((wins + ties / 2) / (wins + ties + losses),
                same["win_rate"]["brief"]["rate"].get<double>(), 0.03);
  }
  EXPECT_NE(same["win_rate"]["brief"]["rate"].get<double>(),
            opposite["win_rate"]["brief"]["rate"].get<double>());
  fs::remove_all(dir);
}

// The gaming the invalid-answer rule exists for. A user who likes short answers, trained on pairs
// of a base that often ends early, learns to end at once: its adapter answers nothing, which a
// plain comparison under shorter_length counts as a win every time the base said something. The
// run counts the empty answers, and the adapter does not win.
TEST(DpoStage, AnAdapterThatAnswersNothingDoesNotWin) {
  const fs::path dir = test::fresh_process_dir("dpo_stage_mute");
  const fs::path base = eos_prone_base(dir / "base");
  testing::write_animal_prompts(dir / "prompts.jsonl", 12);
  const DpoRecipe recipe = dpo_test_recipe(
      dir / "prompts.jsonl", dir / "run",
      {"model.init=pretrained", "model.path=" + base.string(), "data.source=generated",
       "data.eval_fraction=0.34", "users={mute: {shorter_length: 1.0}}",
       "eval_users={mute: {shorter_length: 1.0}}", "generate.completions=4",
       "generate.max_new_tokens=10", "train.max_steps=10", "eval.completions=8",
       "eval.max_new_tokens=10", "eval.prompts=0"});
  run_dpo_in_process(recipe);
  const auto summary = nlohmann::json::parse(read_file(dir / "run" / "summary.json"));
  const auto& mute = summary["win_rate"]["mute"];
  const int64_t answers = mute["invalid_answers"]["answers"];
  ASSERT_EQ(answers, 4 * 8);
  // The adapter learned to say nothing, and the run reports it.
  EXPECT_GE(mute["invalid_answers"]["empty"].get<int64_t>(), answers / 2) << mute.dump();
  EXPECT_LT(mute["rate"].get<double>(), 0.5) << mute.dump();
  // Compared as plain text (fewer code points wins), the same answers would have won.
  double wins = 0, ties = 0, n = 0;
  for (const auto& line : read_jsonl(dir / "run" / "eval_samples.jsonl")) {
    const int64_t a = dpo_test_code_points(line["users"]["mute"]);
    const int64_t b = dpo_test_code_points(line["base"]);
    wins += a < b;
    ties += a == b;
    n += 1;
  }
  EXPECT_GT((wins + ties / 2) / n, 0.5);
  fs::remove_all(dir);
}

// data.source pool: each prompt's answers come from a file (UltraFeedback's raw layout, or
// labelled pairs whose label is ignored) and each user's judge relabels them: the pairs follow
// the judges, not the file's labels, and nothing is sampled.
TEST(DpoStage, APoolIsRelabelledByEachUsersJudge) {
  const fs::path dir = test::fresh_process_dir("dpo_stage_pool");
  {
    std::ofstream pool(dir / "pool.jsonl");
    for (int i = 0; i < 6; ++i) {
      const std::string prompt = "Tell me about animal " + std::to_string(i) + ".";
      // The file prefers the long answer; brief will not.
      pool << nlohmann::json({{"prompt", prompt},
                              {"chosen", " Cats are lovely animals that live in houses."},
                              {"rejected", " Cats."}})
                  .dump()
           << "\n";
      pool << nlohmann::json({{"instruction", prompt + " Briefly."},
                              {"completions",
                               {{{"response", " Dogs bark."}},
                                {{"response", " DOGS BARK LOUDLY AT NIGHT."}},
                                {{"response", " dogs bark at night and sleep all day long."}}}}})
                  .dump()
           << "\n";
    }
  }
  const DpoRecipe recipe = dpo_test_recipe(
      dir / "pool.jsonl", dir / "run",
      {"data.source=pool", "data.eval_fraction=0.25",
       "users={brief: {shorter_length: 1.0}, quiet: {lowercase: 1.0}}", "train.max_steps=1"});
  run_dpo_in_process(recipe);
  const auto pairs = read_jsonl(dir / "run" / "pairs.jsonl");
  ASSERT_EQ(pairs.size(), 2u * 12u);  // one pair per user and prompt: best against worst
  for (const auto& p : pairs) {
    const std::string chosen = p["chosen"], rejected = p["rejected"];
    if (p["user"] == "brief") {
      EXPECT_LT(chosen.size(), rejected.size()) << p.dump();
    } else {
      const auto lower = [](const std::string& t) {
        double letters = 0, low = 0;
        for (unsigned char c : t)
          if (std::isalpha(c)) {
            letters += 1;
            low += std::islower(c) != 0;
          }
        return low / letters;
      };
      EXPECT_GT(lower(chosen), lower(rejected)) << p.dump();
    }
  }
  // A line that is neither a pool line nor a pair is refused, naming the file and the line.
  write_file_atomic(dir / "bad.jsonl", "{\"prompt\": \"Hi.\", \"answer\": \"Hello.\"}\n");
  const std::string e = test::error_of([&] {
    run_dpo_in_process(
        dpo_test_recipe(dir / "bad.jsonl", dir / "bad",
                        {"data.source=pool", "users={brief: {shorter_length: 1.0}}"}));
  });
  EXPECT_NE(e.find("bad.jsonl:1"), std::string::npos) << e;
  EXPECT_NE(e.find("completions"), std::string::npos) << e;
  fs::remove_all(dir);
}

TEST(DpoStage, RecipeErrorsNameTheKey) {
  const auto& error_of = testing::dpo_recipe_error;
  EXPECT_NE(error_of({"lora.enabled=false"}).find("lora.enabled"), std::string::npos);
  EXPECT_NE(error_of({"data.source=generated"}).find("users"), std::string::npos);
  const std::string unknown = error_of({"users={alice: {shortest: 1.0}}"});
  EXPECT_NE(unknown.find("users"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("shortest"), std::string::npos) << unknown;
  EXPECT_NE(error_of({"export.merge_lora=true"}).find("--user"), std::string::npos);
  EXPECT_NE(error_of({"dpo.type=ipo", "dpo.label_smoothing=0.1"}).find("dpo.label_smoothing"),
            std::string::npos);
}

}  // namespace
}  // namespace tailor
