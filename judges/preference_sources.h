// Where per-user DPO pairs come from when no one labelled them: the base samples several answers
// to each prompt and every simulated user (an oracle mixture or a reward model,
// judges/judge.h) picks pairs among them. The pairs are plain text, written as the {user,
// prompt, chosen, rejected} JSONL the stage reads anyway (data/preferences/user_pairs.h), so both
// data sources train the same way.
#pragma once

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "judges/judge.h"
#include "models/core/causal_lm.h"
#include "models/generation/generate.h"
#include "models/tokenizer/prompt_format.h"
#include "models/tokenizer/tokenizer.h"

namespace tailor {

struct TextPair {
  std::string user, prompt, chosen, rejected;
  bool chosen_truncated = false, rejected_truncated = false;  // cut at max_new_tokens
};

// One prompt's candidate answers from a file: data.source pool of the dpo stage, elicit's pool.
struct PoolPrompt {
  std::string prompt;
  std::vector<std::string> completions;  // in file order
};

// Lines {"prompt", "completions": [...]} (a completion is a string or UltraFeedback's
// {"response": ...}; UltraFeedback's "instruction" stands for "prompt"), or {"prompt", "chosen",
// "rejected"} (a labelled pair whose two answers become the candidates: its label is not read, the
// judge relabels it). Errors name the file, the line and the field; an empty file is an error.
std::vector<PoolPrompt> read_candidate_pool(const std::filesystem::path& file);

// The "prompt" field of every line of a JSONL file (other fields are ignored). Errors name the
// file and line: not a JSON object, no string "prompt", an empty prompt, no lines at all.
std::vector<std::string> read_prompts_jsonl(const std::filesystem::path& file);

// The pairs one user takes from each prompt's samples (samples[i] are prompts[i]'s; result i its
// pairs): the samples ranked by the user's judge (Judge::rank: an oracle mixture by Copeland
// votes, a reward model by reward; ties keep the sample order), then best vs worst, second best
// vs second worst, ... up to max_pairs, keeping a pair only when the judge strictly prefers the
// first. Empty samples (EOS first) take no part: a pair needs two responses. All prompts go to
// the judge in one call, so a reward model scores every sample once, in batches.
// `truncated`, when given, holds per prompt the texts of the samples cut at max_new_tokens; a
// pair's response that is one of them is marked truncated (it gets no EOS in training).
std::vector<std::vector<TextPair>> pick_pairs(
    const std::string& user, judges::Judge& judge, const std::vector<std::string>& prompts,
    const std::vector<std::vector<std::string>>& samples, int64_t max_pairs,
    const std::vector<std::set<std::string>>* truncated = nullptr);

// The text of `count` samples for each prompt (prompt-major: entry i * count + r), decoded
// without the closing EOS. Prompts are encoded as training encodes them (encode_prompt) and
// generated in batches of `batch_prompts`; sample r of prompt i draws from the random stream of
// (config.seed, first_prompt_index + i, r) (models/generation/generate.h), so a caller that
// splits its prompts over ranks gets the same samples as one process.
// `truncated`, when given, receives one flag per sample: true when it stopped at
// config.max_new_tokens instead of ending with EOS. `system`, when not empty, is a system text
// every prompt carries (encode_prompt: the system-prompt baseline).
std::vector<std::string> sample_completions(CausalLMImpl& model, const Tokenizer& tokenizer,
                                            PromptTemplate prompt_template,
                                            const std::vector<std::string>& prompts,
                                            GenerationConfig config, int64_t count,
                                            int64_t first_prompt_index, int64_t batch_prompts = 8,
                                            std::vector<bool>* truncated = nullptr,
                                            const std::string& system = "");

// The same with one system text per prompt (systems[i] for prompts[i]; "" = none), e.g. the
// rules a preference agent wrote for each task. sample_completions is this with every entry
// `system`.
std::vector<std::string> sample_completions_with_systems(
    CausalLMImpl& model, const Tokenizer& tokenizer, PromptTemplate prompt_template,
    const std::vector<std::string>& prompts, const std::vector<std::string>& systems,
    GenerationConfig config, int64_t count, int64_t first_prompt_index, int64_t batch_prompts,
    std::vector<bool>* truncated);

// JSONL lines {"user", "prompt", "chosen", "rejected"} (+ "chosen_truncated": true /
// "rejected_truncated": true for responses cut at max_new_tokens), written atomically.
void write_pairs_jsonl(const std::filesystem::path& file, const std::vector<TextPair>& pairs);

}  // namespace tailor
