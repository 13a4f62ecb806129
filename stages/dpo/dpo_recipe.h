// The per-user DPO recipe (stage: dpo): one frozen base, one LoRA adapter per user, every user
// trained in the same pass (stages/dpo/dpo_stage.h). recipes/dpo_*.yaml are complete,
// commented examples; `tailor run --help` lists every key.
//
// Where the preference pairs come from (data.source):
//   pairs      data.path is a {user, prompt, chosen, rejected} JSONL: real per-user labels.
//   generated  data.path is a {prompt} JSONL; the base samples generate.completions answers per
//              prompt and each simulated user picks pairs among them. The pairs are written to
//              output_dir/pairs.jsonl, so a run shows exactly what it trained on.
// Simulated users are weighted mixtures of heuristic oracles (`users`, judges/oracles.h)
// or tailor reward exports (`reward_users`: Bradley–Terry, or VPL with the user's context;
// judges/reward_judge.h); a name may appear in only one of the two. They also judge the
// win-rate evaluation (eval.*); with data.source pairs, users without a judge get held-out
// margins only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "models/tokenizer/prompt_format.h"
#include "train/losses/dpo_loss.h"
#include "train/recipe/schema.h"
#include "train/recipe/sections.h"

namespace tailor {

// Where the pairs come from (data.source): a pairs file, or the base's samples judged by the
// simulated users.
enum class PairSource { kPairs, kGenerated, kPool };
const EnumNames<PairSource>& pair_source_names();  // pairs, generated, pool
const std::string& to_string(PairSource source);

// How a user picks pairs among one prompt's samples (generate.pick).
enum class PairPick { kBestWorst, kRandom };
const EnumNames<PairPick>& pair_pick_names();  // best_worst, random

// What an invalid answer (empty, or cut at max_new_tokens) does in the win rates (eval.invalid).
enum class InvalidAnswers { kLose, kResample };
const EnumNames<InvalidAnswers>& invalid_answers_names();  // lose, resample

struct DpoDataSection {
  PairSource source;
  std::filesystem::path path;      // pairs: pairs JSONL; generated: prompts JSONL
  PromptTemplate prompt_template;  // recipe key data.template
  int64_t max_length;              // tokens of prompt + response (+ EOS); longer ones are cut
  bool pad_to_max_length;          // every batch padded to max_length (one shape every step)
  double eval_fraction;            // held out per user (pairs) or of the prompts (generated)
  int64_t train_prompts;           // generated: train on this many prompts (seeded choice); 0 = all
};

// data.source generated: the base's own samples.
struct DpoGenerateSection {
  int64_t completions;       // K samples per prompt
  int64_t max_new_tokens;    // per sample
  double temperature;        // > 0
  int64_t top_k;             // 0 = off
  double top_p;              // 1 = off
  PairPick pick;             // best_worst: extremes of each user's ranking; random: samples 0, 1
  int64_t pairs_per_prompt;  // most pairs each user takes from one prompt's K samples
  int64_t seed;              // sampling seed (fixed across training seeds)
  int64_t rounds;            // on-policy rounds: later rounds judge the adapters' own samples
};

struct DpoLossSection {
  DpoLossType type;
  double beta;                // DPO's beta (IPO's tau)
  double label_smoothing;     // conservative DPO (sigmoid only); 0 = plain DPO
  double sft_weight;          // TRL's rpo_alpha: + weight x NLL per token of the chosen response
  bool precompute_reference;  // reference log-probs once per distinct pair before training
};

struct DpoTrainSection {
  int64_t max_steps;
  int64_t pairs_per_user;    // pairs of every user in one optimizer step (over all ranks)
  int64_t micro_batch_size;  // pairs per forward/backward on one rank; 0 = a rank's whole step
  Precision precision;       // fp32 | bf16_autocast | bf16
  int64_t log_every;
  int64_t eval_every;        // held-out margins every N steps; 0 = only at the end
  int64_t checkpoint_every;  // 0 = only at the end
  int64_t keep_checkpoints;
  bool resume;
};

// The seed's win rate on held-out prompts, judged by each user (needs `users`).
struct DpoEvalSection {
  int64_t prompts;      // held-out prompts; 0 = all
  int64_t completions;  // samples per prompt from each adapter and from the base
  int64_t max_new_tokens;
  double temperature;  // 0 = greedy
  int64_t top_k;
  double top_p;
  int64_t seed;            // the same seeds for the adapter's and the base's samples
  bool cross_user;         // also judge every adapter by every user (the cross-user matrix)
  InvalidAnswers invalid;  // empty / cut-off answers: count as losses, or sample them again
  int64_t resample_tries;  // eval.invalid resample: new draws before an answer counts as invalid
};

struct DpoDistSection {
  double collective_timeout_s;  // 0 = wait forever
  int64_t zero_stage;           // 0 = replicated adapters and AdamW state; 1, 2 = sharded (ZeRO)
};

struct DpoRecipe {
  std::string stage;  // "dpo"
  int64_t seed;
  std::filesystem::path output_dir;
  std::filesystem::path tokenizer;
  ModelSection model;
  LoraSection lora;
  WeightTable users;         // user -> {oracle name: weight}
  StringTable reward_users;  // user -> {model: DIR, context: FILE, context_encoder: DIR} or
                             //         {profile: FILE}
  WeightTable eval_users;    // the win rates' judges (oracle mixtures); empty = the training judges
  StringTable system_prompt_rows;  // row -> {text: ...}: the base with a system text, judged
  DpoDataSection data;
  DpoGenerateSection generate;
  DpoLossSection dpo;
  OptimizerSection optimizer;
  ScheduleSection schedule;
  DpoTrainSection train;
  DpoEvalSection eval;
  DpoDistSection dist;
  ExportSection export_;
};

// The judge of `adapter`'s own win rate. With eval_users: the entry named `adapter`, else the
// entry named by the part of the adapter's name before its last '@' ("length@20q" -> "length":
// several methods' adapters for one user); "" when there is none. Without eval_users: the
// adapter's training judge (its own name) when it has one (users or reward_users), else "".
std::string eval_judge_of(const DpoRecipe& recipe, const std::string& adapter);

// Whether the judge that picked `adapter`'s training pairs also judges with `eval_judge` (an
// eval_users name, or a training user's name when eval_users is empty): true without eval_users,
// and for an oracle user whose mixture equals the eval user's.
bool eval_judge_is_training_judge(const DpoRecipe& recipe, const std::string& adapter,
                                  const std::string& eval_judge);

const Schema<DpoRecipe>& dpo_recipe_schema();
ResolvedConfig resolve_dpo_recipe(const std::string& yaml_text, const std::string& source,
                                  const std::vector<std::string>& overrides = {});
DpoRecipe dpo_recipe_from_config(const ResolvedConfig& config);
DpoRecipe load_dpo_recipe(const std::filesystem::path& file,
                          const std::vector<std::string>& overrides = {});
void check_dpo_inputs(const DpoRecipe& recipe);
// 16 hex digits identifying the run a checkpoint belongs to: the resolved recipe with
// train.resume false (a resumed run is the same run).
std::string dpo_recipe_hash(const DpoRecipe& recipe);

}  // namespace tailor
