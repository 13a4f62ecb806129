#include "stages/reward/reward_recipe.h"

#include <cmath>
#include <utility>

#include "common/atomic_file.h"
#include "common/error.h"
#include "train/recipe/sections.h"

namespace tailor {
namespace fs = std::filesystem;

const EnumNames<RewardDataSource>& reward_data_source_names() {
  static const EnumNames<RewardDataSource> table = {
      {"synthetic", RewardDataSource::kSynthetic},
      {"ultrafeedback", RewardDataSource::kUltrafeedback},
      {"pairs", RewardDataSource::kPairs}};
  return table;
}
const EnumNames<RewardKind>& reward_kind_names() {
  static const EnumNames<RewardKind> table = {{"bt", RewardKind::kBt}, {"vae", RewardKind::kVae}};
  return table;
}
const EnumNames<BatchSampling>& batch_sampling_names() {
  static const EnumNames<BatchSampling> table = {{"uniform", BatchSampling::kUniform},
                                                 {"adaptive", BatchSampling::kAdaptive}};
  return table;
}
const std::string& to_string(RewardDataSource v) {
  return enum_name(reward_data_source_names(), v);
}
const std::string& to_string(RewardKind v) {
  return enum_name(reward_kind_names(), v);
}
const std::string& to_string(BatchSampling v) {
  return enum_name(batch_sampling_names(), v);
}

namespace {

using Names = std::vector<std::string>;

Schema<RewardRecipe> build_reward_schema() {
  Schema<RewardRecipe> s;
  s.choice(TAILOR_MEMBER(stage), Names{"reward"})
      .doc("what to run: reward = reward model on per-user preferences (Bradley-Terry or VPL)")
      .required();
  s.key(TAILOR_MEMBER(seed))
      .doc("seeds initialization, dropout, data order and contexts; same seed = same run")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(output_dir))
      .doc("run directory: recipe.yaml, metrics.jsonl, summary.json, export/")
      .required();
  s.key(TAILOR_MEMBER(tokenizer))
      .doc("tokenizer directory: vocab.json + merges.txt, or tokenizer.json")
      .default_value(fs::path("assets/tokenizers/gpt2"));
  add_model_keys(s);
  add_lora_keys(s);

