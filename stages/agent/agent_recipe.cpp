#include "stages/agent/agent_recipe.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "common/atomic_file.h"
#include "common/error.h"
#include "judges/oracles.h"
#include "judges/preference_sources.h"
#include "stages/agent/agent_world.h"

namespace tailor {
namespace fs = std::filesystem;

namespace {

using Names = std::vector<std::string>;

// The template keys and the placeholders each may use.
const std::map<std::string, Names>& template_keys() {
  static const std::map<std::string, Names> table = {
      {"steps.intent", {"prompt", "completion"}},
      {"steps.zero_shot", {"intent"}},
      {"steps.rules", {"intent", "zero_shot", "completion"}},
      {"steps.no_baseline_rules", {"intent", "completion"}},
      {"steps.agent_prompt", {"intent"}},
      {"steps.inference", {"intent", "rules"}},
      {"steps.inference_system", {"rules"}},
      {"steps.few_shot", {"examples"}},
      {"steps.few_shot_example", {"prompt", "completion"}},
  };
  return table;
}

// Calls `each(name)` for every {name} of `text`; Error names `key` for an unclosed brace.
template <class F>
void for_each_placeholder(const std::string& key, const std::string& text, F each) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '{' && i + 1 < text.size() && text[i + 1] == '{') {
      ++i;
    } else if (text[i] == '}' && i + 1 < text.size() && text[i + 1] == '}') {
      ++i;
    } else if (text[i] == '{') {
      const size_t end = text.find('}', i);
      if (end == std::string::npos)
        throw Error("recipe", key + ": unclosed '{' at character " + std::to_string(i) +
                                  " (write {{ for a literal brace)");
      each(text.substr(i + 1, end - i - 1));
      i = end;
    } else if (text[i] == '}') {
      throw Error("recipe", key + ": '}' without '{' at character " + std::to_string(i) +
                                " (write }} for a literal brace)");
    }
  }
}

std::string joined(const Names& names) {
  std::string out;
  for (const auto& n : names)
    out += (out.empty() ? "{" : ", {") + n + "}";
  return out;
}

