#include "stages/registry.h"

#include <iomanip>
#include <iostream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "dist/collective_watchdog.h"
#include "stages/agent/agent_recipe.h"
#include "stages/agent/agent_stage.h"
#include "stages/chain/chain_recipe.h"
#include "stages/chain/chain_stage.h"
#include "stages/dpo/dpo_recipe.h"
#include "stages/dpo/dpo_stage.h"
#include "stages/elicit/elicit_recipe.h"
#include "stages/elicit/elicit_stage.h"
#include "stages/reward/reward_recipe.h"
#include "stages/reward/reward_stage.h"
#include "stages/sft/sft_stage.h"
#include "train/loop/metrics.h"
#include "train/recipe/sections.h"

namespace tailor {
namespace {

std::string stage_names() {
  std::string names;
  for (const auto& s : stages())
    names += (names.empty() ? "" : ", ") + s.name;
  return names;
}

}  // namespace

namespace {

// One step of a chain recipe: the recipe file with the overrides, as `tailor run` runs it (resolve,
// check the inputs, save the resolved recipe in its output_dir, run), in this process.
void run_chain_step(const std::string& step, const std::filesystem::path& file,
                    const std::vector<std::string>& overrides) {
  const std::string text = read_file(file);
  const Stage& stage = recipe_stage(text, file.string(), overrides);
  const ResolvedConfig config = stage.resolve(text, file.string(), overrides);
  stage.check_inputs(config);
  if (!stage.run) throw Error("chain", "stage '" + stage.name + "' is not available in this build");
  const std::filesystem::path out = config.get<std::string>("output_dir");
  std::cout << "[step] " << step << ": tailor run " << file.string();
  for (const auto& o : overrides)
    std::cout << " '" << o << "'";
  std::cout << "\n" << std::flush;
  write_resolved_recipe(config, out);
  const double t0 = steady_clock_seconds();
  stage.run(config);
  std::cout << "[step] " << step << " done in " << std::fixed << std::setprecision(1)
            << steady_clock_seconds() - t0 << " s -> " << out.string() << "\n"
            << std::flush;
}

}  // namespace

const std::vector<Stage>& stages() {
  static const std::vector<Stage> table = {
      // The runner is the last argument; an empty one makes `tailor run` report that the stage
      // is not available in this build.
      make_stage<SftRecipe>(
          "sft", "supervised fine-tuning: causal LM loss on text or responses", sft_recipe_schema(),
          resolve_sft_recipe, sft_recipe_from_config, check_sft_inputs,
          [](const SftRecipe& recipe) {
            // A collective waiting longer for the other ranks ends the job (a stuck rank).
            dist::set_collective_timeout(recipe.dist.collective_timeout_s);
            run_sft_stage(recipe);
          },
          /*data_parallel=*/true),
      make_stage<RewardRecipe>(
          "reward", "reward model on per-user preferences: Bradley-Terry or VPL (conditional VAE)",
          reward_recipe_schema(), resolve_reward_recipe, reward_recipe_from_config,
          check_reward_inputs, [](const RewardRecipe& recipe) { run_reward_stage(recipe); },
          /*data_parallel=*/false),
      make_stage<DpoRecipe>(
          "dpo", "per-user DPO: one LoRA adapter per user on one frozen base, trained together",
          dpo_recipe_schema(), resolve_dpo_recipe, dpo_recipe_from_config, check_dpo_inputs,
          [](const DpoRecipe& recipe) {
            dist::set_collective_timeout(recipe.dist.collective_timeout_s);
            run_dpo_stage(recipe);
          },
          /*data_parallel=*/true),
      make_stage<ElicitRecipe>(
          "elicit", "learn new users' preferences from a few answers: 20 Questions",
          elicit_recipe_schema(), resolve_elicit_recipe, elicit_recipe_from_config,
          check_elicit_inputs, [](const ElicitRecipe& recipe) { run_elicit_stage(recipe); },
          /*data_parallel=*/false),
      make_stage<ChainRecipe>(
          "chain", "elicit -> reward -> per-user DPO for new users, with the seed's baselines",
          chain_recipe_schema(), resolve_chain_recipe, chain_recipe_from_config, check_chain_inputs,
          [](const ChainRecipe& recipe) { run_chain_stage(recipe, run_chain_step); },
          /*data_parallel=*/false),
      make_stage<AgentRecipe>(
          "agent", "preference agents: a small model writes each user's rules, a large one follows",
          agent_recipe_schema(), resolve_agent_recipe, agent_recipe_from_config, check_agent_inputs,
          [](const AgentRecipe& recipe) { run_agent_stage(recipe, run_chain_step); },
          /*data_parallel=*/false),
  };
  return table;
}

const Stage& find_stage(const std::string& name) {
  for (const auto& s : stages())
    if (s.name == name) return s;
  throw Error("recipe", "stage: expected one of " + stage_names() + ", got \"" + name + "\"");
}

const Stage& recipe_stage(const std::string& yaml_text, const std::string& source,
                          const std::vector<std::string>& overrides) {
  const auto stage = peek_top_level(yaml_text, source, "stage", overrides);
  if (!stage) {
    throw Error("recipe", source + ": stage: missing required key (what to run; one of " +
                              stage_names() + ")");
  }
  std::vector<std::string> names;
  for (const auto& s : stages()) {
    if (s.name == stage->value) return s;
    names.push_back(s.name);
  }
  const std::string close = closest_match(stage->value, names);
  throw Error("recipe", stage->where + ": stage: expected one of " + stage_names() + ", got \"" +
                            stage->value + "\"" +
                            (close.empty() ? "" : "; did you mean '" + close + "'?"));
}

}  // namespace tailor