  s.section("data", "preference data: rated responses (simulated users) or per-user pairs");
  s.choice(TAILOR_MEMBER(data.source), reward_data_source_names())
      .doc(
          "synthetic: the bundled generated benchmark (UltraFeedback schema); ultrafeedback: "
          "data.path in the raw or binarized JSONL shape, or a rated .h5 from `tailor data "
          "import`; pairs: {prompt, chosen, rejected, user} JSONL with real per-user labels")
      .default_value(RewardDataSource::kSynthetic);
  s.key(TAILOR_MEMBER(data.path))
      .doc("input file for data.source ultrafeedback or pairs")
      .default_value(fs::path());
  s.key(TAILOR_MEMBER(data.synthetic_prompts))
      .doc("prompts the synthetic benchmark generates (4 responses each)")
      .default_value(600)
      .at_least(4);
  s.key(TAILOR_MEMBER(data.synthetic_seed))
      .doc("seed of the synthetic benchmark; fixed so every training seed sees the same data")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(data.max_prompts))
      .doc("use a seeded subset of this many prompts; 0 = all")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(data.max_length))
      .doc("tokens of prompt + response; longer sequences keep their last tokens")
      .default_value(128)
      .at_least(2);
  s.key(TAILOR_MEMBER(data.eval_fraction))
      .doc("fraction of prompts held out for evaluation (never trained on or surveyed)")
      .default_value(0.2)
      .above(0)
      .below(1);

  s.section("users", "who prefers what: simulated users on the aspect simplex, or the data's");
  s.choice(TAILOR_MEMBER(users.kind), data::user_kind_names())
      .doc(
          "two_conflict: helpfulness-only vs honesty-only; random: Dirichlet(1) users + the "
          "uniform one; clustered: the seed report's three clusters + uniform; uniform: one "
          "user; from_data: the `user` field of data.source pairs")
      .default_value(data::UserKind::kTwoConflict);
  s.key(TAILOR_MEMBER(users.count)).doc("simulated users").default_value(2).at_least(1);
  s.choice(TAILOR_MEMBER(users.label), data::label_mode_names())
      .doc("argmax: the higher weighted rating wins (ties dropped); bradley_terry: sampled")
      .default_value(data::LabelMode::kArgmax);
  s.key(TAILOR_MEMBER(users.temperature))
      .doc("temperature of bradley_terry labels: P(a > b) = sigmoid((s_a - s_b) / T)")
      .default_value(1.0)
      .above(0);
  s.key(TAILOR_MEMBER(users.conflict_only))
      .doc("keep only pairs on which the users disagree (the seed report's conflict setting)")
      .default_value(true);
  s.key(TAILOR_MEMBER(users.seed))
      .doc("seed of user weights and sampled labels (fixed across training seeds)")
      .default_value(0)
      .at_least(0);

  s.section("reward", "which reward model");
  s.choice(TAILOR_MEMBER(reward.kind), reward_kind_names())
      .doc("bt: one Bradley-Terry reward for everyone; vae: VPL conditional VAE (per-user z)")
      .default_value(RewardKind::kVae);

  s.section("vae", "VPL: context encoder, latent, decoder and their losses (reward.kind vae)");
  s.key(TAILOR_MEMBER(vae.latent_dim)).doc("latent width L").default_value(512).at_least(1);
  s.key(TAILOR_MEMBER(vae.hidden_dim))
      .doc("hidden width of the pair encoder and decoder MLPs")
      .default_value(512)
      .at_least(1);
  s.key(TAILOR_MEMBER(vae.context_size))
      .doc("context pairs per query, drawn from the user's survey answers")
      .default_value(8)
      .at_least(1);
  s.key(TAILOR_MEMBER(vae.survey_size))
      .doc("shared survey questions every user answers (the context pool)")
      .default_value(100)
      .at_least(1);
  s.choice(TAILOR_MEMBER(vae.survey_selection), data::survey_selection_names())
      .doc("how survey questions are chosen: random, or greedy information gain over users")
      .default_value(data::SurveySelection::kRandom);
  s.key(TAILOR_MEMBER(vae.kl_beta))
      .doc("weight of KL(q(z | context) || N(0, I))")
      .default_value(1.0e-4)
      .at_least(0);
  s.choice(TAILOR_MEMBER(vae.kl_schedule), kl_schedule_names())
      .doc("KL weight ramp from 0 to kl_beta over kl_anneal_steps (constant = no ramp)")
      .default_value(KlSchedule::kCosine);
  s.key(TAILOR_MEMBER(vae.kl_anneal_steps))
      .doc("steps of the KL ramp; 0 = train.max_steps")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(vae.contrastive))
      .doc("coefficient of the contrastive loss on latent means (0.5 in the seed report); 0 = off")
      .default_value(0.0)
      .at_least(0);
  s.key(TAILOR_MEMBER(vae.logvar_clamp))
      .doc("clamp the log-variance to [-c, c] (1 in the reference code); 0 = no clamp")
      .default_value(1.0)
      .at_least(0);

  add_optimizer_keys(s);
  add_schedule_keys(s);

  s.section("train", "the training loop");
  s.key(TAILOR_MEMBER(train.max_steps)).doc("optimizer steps").default_value(500).at_least(1);
  s.key(TAILOR_MEMBER(train.batch_size))
      .doc(
          "preference pairs per forward/backward pass; an optimizer step takes batch_size x "
          "grad_accum pairs")
      .default_value(32)
      .at_least(1);
  s.key(TAILOR_MEMBER(train.grad_accum))
      .doc(
          "micro-batches of batch_size pairs per optimizer step (gradient accumulation); the "
          "step's loss and gradient are those of one batch of batch_size x grad_accum pairs")
      .default_value(1)
      .at_least(1);
  // The reward stage trains in float32 or bfloat16; it does not offer fp64.
  static const EnumNames<Precision> precisions = {{"fp32", Precision::kFp32},
                                                  {"bf16_autocast", Precision::kBf16Autocast},
                                                  {"bf16", Precision::kBf16}};
  s.choice(TAILOR_MEMBER(train.precision), precisions)
      .doc(
          "fp32 | bf16_autocast (fp32 weights, bf16 matmuls) | bf16 (bf16 weights, fp32 master "
          "copies in the optimizer); losses are computed in fp32")
      .default_value(Precision::kFp32);
  s.choice(TAILOR_MEMBER(train.sampling), batch_sampling_names())
      .doc(
          "uniform: pairs in shuffled epochs; adaptive: continual sampling, one user at a time "
          "in training with A:B:C = to-train : training : finished")
      .default_value(BatchSampling::kUniform);
  s.key(TAILOR_MEMBER(train.adaptive_ratio))
      .doc("samples from groups A : B : C in each adaptive phase (whole numbers)")
      .default_value(std::vector<double>{1, 2, 4})
      .at_least(0);
  s.key(TAILOR_MEMBER(train.steps_per_phase))
      .doc("steps of each adaptive phase (one per user); 0 = max_steps / users")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(train.adaptive_order))
      .doc(
          "user names in the order they enter group B, e.g. [user1, user0]; [] = the data's "
          "order (user0, user1, ...)")
      .default_value(std::vector<std::string>{});
  s.choice(TAILOR_MEMBER(train.grad_surgery), grad_surgery_names())
      .doc("combine per-user gradients: none (sum), pcgrad (project conflicts), mgda (min-norm)")
      .default_value(GradSurgery::kNone);
  s.key(TAILOR_MEMBER(train.log_every))
      .doc("steps between progress lines and metrics.jsonl records")
      .default_value(10)
      .at_least(1);
  s.key(TAILOR_MEMBER(train.eval_every))
      .doc("steps between per-user evaluations; 0 = only at the end")
      .default_value(25)
      .at_least(0);
  s.key(TAILOR_MEMBER(train.eval_pairs_per_user))
      .doc("held-out pairs evaluated per user; 0 = all")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(train.converge_accuracy))
      .doc("held-out accuracy at which a run counts as converged (summary.json, tailor sweep)")
      .default_value(0.85)
      .above(0)
      .at_most(1);
  s.key(TAILOR_MEMBER(train.checkpoint_every))
      .doc(
          "steps between checkpoints in output_dir/checkpoints (and one at the end); 0 = no "
          "checkpoints")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(train.keep_checkpoints))
      .doc("most recent checkpoints kept on disk")
      .default_value(2)
      .at_least(1);
  s.key(TAILOR_MEMBER(train.resume))
      .doc(
          "continue from the latest checkpoint in output_dir (bit-identical to an uninterrupted "
          "run); none there = start from step 0")
      .default_value(false);

  s.section("export", "Hugging Face export at the end of the run, into output_dir/export");
  s.key(
       "export.enabled", [](auto& r) -> auto& { return r.export_.enabled; })
      .doc(
          "bt: a GPT2ForSequenceClassification directory; vae: the backbone plus the VPL heads "
          "(vpl_heads.safetensors)")
      .default_value(true);
  s.key(
       "export.merge_lora", [](auto& r) -> auto& { return r.export_.merge_lora; })
      .doc("export the merged model instead of base + PEFT adapter")
      .default_value(false);
  s.spec().check_complete();
  return s;
}

