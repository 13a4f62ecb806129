// The chain recipe (stage: chain): the 20 Questions seed's Table 2 on one bundled world. New users
// answer a handful of questions; their answers become a reward (20 Questions' profile, PReF's
// profile); that reward picks each user's DPO pairs among the base's samples; and only the users'
// own oracles, which trained nothing after their answers, judge the win rates. Beside the
// chains, the seed's baselines: a system prompt, DPO on n oracle-labelled pairs, and DPO on
// oracle-picked pairs (the upper bound). recipes/chain_demo.yaml is the complete example.
//
// The chain runs other stages' recipes (each a complete recipe of its own, readable alone) with
// the overrides that join them: the seed, output directories under output_dir, the base's
// export as model.path, the users, the profiles as reward_users, the users as eval_users.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "train/recipe/schema.h"

namespace tailor {

struct ChainRecipe {
  std::string stage;  // "chain"
  int64_t seed;
  std::filesystem::path output_dir;
  std::filesystem::path base_recipe;  // the base's SFT recipe
  std::filesystem::path base_dir;     // where the base trains (shared by every seed: trained once)
  WeightTable users;                  // the new users: respondents and, as eval_users, the judges
  StringTable system_prompts;  // user -> {text: the instruction of the system-prompt baseline}
  std::filesystem::path twenty_questions;  // elicit recipe (method twenty_questions)
  int64_t twenty_questions_answers;        // K
  std::filesystem::path pref;              // elicit recipe (method pref)
  int64_t pref_answers;                    // K
  std::filesystem::path dpo;               // dpo recipe: the chains, the oracle row, the prompts
  std::filesystem::path baseline;          // dpo recipe: baseline DPO
  std::vector<double> baseline_prompts;    // n of each baseline run
  int64_t baseline_epochs;
};

const Schema<ChainRecipe>& chain_recipe_schema();
ResolvedConfig resolve_chain_recipe(const std::string& yaml_text, const std::string& source,
                                    const std::vector<std::string>& overrides = {});
ChainRecipe chain_recipe_from_config(const ResolvedConfig& config);
void check_chain_inputs(const ChainRecipe& recipe);

}  // namespace tailor
