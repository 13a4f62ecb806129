// The chain stage (stages/chain/chain_recipe.h), the seed's Table 2 as one run:
//   1. the base (SFT), trained once into base_dir;
//   2. each user answers K questions for 20 Questions and for PReF (two elicit runs); their
//      profiles are the only trace of the users that reaches step 3;
//   3. one dpo run: per user an adapter whose pairs the 20 Questions profile picks (<user>@20q),
//      one by the PReF profile (<user>@pref), one by the user's oracle itself (<user>@oracle, the
//      upper bound), and the system-prompt rows (<user>@system, the base with the instruction);
//   4. one dpo run per baseline n: n prompts, two random samples each, labelled by the oracle;
//   5. the table: one row per method, one column per user, every number judged by the users'
//      own oracles (the dpo runs' eval_users); summary.json and table.md in output_dir.
// One process; each step is the named recipe with the overrides that join the steps.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "stages/chain/chain_recipe.h"

namespace tailor {

// Runs one step: the recipe file with the overrides, as `tailor run FILE OVERRIDES...` does. The
// stage registry (stages/registry.cpp), which knows every stage, provides it: a stage folder
// does not reach the other stages itself.
using ChainStepRunner =
    std::function<void(const std::string& step, const std::filesystem::path& recipe,
                       const std::vector<std::string>& overrides)>;

void run_chain_stage(const ChainRecipe& recipe, const ChainStepRunner& run_step);

}  // namespace tailor