Schema<AgentRecipe> build_agent_schema() {
  Schema<AgentRecipe> s;
  s.choice(TAILOR_MEMBER(stage), Names{"agent"})
      .doc(
          "what to run: agent = preference agents (seed 002): a small model learns to write each "
          "user's preference rules, a large model follows them")
      .required();
  s.key(TAILOR_MEMBER(seed))
      .doc("seeds the agents' initialisation, the task split and the evaluation's samples")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(output_dir))
      .doc(
          "run directory: recipe.yaml, metrics.jsonl, world.jsonl (demonstrations, intents, "
          "zero-shot answers, rules), summary.json, table.md, eval_samples.jsonl, export/")
      .required();
  s.key(TAILOR_MEMBER(tokenizer))
      .doc(
          "tokenizer directory of both models (unless large.tokenizer / small.tokenizer say "
          "otherwise): vocab.json + merges.txt, or tokenizer.json")
      .default_value(fs::path("assets/tokenizers/gpt2"));

  s.section("large", "M_L: writes intents and rules (with templates), answers, follows rules");
  s.key(TAILOR_MEMBER(large.path)).doc("Hugging Face model directory").required();
  s.key(TAILOR_MEMBER(large.recipe))
      .doc(
          "SFT recipe that trains it into large.path's parent when large.path is missing (run "
          "once, shared by every seed); empty = large.path must exist")
      .default_value(fs::path());
  s.key(TAILOR_MEMBER(large.tokenizer))
      .doc("its tokenizer directory; empty = `tokenizer` (the two models exchange only text)")
      .default_value(fs::path());
  s.section("small", "M_S: every user's agent is a LoRA adapter on it");
  s.key(TAILOR_MEMBER(small.path)).doc("Hugging Face model directory").required();
  s.key(TAILOR_MEMBER(small.recipe))
      .doc("SFT recipe that trains it into small.path's parent when missing; empty = must exist")
      .default_value(fs::path());
  s.key(TAILOR_MEMBER(small.tokenizer))
      .doc("its tokenizer directory; empty = `tokenizer`")
      .default_value(fs::path());

  s.key(TAILOR_MEMBER(users))
      .doc(
          "the users, each a weighted mixture of heuristic oracles: their demonstrations are the "
          "large model's samples their oracle ranks best, and the same oracle judges the win "
          "rates, e.g. {brief: {shorter_length: 1.0, lowercase: 0.5}}")
      .required();

  s.section("data", "the users' tasks");
  s.key(TAILOR_MEMBER(data.prompts)).doc("{prompt} JSONL of tasks").required();
  s.key(TAILOR_MEMBER(data.demonstrations))
      .doc(
          "{user, prompt, completion} JSONL of the users' own answers (real demonstrations); "
          "its prompts are the training tasks, data.prompts' others the held-out ones; empty = "
          "each user's oracle picks its favourite of M_L's samples (the bundled world)")
      .default_value(fs::path());
  s.choice(
       "data.template", [](auto& r) -> auto& { return r.data.prompt_template; },
       prompt_template_names())
      .doc("both models' prompt template: plain, mistral_instruct or zephyr (system turn)")
      .default_value(PromptTemplate::kZephyr);
  s.key(TAILOR_MEMBER(data.train_prompts))
      .doc("tasks with one demonstration of every user (a seeded draw from data.prompts)")
      .default_value(40)
      .at_least(1);
  s.key(TAILOR_MEMBER(data.eval_prompts))
      .doc("held-out tasks the win rates and the cross-user matrix are measured on")
      .default_value(20)
      .at_least(1);
  s.key(TAILOR_MEMBER(data.candidates))
      .doc(
          "the large model's samples per training task; each user's demonstration is the one "
          "its oracle ranks best")
      .default_value(16)
      .at_least(1);
  s.key(TAILOR_MEMBER(data.max_length))
      .doc("tokens of an agent's training example (prompt + response + EOS); longer ones are cut")
      .default_value(128)
      .at_least(2);

  s.section("steps", "the LLM steps as prompt templates; placeholders in braces, {{ }} literal");
  s.key(TAILOR_MEMBER(steps.intent))
      .doc(
          "M_L's prompt for a demonstration's intent: {prompt} {completion}; empty = the task's "
          "prompt is the intent (the bundled world)")
      .default_value(std::string());
  s.key(TAILOR_MEMBER(steps.zero_shot))
      .doc("M_L's prompt for its zero-shot answer: {intent}")
      .default_value(std::string("{intent}"));
  s.key(TAILOR_MEMBER(steps.rules))
      .doc(
          "M_L's prompt for the rules: {intent} {zero_shot} {completion}; empty = the rule "
          "writer (stages/agent/rule_writer.h: measured differences written as rule text)")
      .default_value(std::string());
  s.key(TAILOR_MEMBER(steps.no_baseline_rules))
      .doc(
          "the no-baseline agent's rules, without the zero-shot contrast: {intent} "
          "{completion}; empty = the rule writer's absolute description of the user's answer")
      .default_value(std::string());
  s.key(TAILOR_MEMBER(steps.agent_prompt))
      .doc("what the agent (M_S) reads: {intent}")
      .default_value(std::string("{intent}"));
  s.key(TAILOR_MEMBER(steps.inference))
      .doc("M_L's prompt at inference: {intent} {rules}")
      .default_value(std::string("{intent}"));
  s.key(TAILOR_MEMBER(steps.inference_system))
      .doc("M_L's system text at inference: {rules}")
      .default_value(std::string("{rules}"));
  s.key(TAILOR_MEMBER(steps.few_shot))
      .doc("the few-shot baseline's system text for M_L: {examples}")
      .default_value(std::string("Answer in the style of these examples:{examples}"));
  s.key(TAILOR_MEMBER(steps.few_shot_example))
      .doc("one demonstration inside {examples}: {prompt} {completion}")
      .default_value(std::string("\nExample:{completion}"));
  s.key(TAILOR_MEMBER(steps.few_shot_examples))
      .doc("the user's demonstrations in the few-shot prompt (the first ones)")
      .default_value(2)
      .at_least(1);
  s.key(TAILOR_MEMBER(steps.max_new_tokens))
      .doc("most tokens of an intent or a rule set (greedy)")
      .default_value(48)
      .at_least(1);

  s.section("generate", "sampling of the candidates and of every answer that is judged");
  s.key(TAILOR_MEMBER(generate.max_new_tokens))
      .doc("tokens per answer (EOS ends one earlier)")
      .default_value(48)
      .at_least(1);
  s.key(TAILOR_MEMBER(generate.temperature)).doc("temperature").default_value(1.0).above(0);
  s.key(TAILOR_MEMBER(generate.top_k)).doc("top-k; 0 = off").default_value(0).at_least(0);
  s.key(TAILOR_MEMBER(generate.top_p))
      .doc("nucleus; 1 = off")
      .default_value(1.0)
      .above(0)
      .at_most(1);
  s.key(TAILOR_MEMBER(generate.seed))
      .doc("the candidates' sampling seed (the same demonstrations for every training seed)")
      .default_value(0)
      .at_least(0);

  add_lora_keys(s);
  add_optimizer_keys(s);
  add_schedule_keys(s);

  s.section("train", "the adapters: each user's agent, no-baseline agent and naive fine-tune");
  s.key(TAILOR_MEMBER(train.max_steps)).doc("optimizer steps").default_value(300).at_least(1);
  s.key(TAILOR_MEMBER(train.examples_per_adapter))
      .doc("examples of every adapter in one step (all adapters share the passes)")
      .default_value(8)
      .at_least(1);
  s.key(TAILOR_MEMBER(train.curve_examples))
      .doc(
          "learning curve: rule and naive adapters on each user's first n demonstrations, for "
          "each n (each < data.train_prompts); empty = none")
      .default_value(std::vector<double>{});
  s.choice(TAILOR_MEMBER(train.precision), precision_names())
      .doc(
          "fp32 | bf16_autocast (fp32 weights, bf16 matmuls; the losses in fp32) | fp64 (both "
          "models in float64, slow: for checking that two ways of running agree)")
      .default_value(Precision::kFp32);
  s.key(TAILOR_MEMBER(train.log_every))
      .doc("steps between progress lines and metrics.jsonl records (every adapter's loss)")
      .default_value(10)
      .at_least(1);
  s.key(TAILOR_MEMBER(train.eval_every))
      .doc("unused: the evaluation runs once, at the end")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(train.checkpoint_every))
      .doc("steps between checkpoints (the adapters); 0 = only at the end")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(train.keep_checkpoints))
      .doc("most recent checkpoints kept on disk")
      .default_value(1)
      .at_least(1);
  s.key(TAILOR_MEMBER(train.resume))
      .doc("continue from the latest checkpoint in output_dir")
      .default_value(false);

  s.section("eval", "the win rates on held-out tasks, judged by each user's oracle");
  s.key(TAILOR_MEMBER(eval.samples))
      .doc("answers per held-out task and method, with the same seeds for every method")
      .default_value(10)
      .at_least(1);
  s.key(TAILOR_MEMBER(eval.seed)).doc("sampling seed of the answers").default_value(1).at_least(0);
  s.spec().check_complete();
  return s;
}

