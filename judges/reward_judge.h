// A simulated user judged by a tailor reward export (the reward stage's `export/`,
// docs/reward_modeling.md), for the per-user DPO stage (recipe key reward_users):
//
//   bt   an HF *ForSequenceClassification directory with one output (reward.kind bt), loaded as
//        `tailor score --model DIR` loads it (load_reward_model), in the dtype it was saved in
//        (saved_dtype: a bf16 export stays bf16, so a 7B judge takes 15 GB, not 29). One reward
//        for everyone. VPL and profile judges load their backbones in float32: their heads were
//        trained on float32 features.
//   profile  a user's profile.json from the elicit stage (judges/user_profile.h): the reward is
//        w . h(x, y) under the multi-reward export the profile names (or `model`, when the
//        export has moved; its id must match the profile's). One profile is one user.
//   vpl  export/backbone + vpl_heads.safetensors + vpl_config.json (reward.kind vae), loaded by
//        load_vpl_export. The reward depends on the user: `context` is a JSONL of that user's
//        answers {"prompt", "chosen", "rejected"} (other fields are ignored), embedded by VPL's
//        context encoder (embed_sequences: last-token hidden state) and encoded by the VPL
//        heads into q(z | context); the judge uses z = its mean, as the reward stage's
//        evaluation does.
//
// VPL's context encoder is the reward run's frozen *initial* backbone, which the export holds
// only when the run trained LoRA (export/backbone/adapter present: the base with the adapter off
// is that initial backbone). For an export whose backbone was trained in full (or merged),
// `context_encoder` must name the HF model the reward run started from (its model.path).
//
// Texts are tokenized as the reward stage tokenizes them (models/tokenizer/prompt_format.h, plain
// template): the prompt with the tokenizer's special tokens, then the completion as a
// continuation, no EOS; a sequence longer than the backbone's n_positions keeps its last tokens
// (the reward stage keeps the last data.max_length). Each distinct (prompt, completion) of a call
// is scored once, without gradients, in batches of `batch_size` right-padded sequences, sorted
// by length; the reward is the head's only output in float32, turned into a double. Two rewards
// tie when they differ by at most kRewardTieTolerance x max(1, |r_a|, |r_b|): float32 forward
// passes of the same text in batches of other shapes differ by about 1e-6 relative, so a smaller
// difference is not a preference.
//
// Under mpirun (options.comm with several ranks) the batches are fixed by the call's texts alone
// and dealt to the ranks in turn (batch b to rank b % world size); the rewards are gathered, so
// every rank gets the rewards one process computes (bit-identical on the same machine and thread
// count). Every rank must then make the same calls in the same order.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "judges/judge.h"

namespace tailor::dist {
class Communicator;
}

namespace tailor::judges {

constexpr double kRewardTieTolerance = 1e-5;

// One recipe entry of reward_users: {model: DIR, context: FILE, context_encoder: DIR} or
// {profile: FILE, model: DIR (optional)}.
struct RewardJudgeSpec {
  std::filesystem::path model;            // the reward export directory
  std::filesystem::path context;          // VPL: the user's answers (JSONL)
  std::filesystem::path context_encoder;  // VPL, optional: the reward run's initial backbone
  std::filesystem::path profile{};  // an elicit profile.json (last, so {model, context, ...} holds)
};

// The fields an entry may hold: model, context, context_encoder, profile.
const std::vector<std::string>& reward_judge_fields();

// The spec of one entry; `key` names it in errors ("reward_users.dave"), after `where` when given
// ("recipes/x.yaml:12"). Throws Error("recipe", "where: key.field: ...") for an unknown field
// (with a suggestion), an empty value, or neither model nor profile.
RewardJudgeSpec reward_judge_spec(const std::map<std::string, std::string>& fields,
                                  const std::string& key, const std::string& where = "");

enum class RewardExportKind { kBradleyTerry, kVpl, kProfile };

// The export an entry scores with: `model`, or for a profile without one, the reward model the
// profile names (read from the profile file; Error("recipe") naming `key` when it cannot be).
std::filesystem::path reward_judge_model(const RewardJudgeSpec& spec, const std::string& key);

// Checks the entry's inputs on disk without loading weights, errors naming `key` and the field:
// the model directory exists and is a reward export; a VPL export has a context file and a
// context encoder (its LoRA base, or context_encoder: a directory with config.json); a
// Bradley–Terry export takes no context or context_encoder; a profile is readable and names a
// multi-reward export (elicit's OUTPUT_DIR/export) that exists, and takes no context.
RewardExportKind check_reward_judge_inputs(const RewardJudgeSpec& spec, const std::string& key);

struct RewardJudgeOptions {
  int64_t batch_size = 16;             // sequences per forward pass
  dist::Communicator* comm = nullptr;  // split the batches over its ranks; null = this process
};

class RewardJudge : public Judge {
 public:
  // The reward of each (prompt, completion), as described above.
  std::vector<double> rewards(const std::vector<std::pair<std::string, std::string>>& items);

  std::vector<int> compare(const std::vector<Matchup>& matchups) override;
  // Completions ordered by reward, highest first (a stable sort: equal rewards keep their order).
  std::vector<Ranking> rank(const std::vector<Candidates>& groups) override;
  std::string description() const override;

  // VPL: the latent the judge decodes with (the posterior mean of the user's context), [L];
  // empty for Bradley–Terry. For tests and logs (at::Tensor kept out of this header).
  std::vector<double> latent() const;

  struct Impl;
  explicit RewardJudge(std::unique_ptr<Impl> impl);
  ~RewardJudge() override;

 private:
  std::unique_ptr<Impl> impl_;
};

// +1 when reward a beats reward b beyond the tolerance, -1 the reverse, 0 a tie.
int reward_prefers(double a, double b);

// How many reward exports this process holds loaded now (each shared by its judges), for tests.
int64_t live_reward_models();

// Loads one judge per spec (keys[i] names specs[i] in errors), after check_reward_judge_inputs.
// Specs naming the same export share one loaded model (VPL users usually share a model and differ
// by their context).
std::vector<std::unique_ptr<RewardJudge>> make_reward_judges(
    const std::vector<RewardJudgeSpec>& specs, const std::vector<std::string>& keys,
    const RewardJudgeOptions& options = {});

}  // namespace tailor::judges
