// The reward-model recipe (stage: reward): a Bradley–Terry reward model or the VPL conditional VAE
// reward model, trained on preferences of several (real or simulated) users. recipes/rm_*.yaml
// are complete, commented examples; `tailor run --help` lists every key.
//
// Data flows: data.source gives responses with per-aspect ratings (synthetic benchmark or
// UltraFeedback) or per-user labelled pairs; users.* turns ratings into simulated users and their
// labels; a survey of shared questions gives each user's context pairs (vae.*); train.* chooses
// sampling, gradient surgery, gradient accumulation, precision and checkpoints.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/preferences/simulated_users.h"
#include "data/preferences/survey.h"
#include "train/losses/preference_losses.h"
#include "train/optim/grad_surgery.h"
#include "train/recipe/schema.h"
#include "train/recipe/sections.h"

namespace tailor {

// Where the preferences come from (data.source): the bundled synthetic benchmark, UltraFeedback
// ratings (both labelled by simulated users), or per-user pairs.
enum class RewardDataSource { kSynthetic, kUltrafeedback, kPairs };
const EnumNames<RewardDataSource>& reward_data_source_names();
// Which reward model (reward.kind): one Bradley-Terry reward, or VPL's conditional VAE.
enum class RewardKind { kBt, kVae };
const EnumNames<RewardKind>& reward_kind_names();
// How a step's pairs are drawn (train.sampling): uniform epochs, or adaptive continual sampling.
enum class BatchSampling { kUniform, kAdaptive };
const EnumNames<BatchSampling>& batch_sampling_names();
const std::string& to_string(RewardDataSource v);
const std::string& to_string(RewardKind v);
const std::string& to_string(BatchSampling v);

struct RewardDataSection {
  RewardDataSource source;
  std::filesystem::path
      path;                   // ultrafeedback: JSONL (raw or binarized) or rated .h5; pairs: .jsonl
  int64_t synthetic_prompts;  // synthetic: prompts to generate
  int64_t synthetic_seed;     // synthetic: generator seed (the benchmark stays fixed across seeds)
  int64_t max_prompts;        // 0 = all; otherwise a seeded subset of the prompts
  int64_t max_length;         // tokens of prompt + response; longer ones keep their end
  double eval_fraction;       // prompts held out for evaluation
};

struct UsersSection {
  data::UserKind kind;
  int64_t count;  // users to simulate
  data::LabelMode label;
  double temperature;  // bradley_terry label temperature
  bool conflict_only;  // keep only pairs the users disagree on
  int64_t seed;        // user weights and sampled labels (fixed across training seeds)
};

struct RewardMethodSection {
  RewardKind kind;
};

struct VaeSection {
  int64_t latent_dim;
  int64_t hidden_dim;
  int64_t context_size;  // C context pairs per query
  int64_t survey_size;   // shared survey questions (per-user context pool)
  data::SurveySelection survey_selection;
  double kl_beta;
  KlSchedule kl_schedule;
  int64_t kl_anneal_steps;  // 0 = train.max_steps
  double contrastive;       // coefficient of the contrastive latent loss; 0 = off
  double logvar_clamp;
};

struct RewardTrainSection {
  int64_t max_steps;
  int64_t batch_size;   // preference pairs per forward/backward pass (micro-batch)
  int64_t grad_accum;   // micro-batches per optimizer step: a step is batch_size x grad_accum pairs
  Precision precision;  // fp32 | bf16_autocast | bf16
  BatchSampling sampling;
  std::vector<double> adaptive_ratio;       // A : B : C samples per phase
  int64_t steps_per_phase;                  // 0 = max_steps / users
  std::vector<std::string> adaptive_order;  // users in phase order; [] = data order
  GradSurgery grad_surgery;
  int64_t log_every;
  int64_t eval_every;           // 0 = only at the end
  int64_t eval_pairs_per_user;  // 0 = all
  double converge_accuracy;     // eval accuracy that counts as converged
  int64_t checkpoint_every;     // 0 = no checkpoints; else every N steps and at the end
  int64_t keep_checkpoints;
  bool resume;  // continue from output_dir's latest checkpoint
};

struct RewardRecipe {
  std::string stage;  // "reward"
  int64_t seed;
  std::filesystem::path output_dir;
  std::filesystem::path tokenizer;
  ModelSection model;
  LoraSection lora;
  RewardDataSection data;
  UsersSection users;
  RewardMethodSection reward;
  VaeSection vae;
  OptimizerSection optimizer;
  ScheduleSection schedule;
  RewardTrainSection train;
  ExportSection export_;
};

const Schema<RewardRecipe>& reward_recipe_schema();
ResolvedConfig resolve_reward_recipe(const std::string& yaml_text, const std::string& source,
                                     const std::vector<std::string>& overrides = {});
RewardRecipe reward_recipe_from_config(const ResolvedConfig& config);
RewardRecipe load_reward_recipe(const std::filesystem::path& file,
                                const std::vector<std::string>& overrides = {});
void check_reward_inputs(const RewardRecipe& recipe);
// Pairs per optimizer step: train.batch_size x train.grad_accum.
inline int64_t pairs_per_step(const RewardRecipe& recipe) {
  return recipe.train.batch_size * recipe.train.grad_accum;
}
// 16 hex digits identifying the run a checkpoint belongs to: the resolved recipe with
// train.resume set to false (a resumed run is the same run).
std::string reward_recipe_hash(const RewardRecipe& recipe);

}  // namespace tailor