void check_reward_rules(const ResolvedConfig& c) {
  check_model_rules(c);
  using data::UserKind;
  const auto source = c.get("data.source", reward_data_source_names());
  const std::string path = c.get<std::string>("data.path");
  if (source != RewardDataSource::kSynthetic && path.empty())
    c.fail("data.path", "required when data.source is '" + to_string(source) + "'");
  const auto users = c.get("users.kind", data::user_kind_names());
  if ((users == UserKind::kFromData) != (source == RewardDataSource::kPairs))
    c.fail("users.kind",
           users == UserKind::kFromData
               ? "from_data needs data.source: pairs (labels with a user field)"
               : "data.source pairs carries its own users; set users.kind: from_data");
  const int64_t count = c.get<int64_t>("users.count");
  if (users == UserKind::kTwoConflict && count != 2)
    c.fail("users.count", "two_conflict has exactly 2 users, got " + std::to_string(count));
  if (c.get<bool>("users.conflict_only") && users != UserKind::kFromData && count < 2)
    c.fail("users.conflict_only", "needs at least 2 users to disagree; set it to false");
  if (users == UserKind::kUniform && count != 1)
    c.fail("users.count", "uniform is a single user, got " + std::to_string(count));
  const auto ratio = c.get<std::vector<double>>("train.adaptive_ratio");
  bool positive = false;
  for (double r : ratio) {
    if (r != std::floor(r)) c.fail("train.adaptive_ratio", "expected whole numbers");
    positive = positive || r > 0;
  }
  if (ratio.size() != 3 || !positive)
    c.fail("train.adaptive_ratio", "expected three whole numbers [A, B, C], not all 0");
  if (c.get<bool>("export.merge_lora") && !c.get<bool>("lora.enabled"))
    c.fail("export.merge_lora", "needs lora.enabled: true (there is no adapter to merge)");
}

}  // namespace

const Schema<RewardRecipe>& reward_recipe_schema() {
  static const Schema<RewardRecipe> schema = build_reward_schema();
  return schema;
}

ResolvedConfig resolve_reward_recipe(const std::string& yaml_text, const std::string& source,
                                     const std::vector<std::string>& overrides) {
  ResolvedConfig config =
      resolve_config(reward_recipe_schema().spec(), yaml_text, source, overrides);
  check_reward_rules(config);
  return config;
}

RewardRecipe reward_recipe_from_config(const ResolvedConfig& config) {
  check_reward_rules(config);
  return reward_recipe_schema().bind(config);
}

RewardRecipe load_reward_recipe(const fs::path& file, const std::vector<std::string>& overrides) {
  return reward_recipe_from_config(
      resolve_reward_recipe(read_file(file), file.string(), overrides));
}

std::string reward_recipe_hash(const RewardRecipe& recipe) {
  RewardRecipe same_run = recipe;
  same_run.train.resume = false;
  return reward_recipe_schema().unbind(same_run, "(recipe)").hash();
}

void check_reward_inputs(const RewardRecipe& r) {
  if (r.data.source != RewardDataSource::kSynthetic) require_file("data.path", r.data.path);
  require_directory("tokenizer", r.tokenizer, {{"vocab.json", "merges.txt"}, {"tokenizer.json"}});
  if (r.model.init == ModelInit::kPretrained)
    require_directory("model.path", r.model.path, {{"config.json"}});
  if (fs::exists(r.output_dir) && !fs::is_directory(r.output_dir))
    throw Error("recipe",
                "output_dir: " + r.output_dir.string() + " exists and is not a directory");
}

}  // namespace tailor
