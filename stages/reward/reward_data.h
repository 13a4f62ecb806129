// The reward stage's data, prepared from the recipe: token sequences of every response, the
// per-user training and held-out preference pairs, and each user's answers to the shared survey
// (the context pool VPL conditions on).
//
// Rated sources (synthetic, ultrafeedback): prompts are split into train and eval by a seeded
// draw fixed by users.seed, so every training seed of a sweep evaluates on the same prompts;
// simulated users label every pair of responses to a prompt (data/preferences/simulated_users.h);
// the survey is a set of train questions (prompt, response i, response j) that every user answers,
// chosen at random or by greedy information gain (data/preferences/survey.h). Pairs sources: the
// records' own users and labels; records are split per user, and each user's pool is a random
// subset of their own train pairs.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "data/store/jsonl_import.h"
#include "stages/reward/reward_recipe.h"

namespace tailor {

// One labelled comparison: response indices into RewardData::sequences.
struct PreferenceExample {
  int32_t user = 0;
  int64_t chosen = 0;
  int64_t rejected = 0;
};

struct RewardData {
  std::vector<std::string> user_names;
  std::vector<std::vector<int32_t>> sequences;  // per response: prompt ids ++ response ids
  std::vector<PreferenceExample> train, eval;
  // Per user: its answers to the survey questions as (chosen, rejected) response indices.
  std::vector<std::vector<std::pair<int64_t, int64_t>>> context_pool;
  int64_t survey_questions = 0;  // distinct questions in the survey
  int64_t num_users() const { return static_cast<int64_t>(user_names.size()); }
};

// Reads or generates the data the recipe names and prepares it as above; prints a summary to
// `log`. Sequences longer than data.max_length keep their last tokens (the response's end, where
// last-token pooling reads). Throws Error naming the recipe key or file when something is empty.
// `encode` gets each text with its field: "prompt", "response", or the pairs file's "chosen" /
// "rejected" (models/tokenizer/prompt_format.h: BOS on the prompt, responses as continuations).
RewardData prepare_reward_data(const RewardRecipe& recipe, const data::FieldEncodeFn& encode,
                               std::ostream& log);

// Everything the cached context embeddings (train/features/context_embeddings.h) depend on (model
// section and seed for a random init, data, users, survey, bf16 weights), as a hash string stored
// in the cache file.
std::string context_cache_key(const RewardRecipe& recipe);

}  // namespace tailor