void check_agent_rules(const ResolvedConfig& c) {
  const auto& users = c.get<WeightTable>("users");
  if (users.empty()) c.fail("users", "needs at least one user, e.g. {brief: {shorter_length: 1}}");
  for (const auto& [user, weights] : users) {
    if (user.find('@') != std::string::npos)
      c.fail("users", "user '" + user + "': '@' is reserved for the adapters' names");
    try {
      judges::mixture_prefers(weights, "", "a", "a");  // validates the oracle names and weights
    } catch (const Error& e) {
      c.fail("users", "user '" + user + "': " + e.what());
    }
  }
  for (const auto& [key, allowed] : template_keys()) {
    const auto text = c.get<std::string>(key);
    try {
      for_each_placeholder(key, text, [&](const std::string& name) {
        if (std::find(allowed.begin(), allowed.end(), name) == allowed.end())
          throw Error("recipe",
                      key + ": unknown placeholder {" + name + "}; expected " + joined(allowed));
      });
    } catch (const Error& e) {
      c.fail(key, e.what());
    }
  }
  const auto train = c.get<int64_t>("data.train_prompts");
  for (double n : c.get<std::vector<double>>("train.curve_examples"))
    if (!(n >= 1 && n == std::floor(n) && n < static_cast<double>(train)))
      c.fail("train.curve_examples",
             "each size must be a whole number in [1, data.train_prompts "
             "= " +
                 std::to_string(train) + "), got " + std::to_string(n));
  if (c.get<int64_t>("steps.few_shot_examples") > train)
    c.fail("steps.few_shot_examples",
           "needs at most data.train_prompts (" + std::to_string(train) + ") demonstrations");
  const auto precision = c.get<std::string>("train.precision");
  if (precision == "bf16")
    c.fail("train.precision", "expected fp32, bf16_autocast or fp64, got bf16");
  if (c.get<bool>("lora.enabled") == false)
    c.fail("lora.enabled", "the agents are LoRA adapters on small.path; expected true");
  if (c.get<std::vector<std::string>>("lora.targets").empty())
    c.fail("lora.targets", "expected at least one module name");
}

}  // namespace

