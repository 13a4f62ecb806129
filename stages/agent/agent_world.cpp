#include "stages/agent/agent_world.h"

#include <algorithm>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "data/store/jsonl_lines.h"

namespace tailor {

std::string curve_adapter(const std::string& user, bool rules, int64_t examples) {
  return user + (rules ? "@rules_n" : "@naive_n") + std::to_string(examples);
}

std::map<std::string, std::vector<AgentExample>> agent_training_sets(
    const AgentRecipe& r, const std::vector<AgentDemo>& demos,
    const std::vector<int64_t>& curve_sizes) {
  std::map<std::string, std::vector<AgentExample>> sets;
  std::map<std::string, int64_t> seen;  // demonstrations of each user so far
  for (const auto& d : demos) {
    const std::string prompt =
        fill_template("steps.agent_prompt", r.steps.agent_prompt, {{"intent", d.intent}});
    // The naive fine-tune answers the intent itself, as M_S and M_L do zero-shot.
    const std::string task =
        fill_template("steps.zero_shot", r.steps.zero_shot, {{"intent", d.intent}});
    const AgentExample rules{prompt, d.rules}, naive{task, d.completion};
    sets[d.user].push_back(rules);
    sets[d.user + kNoBaselineSuffix].push_back({prompt, d.no_baseline_rules});
    sets[d.user + kNaiveSuffix].push_back(naive);
    const int64_t index = seen[d.user]++;
    for (int64_t k : curve_sizes) {
      if (index >= k) continue;
      sets[curve_adapter(d.user, true, k)].push_back(rules);
      sets[curve_adapter(d.user, false, k)].push_back(naive);
    }
  }
  return sets;
}

namespace {

// A Fisher-Yates shuffle with its own draws (std::shuffle's are the library's choice).
void seeded_shuffle(std::vector<std::string>& items, uint64_t seed) {
  std::mt19937_64 rng(seed ^ 0xa6e47ULL);
  for (size_t i = items.size(); i > 1; --i)
    std::swap(items[i - 1], items[rng() % i]);
}

std::vector<std::string> distinct_in_order(const std::vector<std::string>& items) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& p : items)
    if (seen.insert(p).second) out.push_back(p);
  return out;
}

}  // namespace

std::vector<AgentDemo> read_demonstrations(const std::filesystem::path& file,
                                           const std::vector<std::string>& users) {
  data::JsonlReader reader(file);
  std::vector<AgentDemo> demos;
  std::set<std::pair<std::string, std::string>> seen;
  const std::set<std::string> known(users.begin(), users.end());
  for (std::string line; reader.next(line);) {
    const nlohmann::json j = reader.parse_object(line);
    AgentDemo d;
    for (auto [key, field] : {std::pair<const char*, std::string*>{"user", &d.user},
                              {"prompt", &d.prompt},
                              {"completion", &d.completion}}) {
      if (!j.contains(key) || !j[key].is_string()) reader.fail(key, "expected a string");
      *field = j[key].get<std::string>();
      if (field->empty()) reader.fail(key, "empty");
    }
    if (!known.count(d.user))
      reader.fail("user", "'" + d.user +
                              "' is not one of the recipe's users (each user needs "
                              "an oracle in `users` to judge the win rates)");
    if (!seen.insert({d.user, d.prompt}).second)
      reader.fail("prompt", "user '" + d.user + "' already has a demonstration of this prompt");
    demos.push_back(std::move(d));
  }
  for (const auto& user : users) {
    bool any = false;
    for (const auto& d : demos)
      any = any || d.user == user;
    if (!any)
      throw Error("data", file.string() + ": no demonstration of user '" + user +
                              "' (every user of the recipe needs at least one)");
  }
  return demos;
}

AgentTasks split_demonstrated_tasks(const std::vector<AgentDemo>& demos,
                                    const std::vector<std::string>& prompts, int64_t eval,
                                    uint64_t seed) {
  AgentTasks tasks;
  std::vector<std::string> demonstrated;
  for (const auto& d : demos)
    demonstrated.push_back(d.prompt);
  tasks.train = distinct_in_order(demonstrated);
  const std::set<std::string> used(tasks.train.begin(), tasks.train.end());
  std::vector<std::string> others;
  for (const auto& p : distinct_in_order(prompts))
    if (!used.count(p)) others.push_back(p);
  if (static_cast<int64_t>(others.size()) < eval)
    throw Error("recipe", "data.eval_prompts: " + std::to_string(eval) +
                              " held-out tasks needed, but data.prompts has only " +
                              std::to_string(others.size()) + " prompts without a demonstration");
  seeded_shuffle(others, seed);
  tasks.eval.assign(others.begin(), others.begin() + eval);
  return tasks;
}

AgentTasks split_agent_tasks(const std::vector<std::string>& prompts, int64_t train, int64_t eval,
                             uint64_t seed) {
  std::vector<std::string> distinct = distinct_in_order(prompts);
  if (static_cast<int64_t>(distinct.size()) < train + eval)
    throw Error("recipe",
                "data.train_prompts + data.eval_prompts: " + std::to_string(train + eval) +
                    " distinct tasks needed, but data.prompts has " +
                    std::to_string(distinct.size()));
  seeded_shuffle(distinct, seed);
  AgentTasks tasks;
  tasks.train.assign(distinct.begin(), distinct.begin() + train);
  tasks.eval.assign(distinct.begin() + train, distinct.begin() + train + eval);
  return tasks;
}

std::string few_shot_system_text(const AgentRecipe& r, const std::vector<AgentDemo>& demos) {
  std::string examples;
  for (size_t i = 0; i < demos.size() && static_cast<int64_t>(i) < r.steps.few_shot_examples; ++i)
    examples += fill_template("steps.few_shot_example", r.steps.few_shot_example,
                              {{"prompt", demos[i].prompt}, {"completion", demos[i].completion}});
  return fill_template("steps.few_shot", r.steps.few_shot, {{"examples", examples}});
}

void write_world_jsonl(const std::filesystem::path& file, const std::vector<AgentDemo>& demos) {
  std::string text;
  for (const auto& d : demos) {
    const nlohmann::json line = {{"user", d.user},
                                 {"prompt", d.prompt},
                                 {"completion", d.completion},
                                 {"intent", d.intent},
                                 {"zero_shot", d.zero_shot},
                                 {"rules", d.rules},
                                 {"no_baseline_rules", d.no_baseline_rules}};
    text += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  write_file_atomic(file, text);
}

}  // namespace tailor
