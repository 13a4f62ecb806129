// Where a DPO run's pairs come from when nobody labelled them (data.source generated): a model
// samples generate.completions answers to every prompt and each user's judge picks pairs among
// them (judges/preference_sources.h). Round 1 samples the base; with generate.rounds > 1 every
// later round samples each user's adapter as trained so far (iterative, on-policy DPO). Each
// round's pairs are written to a JSONL before it trains, so a run shows what it trained on and a
// resumed run reads the same pairs back.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "judges/judge.h"
#include "judges/preference_sources.h"
#include "models/generation/generate.h"
#include "stages/dpo/dpo_context.h"

namespace tailor {

// Sampled answers, prompt-major (generate.completions per prompt), and whether each stopped at
// generate.max_new_tokens instead of EOS.
struct Samples {
  std::vector<std::string> texts;
  std::vector<bool> truncated;
};

// The sampling settings of generate.*; round r (0-based) samples with seed generate.seed + r.
GenerationConfig sampling_config(const DpoRecipe& recipe, int64_t round);

// generate.completions samples of every prompt from ctx.model as routed now (models/core/
// adapter_bank.h), and whether each stopped at max_new_tokens. Each rank samples a contiguous
// share of the prompts; the random streams depend on the prompt's index only, so the samples do
// not depend on the number of ranks. `model_name` is for the log.
Samples sample_answers(const DpoContext& ctx, const std::vector<std::string>& prompts,
                       const GenerationConfig& config, const std::string& model_name);

// Whether `user` has a judge (in the recipe's `users` or `reward_users`).
bool has_judge(const DpoRecipe& recipe, const std::string& user);

// Visits the judge of each of `users`: a reward model is as large as a base, so one export at a
// time is loaded beside the base and dropped after its users. Reward judges split their scoring
// over the ranks and gather it: every rank gets one process's verdicts.
void for_each_judge(const DpoContext& ctx, const std::vector<std::string>& users,
                    const std::function<void(const std::string&, judges::Judge&)>& use);

// Each prompt's answers (any number per prompt) and, per prompt, those cut at max_new_tokens.
struct PromptAnswers {
  std::vector<std::vector<std::string>> texts;
  std::vector<std::set<std::string>> cut;
};

// Every user's pairs among its own answers to the prompts (answers_of(user)), picked by
// generate.pick, prompt-major with the users in the order given; logs the prompts where a user
// found no pair.
std::vector<TextPair> pick_all_pairs(
    const DpoContext& ctx, const std::vector<std::string>& users,
    const std::vector<std::string>& prompts,
    const std::function<const PromptAnswers&(const std::string& user)>& answers_of);
// The same from sampled answers (samples_of(user): generate.completions per prompt).
std::vector<TextPair> pick_all_pairs(
    const DpoContext& ctx, const std::vector<std::string>& users,
    const std::vector<std::string>& prompts,
    const std::function<const Samples&(const std::string& user)>& samples_of);

// generate.pick random: the pairs `user` takes from each prompt's answers: the first two (two
// independent draws, or a pool line's first two), the one the judge prefers chosen; a tie, an
// empty answer or two equal answers give no pair. The seed's baseline DPO.
std::vector<std::vector<TextPair>> pick_random_pairs(const std::string& user, judges::Judge& judge,
                                                     const std::vector<std::string>& prompts,
                                                     const PromptAnswers& answers);

// The prompts of data.path split into training and held-out ones; generate.seed fixes the
// split, so it stays the same across training seeds. With data.train_prompts n > 0, only n of
// the training prompts are kept, chosen by `seed`.
struct PromptSplit {
  std::vector<std::string> train, eval;
};
PromptSplit split_prompts(const DpoRecipe& recipe, const std::vector<std::string>& prompts);

// generate.rounds: round r (0-based) trains steps start(r) + 1 .. start(r + 1).
struct Rounds {
  int64_t max_steps = 1;
  int64_t count = 1;
  int64_t start(int64_t round) const { return round * max_steps / count; }
  // The round of the step after `step` completed steps.
  int64_t at(int64_t step) const;
};

// run_dir/pairs.jsonl for round 0, run_dir/pairs_round_<r + 1>.jsonl for round r.
std::filesystem::path round_pairs_file(const std::filesystem::path& run_dir, int64_t round);

}  // namespace tailor
