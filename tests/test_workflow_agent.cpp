// The preference-agents stage (stages/agent/): the data each adapter learns and the templates,
// against hand-written expectations; the recipe's errors; and two end-to-end runs. The bundled
// path (the rule writer) runs on an EOS-prone random GPT-2, and every number it reports is
// recomputed here from its own outputs by other code: the demonstrations from the oracle's score
// of the candidates, the zero-shot answers and the agents' rules with `tailor generate`, the win
// rates from the judged answers. The real-model path (M_L prompt templates, demonstrations from a
// file) runs on a random tiny Mistral, its intents and rules checked against `tailor generate`.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "dpo_test_support.h"
#include "judges/oracles.h"
#include "models/io/pretrained.h"
#include "models/io/safetensors.h"
#include "models/registry.h"
#include "stages/agent/agent_recipe.h"
#include "stages/agent/agent_world.h"
#include "stages/agent/rule_writer.h"
#include "test_support.h"

namespace tailor {
namespace {
namespace fs = std::filesystem;

// A complete agent recipe whose keys the tests override.
std::string agent_test_recipe(const fs::path& out, const fs::path& model, const fs::path& prompts) {
  return "stage: agent\nseed: 3\noutput_dir: " + out.string() +
         "\ntokenizer: " + (fs::path(TAILOR_SOURCE_DIR) / "assets/tokenizers/gpt2").string() +
         "\nlarge: {path: " + model.string() + "}\nsmall: {path: " + model.string() +
         "}\nusers:\n  brief: {shorter_length: 1.0}\n  shouty: {lowercase: -1.0}\n"
         "data: {prompts: " +
         prompts.string() +
         ", template: zephyr, train_prompts: 6, eval_prompts: 3, candidates: 6}\n"
         "steps: {max_new_tokens: 10}\n"
         "generate: {max_new_tokens: 10}\n"
         "lora: {rank: 4, alpha: 8.0}\n"
         "optimizer: {lr: 1.0e-2, weight_decay: 0.0}\n"
         "schedule: {type: constant, warmup_steps: 0}\n"
         "train: {max_steps: 12, examples_per_adapter: 3, curve_examples: [2], log_every: 1}\n"
         "eval: {samples: 3, seed: 5}\n";
}

AgentRecipe agent_recipe_of(const std::string& text, const std::vector<std::string>& overrides) {
  return agent_recipe_from_config(resolve_agent_recipe(text, "agent.yaml", overrides));
}

std::vector<nlohmann::json> agent_read_jsonl(const fs::path& file) {
  return test::parse_lines(read_file(file));
}

// `tailor generate` greedy on one prompt (and system text): the completion text.
std::string agent_cli_greedy(const fs::path& model, const fs::path& tokenizer,
                             const std::string& prompt, const std::string& system,
                             const std::string& template_name, int max_new_tokens,
                             const fs::path& adapter = {}) {
  const fs::path input = test::fresh_path("agent_generate_input.jsonl");
  nlohmann::json line = {{"prompt", prompt}};
  if (!system.empty()) line["system"] = system;
  write_file_atomic(input, line.dump() + "\n");
  const std::string out = test::run_ok(
      std::string(TAILOR_BINARY) + " generate --model " + model.string() + " --tokenizer " +
      tokenizer.string() + " --input " + input.string() + " --template " + template_name +
      " --temperature 0 --max-new-tokens " + std::to_string(max_new_tokens) +
      (adapter.empty() ? "" : " --adapter " + adapter.string()) + " 2>/dev/null");
  const auto lines = test::parse_lines(out);
  EXPECT_EQ(lines.size(), 1u);
  return lines.at(0).at("completion").get<std::string>();
}

std::string agent_trim(const std::string& s) {
  const auto a = s.find_first_not_of(" \n\t\r");
  return a == std::string::npos ? "" : s.substr(a, s.find_last_not_of(" \n\t\r") - a + 1);
}

TEST(AgentWorld, EachAdapterLearnsItsOwnPairs) {
  const fs::path dir = test::fresh_dir("agent_world_sets");
  const fs::path prompts = dir / "prompts.jsonl";
  testing::write_animal_prompts(prompts, 12);
  const AgentRecipe r = agent_recipe_of(
      agent_test_recipe(dir / "run", dir / "m", prompts),
      {"steps.agent_prompt=\"Task: {intent}\"", "steps.zero_shot=\"Do: {intent}\""});
  std::vector<AgentDemo> demos;
  demos.push_back({"ann", "P1", " cats", "I1", " Cats eat fish.", "R1", "N1"});
  demos.push_back({"bob", "P1", " CATS!", "I1", " Cats eat fish.", "R2", "N2"});
  demos.push_back({"ann", "P2", " dogs", "I2", " Dogs bark.", "R3", "N3"});
  const auto sets = agent_training_sets(r, demos, {1});
  using Ex = std::vector<std::pair<std::string, std::string>>;
  const auto pairs = [&](const std::string& name) {
    Ex out;
    for (const auto& e : sets.at(name))
      out.push_back({e.prompt, e.response});
    return out;
  };
  EXPECT_EQ(pairs("ann"), (Ex{{"Task: I1", "R1"}, {"Task: I2", "R3"}}));
  EXPECT_EQ(pairs("ann@no_baseline"), (Ex{{"Task: I1", "N1"}, {"Task: I2", "N3"}}));
  // The naive fine-tune learns the task itself (steps.zero_shot, here "Do: {intent}").
  EXPECT_EQ(pairs("ann@naive"), (Ex{{"Do: I1", " cats"}, {"Do: I2", " dogs"}}));
  EXPECT_EQ(pairs("ann@rules_n1"), (Ex{{"Task: I1", "R1"}}));
  EXPECT_EQ(pairs("ann@naive_n1"), (Ex{{"Do: I1", " cats"}}));
  EXPECT_EQ(pairs("bob"), (Ex{{"Task: I1", "R2"}}));
  EXPECT_EQ(pairs("bob@naive"), (Ex{{"Do: I1", " CATS!"}}));
  EXPECT_EQ(sets.size(), 10u);  // 5 adapters each
}

TEST(AgentWorld, TemplatesFillTheirPlaceholdersAndNothingElse) {
  EXPECT_EQ(fill_template("steps.rules", "Mine: {zero_shot}\nTheirs: {completion} {{x}}",
                          {{"zero_shot", "a b"}, {"completion", "\n- c"}}),
            "Mine: a b\nTheirs: \n- c {x}");
  const std::string err = test::error_of([] {
    fill_template("steps.inference", "{intent} {rule}", {{"intent", "i"}});
  });
  EXPECT_CONTAINS(err, "steps.inference");
  EXPECT_CONTAINS(err, "{rule}");
  // The default few-shot prompt is the one the bundled large model was trained on
  // (tools/gen_styles_data.py writes "Answer in the style of these examples:\nExample: ...").
  const fs::path dir = test::fresh_dir("agent_world_few_shot");
  const fs::path prompts = dir / "prompts.jsonl";
  testing::write_animal_prompts(prompts, 12);
  const AgentRecipe r = agent_recipe_of(agent_test_recipe(dir / "run", dir / "m", prompts), {});
  std::vector<AgentDemo> demos(3);
  demos[0].completion = " cats meow";
  demos[1].completion = "\n- Dogs bark\n- Dogs eat meat";
  demos[2].completion = " not shown";
  EXPECT_EQ(few_shot_system_text(r, demos),
            "Answer in the style of these examples:\nExample: cats meow\nExample:\n- Dogs bark\n- "
            "Dogs eat meat");
}

TEST(AgentWorld, TasksAreASeededSplitOfDistinctPrompts) {
  const std::vector<std::string> prompts = {"a", "b", "a", "c", "d", "e", "f", "g"};
  const auto t = split_agent_tasks(prompts, 3, 2, 1);
  const auto again = split_agent_tasks(prompts, 3, 2, 1);
  EXPECT_EQ(t.train, again.train);
  EXPECT_EQ(t.eval, again.eval);
  std::set<std::string> all(t.train.begin(), t.train.end());
  all.insert(t.eval.begin(), t.eval.end());
  EXPECT_EQ(all.size(), 5u);  // disjoint, no duplicate "a"
  bool differs = false;
  for (uint64_t seed = 2; seed < 8; ++seed)
    differs = differs || split_agent_tasks(prompts, 3, 2, seed).train != t.train;
  EXPECT_TRUE(differs);
  EXPECT_CONTAINS(test::error_of([&] { split_agent_tasks(prompts, 5, 3, 1); }),
                  "data.prompts has 7");
}

TEST(AgentWorld, DemonstrationFilesAreCheckedLineByLine) {
  const fs::path dir = test::fresh_dir("agent_world_demos");
  const auto demos_of = [&](const std::string& text) {
    write_file_atomic(dir / "d.jsonl", text);
    return read_demonstrations(dir / "d.jsonl", {"ann", "bob"});
  };
  const auto ok = demos_of(
      "{\"user\": \"ann\", \"prompt\": \"P\", \"completion\": \" x\"}\n"
      "{\"user\": \"bob\", \"prompt\": \"P\", \"completion\": \" y\", \"note\": 1}\n");
  ASSERT_EQ(ok.size(), 2u);
  EXPECT_EQ(ok[1].completion, " y");
  EXPECT_CONTAINS(test::error_of([&] {
                    demos_of(
                        "{\"user\": \"ann\", \"prompt\": \"P\", \"completion\": \" x\"}\n"
                        "{\"user\": \"eve\", \"prompt\": \"P\", \"completion\": \" y\"}\n");
                  }),
                  "d.jsonl:2: user");
  EXPECT_CONTAINS(test::error_of([&] {
                    demos_of("{\"user\": \"ann\", \"prompt\": \"P\", \"completion\": \"\"}\n");
                  }),
                  "d.jsonl:1: completion");
  EXPECT_CONTAINS(test::error_of([&] {
                    demos_of("{\"user\": \"ann\", \"prompt\": \"P\", \"completion\": \" x\"}\n");
                  }),
                  "no demonstration of user 'bob'");
  EXPECT_CONTAINS(test::error_of([&] {
                    demos_of(
                        "{\"user\": \"ann\", \"prompt\": \"P\", \"completion\": \" x\"}\n"
                        "{\"user\": \"bob\", \"prompt\": \"P\", \"completion\": \" y\"}\n"
                        "{\"user\": \"ann\", \"prompt\": \"P\", \"completion\": \" z\"}\n");
                  }),
                  "d.jsonl:3: prompt");
  const auto tasks = split_demonstrated_tasks(ok, {"P", "Q", "R", "S"}, 2, 0);
  EXPECT_EQ(tasks.train, (std::vector<std::string>{"P"}));
  ASSERT_EQ(tasks.eval.size(), 2u);
  EXPECT_EQ(std::count(tasks.eval.begin(), tasks.eval.end(), "P"), 0);
}

TEST(AgentRecipe, BadInputNamesTheKey) {
  const fs::path dir = test::fresh_dir("agent_recipe_errors");
  const fs::path prompts = dir / "prompts.jsonl";
  testing::write_animal_prompts(prompts, 12);
  const std::string text = agent_test_recipe(dir / "run", dir / "missing", prompts);
  const auto error = [&](const std::vector<std::string>& overrides) {
    return test::error_of([&] { check_agent_inputs(agent_recipe_of(text, overrides)); });
  };
  EXPECT_CONTAINS(error({"steps.rules=\"Compare {zero_shot} with {answer}\""}), "steps.rules");
  EXPECT_CONTAINS(error({"steps.rules=\"Compare {zero_shot} with {answer}\""}), "{answer}");
  EXPECT_CONTAINS(error({"steps.inference=\"{intent\""}), "unclosed");
  EXPECT_CONTAINS(error({"train.curve_examples=[6]"}), "train.curve_examples");
  EXPECT_CONTAINS(error({"users={a@b: {lowercase: 1.0}}"}), "'@'");
  EXPECT_CONTAINS(error({"users={a: {loudness: 1.0}}"}), "loudness");
  EXPECT_CONTAINS(error({"data.eval_prompts=7"}), "13 distinct tasks needed");
  // The models: a directory without config.json and no recipe to train it.
  const std::string missing = error({});
  EXPECT_CONTAINS(missing, "large.path");
  EXPECT_CONTAINS(missing, (dir / "missing").string());
  EXPECT_FALSE(fs::exists(dir / "run"));  // nothing written
}

// The bundled path end to end, every reported number recomputed from the run's own files.
TEST(AgentStage, BundledPipelineEndToEnd) {
  const fs::path dir = test::fresh_dir("agent_stage_bundled");
  const fs::path model = testing::eos_prone_base(dir / "base");
  const fs::path tokenizer = fs::path(TAILOR_SOURCE_DIR) / "assets/tokenizers/gpt2";
  save_tokenizer_files(tokenizer, model);
  const fs::path prompts = dir / "prompts.jsonl";
  testing::write_animal_prompts(prompts, 12);
  const fs::path run = dir / "run";
  write_file_atomic(dir / "agent.yaml", agent_test_recipe(run, model, prompts));
  test::run_ok(std::string(TAILOR_BINARY) + " run " + (dir / "agent.yaml").string() +
               " > /dev/null 2>" + (dir / "log.txt").string());

  // Demonstrations: each is a valid candidate its user's oracle scores highest.
  std::map<std::string, std::vector<nlohmann::json>> candidates;
  for (const auto& line : agent_read_jsonl(run / "candidates.jsonl"))
    for (const auto& a : line.at("answers"))
      if (!a.at("truncated").get<bool>() && agent_trim(a.at("text").get<std::string>()).size() > 0)
        candidates[line.at("prompt")].push_back(a);
  const std::map<std::string, std::string> oracle_of = {{"brief", "shorter_length"},
                                                        {"shouty", "lowercase"}};
  const std::map<std::string, double> sign = {{"brief", 1.0}, {"shouty", -1.0}};
  const auto world = agent_read_jsonl(run / "world.jsonl");
  ASSERT_GE(world.size(), 8u);
  std::map<std::string, std::string> zero_shot_of;
  for (const auto& d : world) {
    const std::string user = d.at("user"), prompt = d.at("prompt"), answer = d.at("completion");
    const auto& oracle = judges::oracle(oracle_of.at(user));
    const double mine = sign.at(user) * oracle.score(prompt, answer);
    bool listed = false;
    for (const auto& c : candidates.at(prompt)) {
      listed = listed || c.at("text") == answer;
      EXPECT_LE(sign.at(user) * oracle.score(prompt, c.at("text").get<std::string>()), mine)
          << user << " on " << prompt;
    }
    EXPECT_TRUE(listed) << answer;
    // The rules hold for the user's answer, and each one is broken by the zero-shot answer.
    const std::string rules = d.at("rules"), zero = d.at("zero_shot");
    EXPECT_TRUE(satisfies_rules(answer, rules)) << rules;
    std::istringstream lines(rules);
    for (std::string rule; std::getline(lines, rule);)
      EXPECT_FALSE(satisfies_rules(zero, rule)) << rule << " vs " << zero;
    EXPECT_TRUE(satisfies_rules(answer, d.at("no_baseline_rules").get<std::string>()));
    EXPECT_EQ(d.at("intent"), prompt);  // steps.intent empty: the task is the intent
    zero_shot_of[prompt] = zero;
  }
  // The zero-shot answers are M_L's greedy answers, as `tailor generate` gives them.
  const auto& [some_task, some_zero] = *zero_shot_of.begin();
  EXPECT_EQ(agent_cli_greedy(model, tokenizer, some_task, "", "zephyr", 10), some_zero);

  // Every adapter's loss is in metrics.jsonl, and the agents' fell while they trained (the first
  // three steps' mean against the last three's; each step draws 3 of the user's 6 examples). The
  // random base's layer-norm bias keeps every logit close (eos_prone_base), so it falls slowly.
  std::map<std::string, std::vector<double>> losses;
  for (const auto& m : agent_read_jsonl(run / "metrics.jsonl"))
    for (const auto& [key, value] : m.items())
      if (key.rfind("loss/", 0) == 0) losses[key.substr(5)].push_back(value.get<double>());
  EXPECT_EQ(losses.size(), 10u);  // 2 users x (agent, no-baseline, naive, rules_n2, naive_n2)
  for (const std::string user : {"brief", "shouty"}) {
    const auto& l = losses.at(user);
    ASSERT_EQ(l.size(), 12u);
    EXPECT_LT(l[9] + l[10] + l[11], l[0] + l[1] + l[2] - 3 * 0.3) << user;
  }

  // The summary's win rates, recomputed from the judged answers: the agent against M_L alone
  // (one oracle: the higher score wins; an empty or cut-off answer loses to a valid one).
  const auto summary = nlohmann::json::parse(read_file(run / "summary.json"));
  std::map<std::string, std::map<std::pair<std::string, int64_t>, nlohmann::json>> by_method;
  for (const auto& a : agent_read_jsonl(run / "eval_samples.jsonl"))
    by_method[a.at("method")][{a.at("task"), a.at("sample").get<int64_t>()}] = a;
  for (const auto& [judge, agent] : std::vector<std::pair<std::string, std::string>>{
           {"brief", "brief"}, {"shouty", "brief"}, {"shouty", "shouty"}}) {
    double points = 0, n = 0;
    const auto& oracle = judges::oracle(oracle_of.at(judge));
    for (const auto& [key, mine] : by_method.at(agent)) {
      const auto& base = by_method.at("large").at(key);
      const auto invalid = [](const nlohmann::json& a) {
        return a.at("truncated").get<bool>() || agent_trim(a.at("answer")).empty();
      };
      const bool mi = invalid(mine), bi = invalid(base);
      double p = 0.5;
      if (mi != bi) {
        p = mi ? 0.0 : 1.0;
      } else if (!mi) {
        const double a = sign.at(judge) * oracle.score(key.first, mine.at("answer")),
                     b = sign.at(judge) * oracle.score(key.first, base.at("answer"));
        p = a > b + 1e-9 ? 1.0 : (b > a + 1e-9 ? 0.0 : 0.5);
      }
      points += p;
      n += 1;
    }
    EXPECT_NEAR(summary.at("cross_user").at("win_rate").at(judge).at(agent).get<double>(),
                points / n, 1e-12)
        << judge << " judging " << agent;
    if (judge == agent) {
      EXPECT_NEAR(summary.at("win_rates").at(judge).at("large").get<double>(), points / n, 1e-12);
    }
  }
  for (const auto& key : {"small", "large", "few_shot", "naive", "no_baseline"})
    EXPECT_TRUE(summary.at("win_rates").at("brief").contains(key)) << key;
  EXPECT_TRUE(summary.at("curves").at("brief").at("rules").contains("2"));

  // The exported agent writes, through `tailor generate`, the rules the run used.
  const auto& example = summary.at("rules_examples").at("shouty").at(0);
  EXPECT_EQ(agent_trim(agent_cli_greedy(model, tokenizer, example.at("task"), "", "zephyr", 10,
                                        run / "export" / "shouty")),
            example.at("rules").get<std::string>());
}

// Many users' adapters in one bank train as each would alone: an adapter's loss is the mean over
// its own tokens and its gradient is clipped on its own, so with another user beside it (other
// rows in its passes, other adapters in the bank) it ends the same. In float64, so that the
// different batch shapes can only move it by rounding.
TEST(AgentStage, EachAdapterTrainsAsIfAlone) {
  const fs::path dir = test::fresh_dir("agent_stage_alone");
  const fs::path model = testing::eos_prone_base(dir / "base");
  save_tokenizer_files(fs::path(TAILOR_SOURCE_DIR) / "assets/tokenizers/gpt2", model);
  // No dropout: its masks come from one generator shared by every row of a pass.
  auto config = nlohmann::json::parse(read_file(model / "config.json"));
  for (const char* key : {"attn_pdrop", "embd_pdrop", "resid_pdrop"})
    config[key] = 0.0;
  write_file_atomic(model / "config.json", config.dump(2));
  const fs::path prompts = dir / "prompts.jsonl";
  testing::write_animal_prompts(prompts, 12);
  const auto run = [&](const std::string& name, const std::string& users) {
    write_file_atomic(dir / (name + ".yaml"), agent_test_recipe(dir / name, model, prompts));
    test::run_ok(std::string(TAILOR_BINARY) + " run " + (dir / (name + ".yaml")).string() +
                 " train.precision=fp64 train.max_steps=4 'train.curve_examples=[]' " +
                 "optimizer.grad_clip=0.05 'users=" + users + "' eval.samples=1 > /dev/null 2>" +
                 (dir / (name + ".log")).string());
    return dir / name / "export";
  };
  const fs::path together =
      run("together", "{brief: {shorter_length: 1.0}, shouty: {lowercase: -1.0}}");
  const fs::path alone = run("alone", "{brief: {shorter_length: 1.0}}");
  for (const std::string adapter : {"brief", "brief@naive", "brief@no_baseline"}) {
    const TensorMap a = safetensors::load(together / adapter / "adapter_model.safetensors");
    const TensorMap b = safetensors::load(alone / adapter / "adapter_model.safetensors");
    ASSERT_EQ(a.size(), b.size());
    double moved = 0;
    for (const auto& [name, t] : b)
      if (name.find("lora_B") != std::string::npos) moved += t.abs().sum().item<double>();
    EXPECT_GT(moved, 0) << adapter << " did not train";
    EXPECT_LT(testing::adapter_relative_difference(a, b), 1e-9) << adapter;
  }
}

// The real-model path: demonstrations from a file, M_L writes the intents and rules from the
// recipe's templates; on a random tiny Mistral with its real tokenizer.
TEST(AgentStage, RealModelPathRunsOnTinyMistral) {
  const fs::path dir = test::fresh_dir("agent_stage_mistral");
  const fs::path tokenizer = fs::path(TAILOR_SOURCE_DIR) / "assets/tokenizers/mistral";
  const fs::path model = dir / "mistral";
  torch::manual_seed(5);
  CausalLM m = causal_lm_from_config(preset_config("mistral-tiny"), "mistral-tiny", true);
  save_pretrained(model, *m);
  save_tokenizer_files(tokenizer, model);
  const fs::path prompts = dir / "prompts.jsonl";
  testing::write_animal_prompts(prompts, 8);
  std::string demos;
  for (const std::string user : {"ann", "bob"})
    for (int i = 0; i < 3; ++i)
      demos += nlohmann::json({{"user", user},
                               {"prompt", "Tell me about animal " + std::to_string(i) + "."},
                               {"completion", user == "ann" ? " tiny." : " BIG ANIMAL!"}})
                   .dump() +
               "\n";
  write_file_atomic(dir / "demos.jsonl", demos);
  const fs::path run = dir / "run";
  const std::string recipe =
      "stage: agent\noutput_dir: " + run.string() + "\ntokenizer: " + tokenizer.string() +
      "\nlarge: {path: " + model.string() + "}\nsmall: {path: " + model.string() +
      "}\nusers: {ann: {shorter_length: 1.0}, bob: {lowercase: -1.0}}\n"
      "data: {prompts: " +
      prompts.string() + ", demonstrations: " + (dir / "demos.jsonl").string() +
      ", template: mistral_instruct, eval_prompts: 2}\n"
      "steps:\n  intent: \"What was asked? Answer: {completion}\"\n"
      "  rules: \"Compare. Mine: {zero_shot} Theirs: {completion} Task: {intent}\"\n"
      "  no_baseline_rules: \"Describe: {completion}\"\n  max_new_tokens: 6\n"
      "generate: {max_new_tokens: 6}\n"
      "lora: {rank: 2, alpha: 4.0, targets: [q_proj, v_proj]}\n"
      "train: {max_steps: 2, examples_per_adapter: 2}\neval: {samples: 2}\n";
  write_file_atomic(dir / "agent.yaml", recipe);
  test::run_ok(std::string(TAILOR_BINARY) + " run " + (dir / "agent.yaml").string() +
               " > /dev/null 2>" + (dir / "log.txt").string());
  const auto world = agent_read_jsonl(run / "world.jsonl");
  ASSERT_EQ(world.size(), 6u);
  // Each LLM step is M_L's greedy answer to its filled template.
  const auto& d = world.at(4);  // bob's second demonstration
  EXPECT_EQ(d.at("completion"), " BIG ANIMAL!");
  const std::string intent = d.at("intent");
  EXPECT_EQ(intent,
            agent_trim(agent_cli_greedy(model, tokenizer, "What was asked? Answer:  BIG ANIMAL!",
                                        "", "mistral_instruct", 6)));
  const std::string zero = d.at("zero_shot");
  EXPECT_EQ(zero, agent_cli_greedy(model, tokenizer, intent, "", "mistral_instruct", 6));
  EXPECT_EQ(
      d.at("rules").get<std::string>(),
      agent_trim(agent_cli_greedy(
          model, tokenizer, "Compare. Mine: " + zero + " Theirs:  BIG ANIMAL! Task: " + intent, "",
          "mistral_instruct", 6)));
  const auto summary = nlohmann::json::parse(read_file(run / "summary.json"));
  EXPECT_EQ(summary.at("users"), (nlohmann::json{"ann", "bob"}));
  EXPECT_EQ(summary.at("answers_per_user").get<int64_t>(), 4);
  EXPECT_TRUE(fs::exists(run / "export" / "bob" / "adapter_model.safetensors"));
  EXPECT_FALSE(summary.contains("rules_followed"));  // rules from M_L: nothing to check them by
}

}  // namespace
}  // namespace tailor
