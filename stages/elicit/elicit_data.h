// What the elicit stage asks about and evaluates on: every prompt's candidate completions (the
// backbone's samples, or a pool from a file), the backbone's features of each, the prompts split
// into question prompts and held-out prompts, and the labelled pairs (the multi-reward model's
// training pairs, each user's held-out pairs).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "judges/oracles.h"
#include "models/core/causal_lm.h"
#include "models/tokenizer/tokenizer.h"
#include "stages/elicit/elicit_recipe.h"

namespace tailor {

struct PromptCandidates {
  std::string prompt;
  std::vector<std::string> texts;  // distinct, non-empty, in sampling (or file) order
  int64_t first_row = 0;           // the feature row of texts[0]; texts[i] is first_row + i
};

struct ElicitData {
  std::vector<PromptCandidates> prompts;  // in data.path order
  std::vector<int64_t> question_prompts;  // indices into prompts: where questions come from
  std::vector<int64_t> heldout_prompts;   // the others: dev and held-out pairs
  at::Tensor features;                    // [rows, D] float32, the backbone's

  int64_t rows() const { return features.size(0); }
};

// The recipe's model with every parameter frozen, in eval mode; data.max_length must fit it.
CausalLM frozen_backbone(const ElicitRecipe& recipe);

// Reads or samples the candidates (cached in recipe.cache()/candidates.json for generated
// ones), computes or reads their features (recipe.cache()/features.h5) and splits the prompts
// by generate.seed (every seed of a sweep gets the same split). A prompt with fewer than two
// distinct candidates is dropped (logged). Refuses a recipe whose largest K exceeds the question
// prompts (each question has its own prompt).
ElicitData prepare_elicit_data(const ElicitRecipe& recipe, CausalLMImpl& backbone,
                               const Tokenizer& tokenizer, std::ostream& log);

// A pair of feature rows and a judge's verdict: +1 when `a` is preferred, -1 when `b` is.
struct RowPair {
  int64_t a = 0, b = 0;
  int label = 0;
};

// `per_prompt` random pairs of distinct candidates of each of `prompts` (fewer when a prompt has
// fewer pairs), drawn from a stream seeded by `seed`; no labels yet.
std::vector<RowPair> random_pairs(const ElicitData& data, const std::vector<int64_t>& prompts,
                                  int64_t per_prompt, uint64_t seed);

// The pairs with `weights`' verdicts (judges::mixture_prefers); ties are dropped.
std::vector<RowPair> label_pairs(const ElicitData& data, const std::vector<RowPair>& pairs,
                                 const judges::OracleWeights& weights);

// Every pair's verdict by each of `oracles`: [pairs, oracles] float32 of +1, -1, 0 (a tie).
at::Tensor oracle_verdicts(const ElicitData& data, const std::vector<RowPair>& pairs,
                           const std::vector<std::string>& oracles);

// The features of the question prompts' candidates, [rows, D]: what the reward models standardise
// by (held-out prompts' text stays unseen).
at::Tensor question_features(const ElicitData& data);

// The prompt and text of a feature row.
const std::string& prompt_of_row(const ElicitData& data, int64_t row);
const std::string& text_of_row(const ElicitData& data, int64_t row);

}  // namespace tailor