std::vector<int64_t> AgentRecipe::curve_sizes() const {
  std::set<int64_t> sizes;
  for (double n : train.curve_examples)
    sizes.insert(static_cast<int64_t>(n));
  return {sizes.begin(), sizes.end()};
}

const std::vector<std::string>& agent_template_placeholders(const std::string& key) {
  return template_keys().at(key);
}

std::string fill_template(const std::string& key, const std::string& text,
                          const std::map<std::string, std::string>& values) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((text[i] == '{' || text[i] == '}') && i + 1 < text.size() && text[i + 1] == text[i]) {
      out += text[i++];
    } else if (text[i] == '{') {
      const size_t end = text.find('}', i);
      if (end == std::string::npos)
        throw Error("recipe", key + ": unclosed '{' at character " + std::to_string(i));
      const std::string name = text.substr(i + 1, end - i - 1);
      const auto it = values.find(name);
      if (it == values.end()) throw Error("recipe", key + ": unknown placeholder {" + name + "}");
      out += it->second;
      i = end;
    } else {
      out += text[i];
    }
  }
  return out;
}

const Schema<AgentRecipe>& agent_recipe_schema() {
  static const Schema<AgentRecipe> schema = build_agent_schema();
  return schema;
}

ResolvedConfig resolve_agent_recipe(const std::string& yaml_text, const std::string& source,
                                    const std::vector<std::string>& overrides) {
  ResolvedConfig config =
      resolve_config(agent_recipe_schema().spec(), yaml_text, source, overrides);
  check_agent_rules(config);
  return config;
}

AgentRecipe agent_recipe_from_config(const ResolvedConfig& config) {
  check_agent_rules(config);
  return agent_recipe_schema().bind(config);
}

AgentRecipe load_agent_recipe(const fs::path& file, const std::vector<std::string>& overrides) {
  return agent_recipe_from_config(resolve_agent_recipe(read_file(file), file.string(), overrides));
}

std::string agent_recipe_hash(const AgentRecipe& recipe) {
  AgentRecipe same_run = recipe;
  same_run.train.resume = false;
  return agent_recipe_schema().unbind(same_run, "(recipe)").hash();
}

void check_agent_inputs(const AgentRecipe& r) {
  require_file("data.prompts", r.data.prompts);
  if (!r.data.demonstrations.empty()) require_file("data.demonstrations", r.data.demonstrations);
  require_directory("tokenizer", r.tokenizer, {{"vocab.json", "merges.txt"}, {"tokenizer.json"}});
  for (const auto& [key, dir] :
       {std::pair<std::string, fs::path>{"large.tokenizer", r.large.tokenizer},
        {"small.tokenizer", r.small.tokenizer}})
    if (!dir.empty())
      require_directory(key, dir, {{"vocab.json", "merges.txt"}, {"tokenizer.json"}});
  const auto prompts = read_prompts_jsonl(r.data.prompts);
  if (r.data.demonstrations.empty()) {
    split_agent_tasks(prompts, r.data.train_prompts, r.data.eval_prompts, 0);  // enough tasks
  } else {
    std::vector<std::string> users;
    for (const auto& [user, weights] : r.users)
      users.push_back(user);
    split_demonstrated_tasks(read_demonstrations(r.data.demonstrations, users), prompts,
                             r.data.eval_prompts, 0);
  }
  for (const auto& [key, model] :
       {std::pair<std::string, const AgentModelSection&>{"large", r.large}, {"small", r.small}}) {
    if (fs::is_regular_file(model.path / "config.json")) continue;
    if (model.recipe.empty())
      require_directory(key + ".path", model.path, {{"config.json"}});
    else
      require_file(key + ".recipe", model.recipe);
  }
  if (fs::exists(r.output_dir) && !fs::is_directory(r.output_dir))
    throw Error("recipe",
                "output_dir: " + r.output_dir.string() + " exists and is not a directory");
}

}  // namespace tailor
