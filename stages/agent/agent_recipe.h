// The preference-agents recipe (stage: agent; seed 002, docs/agents.md). A user's preferences
// become natural-language rules: a large model M_L completes each of the user's tasks zero-shot,
// the difference between that answer and the user's own becomes rule text, a small model M_S
// learns with LoRA to write the user's rules from the task alone (one adapter per user, many users
// in one run), and at inference M_S's rules steer the unchanged M_L. The same run trains the
// seed's baselines and judges them all by each user's own oracle. recipes/agent_demo.yaml is the
// complete, commented example.
//
// Every LLM step is a prompt template in the recipe (steps.*), filled with {prompt},
// {completion}, {intent}, {zero_shot}, {rules}, {examples} and run by the generation code; the
// bundled world leaves steps.intent and steps.rules empty, which means: the task's prompt is the
// intent, and the rule writer of stages/agent/rule_writer.h writes the rules.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "models/tokenizer/prompt_format.h"
#include "train/recipe/schema.h"
#include "train/recipe/sections.h"

namespace tailor {

// One of the two models: a Hugging Face directory, and the SFT recipe that trains it there when
// it is missing (the bundled world; "" = the directory must exist).
struct AgentModelSection {
  std::filesystem::path path;
  std::filesystem::path recipe;
  std::filesystem::path tokenizer;  // "" = the recipe's `tokenizer` (the models only exchange text)
};

struct AgentDataSection {
  std::filesystem::path prompts;  // {prompt} JSONL: the users' tasks
  // {user, prompt, completion} JSONL of real demonstrations ("" = sampled: the oracle's favourite
  // of data.candidates answers of M_L); its prompts must be among the training tasks.
  std::filesystem::path demonstrations;
  PromptTemplate prompt_template;  // both models' (recipe key data.template)
  int64_t train_prompts;           // tasks with a demonstration of every user
  int64_t eval_prompts;            // held-out tasks the win rates are measured on
  int64_t candidates;              // M_L samples per task; each user's oracle keeps its best
  int64_t max_length;              // tokens of an agent's training example (prompt + response)
};

// The prompt templates of the LLM steps (placeholders in braces).
struct AgentStepsSection {
  std::string intent;             // M_L prompt {prompt} {completion}; "" = the task's prompt
  std::string zero_shot;          // M_L prompt of the zero-shot answer: {intent}
  std::string rules;              // M_L prompt {intent} {zero_shot} {completion}; "" = writer
  std::string no_baseline_rules;  // M_L prompt {intent} {completion}; "" = no-baseline writer
  std::string agent_prompt;       // M_S's prompt (the agent's input): {intent}
  std::string inference;          // M_L's prompt at inference: {intent} {rules}
  std::string inference_system;   // M_L's system text at inference: {rules}
  std::string few_shot;           // the few-shot baseline's system text: {examples}
  std::string few_shot_example;   // one example of {examples}: {prompt} {completion}
  int64_t few_shot_examples;      // the user's demonstrations in the few-shot prompt
  int64_t max_new_tokens;         // per LLM step's output (intent, rules)
};

// Sampling of the candidates (demonstrations) and of every answer that is judged.
struct AgentGenerateSection {
  int64_t max_new_tokens;
  double temperature;  // > 0
  int64_t top_k;       // 0 = off
  double top_p;        // 1 = off
  int64_t seed;        // candidates' sampling seed (fixed across training seeds)
};

struct AgentTrainSection {
  int64_t max_steps;
  int64_t examples_per_adapter;  // examples of every adapter in one optimizer step
  // Training-set sizes of the learning curve: rule and naive adapters trained on each user's
  // first n demonstrations only (empty = no curve; every size < data.train_prompts).
  std::vector<double> curve_examples;
  Precision precision;  // fp32 | bf16_autocast (bf16 matmuls) | fp64 (tests compare runs in it)
  int64_t log_every;
  int64_t eval_every;  // unused: the evaluation runs at the end (kept for the shared loop)
  int64_t checkpoint_every;
  int64_t keep_checkpoints;
  bool resume;
};

struct AgentEvalSection {
  int64_t samples;  // answers per held-out task and method (same seeds for every method)
  int64_t seed;
};

struct AgentRecipe {
  std::string stage;  // "agent"
  int64_t seed;
  std::filesystem::path output_dir;
  std::filesystem::path tokenizer;  // both models'
  AgentModelSection large;          // M_L: writes intents, answers, follows rules
  AgentModelSection small;          // M_S: the agents are LoRA adapters on it
  WeightTable users;                // user -> {oracle: weight}: demonstrations and judges
  AgentDataSection data;
  AgentStepsSection steps;
  AgentGenerateSection generate;
  LoraSection lora;
  OptimizerSection optimizer;
  ScheduleSection schedule;
  AgentTrainSection train;
  AgentEvalSection eval;

  std::vector<int64_t> curve_sizes() const;  // train.curve_examples, ascending
};

const Schema<AgentRecipe>& agent_recipe_schema();
ResolvedConfig resolve_agent_recipe(const std::string& yaml_text, const std::string& source,
                                    const std::vector<std::string>& overrides = {});
AgentRecipe agent_recipe_from_config(const ResolvedConfig& config);
AgentRecipe load_agent_recipe(const std::filesystem::path& file,
                              const std::vector<std::string>& overrides = {});
// data.prompts and the tokenizer exist, each model's path or recipe exists, and data.prompts has
// enough distinct prompts for train_prompts + eval_prompts. Error("recipe", ...) names the key.
void check_agent_inputs(const AgentRecipe& recipe);
std::string agent_recipe_hash(const AgentRecipe& recipe);

// The placeholders each steps.* template may use (for the recipe check and the docs).
const std::vector<std::string>& agent_template_placeholders(const std::string& key);

// `text` (the template of recipe key `key`) with every {name} replaced by values.at(name); "{{"
// and "}}" stand for literal braces. A {name} that `values` lacks, or an unclosed brace, is an
// Error("recipe", ...) naming the key and the placeholder.
std::string fill_template(const std::string& key, const std::string& text,
                          const std::map<std::string, std::string>& values);

}  // namespace tailor
