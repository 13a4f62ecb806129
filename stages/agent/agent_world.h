// What the preference-agents pipeline derives from the users' demonstrations, as plain text
// (stages/agent/agent_stage.cpp runs the models that fill it in): per demonstration its intent,
// the large model's zero-shot answer and the two kinds of rules; per adapter the SFT examples it
// trains on. Kept apart from the models so that the data each adapter learns is testable by hand.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "stages/agent/agent_recipe.h"

namespace tailor {

// One user's demonstration of one task and what the pipeline makes of it.
struct AgentDemo {
  std::string user;
  std::string prompt;             // the task
  std::string completion;         // the user's own answer
  std::string intent;             // steps.intent (or the prompt)
  std::string zero_shot;          // M_L's answer to the intent, no personalisation
  std::string rules;              // the contrast of zero_shot with completion (the method)
  std::string no_baseline_rules;  // the completion described without the contrast
};

// One SFT example of an adapter: M_S reads `prompt` and learns to write `response`.
struct AgentExample {
  std::string prompt, response;
};

// The adapters of one user, by what they learn; the bank's adapter names are
// user + suffix ("alice", "alice@no_baseline", "alice@naive", "alice@rules_n5", ...).
inline const char* const kNoBaselineSuffix = "@no_baseline";
inline const char* const kNaiveSuffix = "@naive";
std::string curve_adapter(const std::string& user, bool rules, int64_t examples);

// The training set of every adapter, by adapter name: for each user (demos in task order)
//   user               agent prompt (steps.agent_prompt of the intent) -> rules
//   user@no_baseline   agent prompt -> no-baseline rules
//   user@naive         the task (steps.zero_shot of the intent) -> the user's completion (the
//                      seed's naive fine-tune: M_S taught the answers themselves)
//   user@rules_n<k>,   the first k demonstrations only, for each k of `curve_sizes`
//   user@naive_n<k>
std::map<std::string, std::vector<AgentExample>> agent_training_sets(
    const AgentRecipe& recipe, const std::vector<AgentDemo>& demos,
    const std::vector<int64_t>& curve_sizes);

// The tasks of a run: data.prompts' distinct prompts (first occurrence order) in a seeded
// shuffle; the first data.train_prompts train, the next data.eval_prompts are held out.
struct AgentTasks {
  std::vector<std::string> train, eval;
};
AgentTasks split_agent_tasks(const std::vector<std::string>& prompts, int64_t train, int64_t eval,
                             uint64_t seed);

// data.demonstrations: {user, prompt, completion} lines (other fields ignored), in file order.
// Errors name the file, the line and the field: a missing or empty string, a user not in `users`,
// the same (user, prompt) twice; and the file when a user of `users` has no line.
std::vector<AgentDemo> read_demonstrations(const std::filesystem::path& file,
                                           const std::vector<std::string>& users);

// The tasks of a run with real demonstrations: their prompts (first occurrence order) train, and
// data.eval_prompts of data.prompts' other prompts, in a seeded shuffle, are held out.
AgentTasks split_demonstrated_tasks(const std::vector<AgentDemo>& demos,
                                    const std::vector<std::string>& prompts, int64_t eval,
                                    uint64_t seed);

// The few-shot baseline's system text: steps.few_shot with {examples} = steps.few_shot_example
// of each of the user's first steps.few_shot_examples demonstrations, concatenated.
std::string few_shot_system_text(const AgentRecipe& recipe, const std::vector<AgentDemo>& demos);

// world.jsonl: one line per demonstration with every field above, written atomically.
void write_world_jsonl(const std::filesystem::path& file, const std::vector<AgentDemo>& demos);

}  // namespace tailor
