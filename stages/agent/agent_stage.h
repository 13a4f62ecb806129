// The preference-agents stage (stage: agent; seed 002, docs/agents.md), top to bottom:
//   1. the models: M_L and M_S from Hugging Face directories, each trained first by its SFT
//      recipe when missing (the bundled world);
//   2. the demonstrations: M_L samples data.candidates answers to each training task and each
//      user's oracle keeps the one it ranks best;
//   3. per demonstration: the intent (steps.intent, or the task), M_L's zero-shot answer
//      (steps.zero_shot, greedy), the rules (steps.rules, or the rule writer contrasting the two
//      answers) and the no-baseline rules (the user's answer alone) -> world.jsonl;
//   4. the adapters on M_S, all in one bank and trained in the same passes: each user's agent
//      (intent -> rules), no-baseline agent, naive fine-tune (intent -> the user's answer) and the
//      learning curve's smaller ones; each adapter's loss is the mean over its own tokens and its
//      gradient is clipped on its own, so each trains as it would alone; every adapter's loss
//      per step goes to metrics.jsonl;
//   5. the evaluation on held-out tasks: the agent writes the rules, M_L answers with them; the
//      same tasks answered by the seed's five baselines; each user's oracle judges the agent's
//      answers against each baseline's (win rates), every agent's against M_L's zero-shot for
//      every user (the cross-user matrix), and the curve's adapters -> summary.json, table.md.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "stages/agent/agent_recipe.h"

namespace tailor {

// Runs another stage's recipe file with overrides, as `tailor run` would (the registry provides
// it: the agent stage trains a missing model with its SFT recipe without including that stage).
using AgentStepRunner =
    std::function<void(const std::string& step, const std::filesystem::path& recipe,
                       const std::vector<std::string>& overrides)>;

void run_agent_stage(const AgentRecipe& recipe, const AgentStepRunner& run_step);

}  // namespace tailor
