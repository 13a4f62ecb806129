// The per-user DPO stage: what per-user DPO adds to the shared training loop
// (train/loop/training_loop.h). One frozen base, one LoRA adapter per user in a bank
// (models/core/adapter_bank.h); the reference policy is the base with the adapters off.
//   - The pairs (stages/dpo/dpo_pairs.h) come from a per-user JSONL, or from the base's samples
//     judged by the recipe's users (stages/dpo/pair_sources.h); with generate.rounds > 1 each
//     later round re-samples them from every user's adapter.
//   - A step: every user takes train.pairs_per_user pairs, all users' rows mixed in the same
//     passes over the base (train/per_user/dpo_step.h); each user's gradient is clipped on its
//     own.
//   - finish(): held-out margins, win rates against the base and the cross-user matrix
//     (stages/dpo/dpo_eval.h), one PEFT adapter per user, summary.json.
//
// Data parallel: every rank draws the same pairs from the per-user samplers and takes its share
// of each user's; a pair weighs 1 / pairs_per_user in the loss wherever it runs, so the summed
// gradients are one process's on the same global step. dist.zero_stage 0: every rank keeps all
// adapters and their AdamW state (replicated), gradients summed over the ranks. 1 and 2: the ZeRO
// engine takes over the adapters (the bank parameters; the frozen base stays a plain replicated
// model), each rank keeping the AdamW state of its 1/N chunk; per-user clipping sums each user's
// squares over the owned gradient chunks and all-reduces the [users] vector. Checkpoints are then
// sharded.
#include "stages/dpo/dpo_stage.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <torch/torch.h>

#include "common/atomic_file.h"
#include "common/device.h"
#include "common/error.h"
#include "data/preferences/user_pairs.h"
#include "dist/runtime.h"
#include "models/core/adapter_bank.h"
#include "models/core/lora.h"
#include "models/io/model_export.h"
#include "models/io/pretrained.h"
#include "models/tokenizer/tokenizer.h"
#include "stages/dpo/dpo_context.h"
#include "stages/dpo/dpo_eval.h"
#include "stages/dpo/dpo_pairs.h"
#include "stages/dpo/pair_sources.h"
#include "train/checkpoint/checkpoint.h"
#include "train/loop/model_setup.h"
#include "train/loop/ranks.h"
#include "train/loop/recipe_loop_config.h"
#include "train/loop/training_loop.h"
#include "train/per_user/dpo_step.h"
#include "train/zero/zero.h"

namespace tailor {
namespace fs = std::filesystem;
namespace {

// The per-user statistics of a step, in TRL's names.
constexpr int kStats = 7;
const std::array<const char*, kStats> kStatNames = {
    "loss",         "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
    "logps/chosen", "logps/rejected"};

std::array<double, kStats> stat_values(const DpoUserStats& s) {
  return {s.loss,   s.rewards_chosen, s.rewards_rejected, s.accuracy,
          s.margin, s.logps_chosen,   s.logps_rejected};
}

LoopConfig loop_config(const DpoRecipe& r) {
  return recipe_loop_config(r, "dpo", dpo_recipe_hash(r), RecipeChange::kRefuse);
}

class DpoStage final : public TrainingStage {
 public:
  DpoStage(const DpoRecipe& recipe, TrainingLoop& loop);

  void start_training() override { model_->train(); }
  void before_step(int64_t step) override;
  void forward_backward(int64_t step, Optimizer& optimizer) override;
  double clip_gradients(Optimizer& optimizer, double max_norm) override;
  StepResult step_result(int64_t step) override;
  void on_log(int64_t step, nlohmann::json& record) override;
  void evaluate(int64_t step) override;
  TensorMap restorable_tensors() override;
  TensorMap frozen_tensors_to_save() override;
  void save_state(TrainerState& state) override;
  void check_checkpoint(const TrainerState& state, const std::string& source) override;
  void load_state(const TrainerState& state, const std::string& source) override;
  void finish(int64_t step) override;

 private:
  void build_base();
  void prepare_pairs();
  void build_adapters();
  void set_optimizer();
  void announce() const;
  void start_round(int64_t round, bool resuming);
  void export_adapters() const;
  // Checkpoints hold the base only when nothing else can rebuild it (a random init).
  bool stores_base() const { return r_.model.init == ModelInit::kRandom; }

  const DpoRecipe& r_;
  TrainingLoop& loop_;
  std::optional<Tokenizer> tokenizer_;
  CausalLM model_;
  c10::ScalarType dtype_ = at::kFloat;
  std::optional<DpoContext> ctx_;
  LoraConfig lora_;
  std::unique_ptr<AdapterBank> bank_;
  std::vector<std::string> users_;  // adapter order (the bank's)
  std::optional<DpoPairs> pairs_;
  std::vector<std::string> train_prompts_;  // data.source generated: the prompts trained on
  Rounds rounds_;
  int64_t round_ = 0;  // generate.rounds: the round whose pairs train now (0-based)
  DpoStepConfig step_config_;
  int64_t trainable_params_ = 0;  // every user's adapter
  // The step in progress: per user the statistics summed over its pairs, then the pair count;
  // and the tokens (summed over the ranks after the update); each user's gradient norm.
  at::Tensor sums_;
  std::vector<double> norms_;
  double start_time_ = steady_clock_seconds();
};

DpoStage::DpoStage(const DpoRecipe& recipe, TrainingLoop& loop) : r_(recipe), loop_(loop) {
  dist::Communicator& comm = loop_.comm();
  if (r_.train.pairs_per_user % comm.world_size() != 0)
    throw Error("recipe", "train.pairs_per_user: " + std::to_string(r_.train.pairs_per_user) +
                              " pairs per user do not split over " +
                              std::to_string(comm.world_size()) +
                              " ranks; use a multiple of the number of ranks");
  rounds_ = Rounds{r_.train.max_steps, r_.generate.rounds};
  build_base();
  prepare_pairs();
  build_adapters();
  set_optimizer();
  step_config_.loss = DpoLossConfig{r_.dpo.type, r_.dpo.beta, r_.dpo.label_smoothing};
  step_config_.loss.validate();
  step_config_.sft_weight = r_.dpo.sft_weight;
  if (r_.dpo.precompute_reference) pairs_->precompute_reference(*bank_);
  announce();
}

// The frozen base, held once: the reference policy is this model with the adapters off.
void DpoStage::build_base() {
  tokenizer_ = Tokenizer::from_dir(r_.tokenizer);
  dtype_ = weights_dtype(r_.train.precision);
  model_ = build_model(r_.model, model_config_for(r_.model), dtype_);
  if (tokenizer_->vocab_size() > model_->vocab_size())
    throw Error("dpo", "tokenizer " + r_.tokenizer.string() + " has " +
                           std::to_string(tokenizer_->vocab_size()) +
                           " tokens but the model only " + std::to_string(model_->vocab_size()));
  ctx_.emplace(DpoContext{r_, loop_.comm(), loop_.log(), *tokenizer_, *model_});
}

// The pairs, and from them the users: every simulated user in name order (the two tables share
// no name), or the users of a pairs file. data.source generated samples the base and lets every
// user judge the samples; the pairs go to output_dir/pairs.jsonl (reused when resuming).
void DpoStage::prepare_pairs() {
  data::CollateOptions collate;
  collate.max_length = std::min(r_.data.max_length, model_->max_positions());
  collate.eos_id = tokenizer_->eos_id();
  collate.append_eos = true;  // as SFT: the EOS closing a response is part of it
  collate.pad_to_max_length = r_.data.pad_to_max_length;
  pairs_.emplace(*ctx_, collate);
  if (r_.data.source == PairSource::kPairs) {
    pairs_->read(r_.data.path);
    users_ = pairs_->pairs().users();
    pairs_->split(users_, {});
    return;
  }
  std::set<std::string> names;
  for (const auto& [user, weights] : r_.users)
    names.insert(user);
  for (const auto& [user, fields] : r_.reward_users)
    names.insert(user);
  users_.assign(names.begin(), names.end());
  const fs::path file = round_pairs_file(r_.output_dir, 0);
  // data.source pool: each prompt's answers come from the file, and the judges relabel them.
  std::vector<PoolPrompt> pool;
  if (r_.data.source == PairSource::kPool) pool = read_candidate_pool(r_.data.path);
  std::vector<std::string> prompts;
  if (r_.data.source == PairSource::kPool) {
    for (const auto& p : pool)
      prompts.push_back(p.prompt);
  } else {
    prompts = read_prompts_jsonl(r_.data.path);
  }
  const PromptSplit split = split_prompts(r_, prompts);
  train_prompts_ = split.train;
  if (r_.train.resume && fs::exists(file) && latest_checkpoint(r_.output_dir)) {
    loop_.log() << "[dpo] resume: reusing " << file.string() << "\n";
  } else if (r_.data.source == PairSource::kPool) {
    // The training prompts kept (data.train_prompts) and the held-out ones, in file order.
    std::set<std::string> kept(split.train.begin(), split.train.end());
    kept.insert(split.eval.begin(), split.eval.end());
    std::vector<std::string> relabelled;
    PromptAnswers answers;
    for (const auto& p : pool) {
      if (!kept.count(p.prompt)) continue;
      relabelled.push_back(p.prompt);
      answers.texts.push_back(p.completions);
      answers.cut.emplace_back();
    }
    loop_.log() << "[dpo] relabelling the answers of " << relabelled.size() << " prompts of "
                << r_.data.path.string() << " by each user's judge\n";
    const std::vector<TextPair> pairs =
        pick_all_pairs(*ctx_, users_, relabelled,
                       [&](const std::string&) -> const PromptAnswers& { return answers; });
    if (loop_.rank0()) write_pairs_jsonl(file, pairs);
    loop_.comm().barrier();
    loop_.log() << "[dpo] " << pairs.size() << " pairs -> " << file.string() << "\n";
  } else {
    loop_.log() << "[dpo] sampling " << r_.generate.completions << " answers to each of "
                << (r_.data.train_prompts > 0 ? split.train.size() + split.eval.size()
                                              : prompts.size())
                << " prompts from the base (" << r_.generate.max_new_tokens
                << " new tokens at most)\n";
    // With data.train_prompts, only the prompts kept (and the held-out ones) are sampled.
    std::vector<std::string> sampled = prompts;
    if (r_.data.train_prompts > 0) {
      sampled = split.train;
      sampled.insert(sampled.end(), split.eval.begin(), split.eval.end());
    }
    const Samples base = sample_answers(*ctx_, sampled, sampling_config(r_, 0), "the base");
    // Every user judges the same samples of the base.
    const std::vector<TextPair> pairs = pick_all_pairs(
        *ctx_, users_, sampled, [&](const std::string&) -> const Samples& { return base; });
    if (loop_.rank0()) write_pairs_jsonl(file, pairs);
    loop_.comm().barrier();
    loop_.log() << "[dpo] " << pairs.size() << " pairs -> " << file.string() << "\n";
  }
  pairs_->read(file);
  pairs_->split(users_, split.eval);
}

// One adapter per user; its lora_A drawn from the seed and the user's name, its lora_B zero (the
// policy starts as the base: loss ln 2, rewards 0).
void DpoStage::build_adapters() {
  lora_ = LoraConfig{r_.lora.rank, r_.lora.alpha, r_.lora.dropout, r_.lora.rslora, r_.lora.targets};
  bank_ = std::make_unique<AdapterBank>(*model_, lora_, users_);
  for (const auto& user : users_)
    bank_->init_user(user, user_seed(static_cast<uint64_t>(r_.seed), user, kInitStream));
  for (const auto& item : model_->named_parameters())
    if (item.value().requires_grad()) trainable_params_ += item.value().numel();
  pairs_->reset_samplers(round_);
}

// The optimizer over the trainable parameters (the adapters): plain AdamW on every rank, or the
// ZeRO engine (dist.zero_stage 1, 2), which takes over their storage.
void DpoStage::set_optimizer() {
  dist::Communicator& comm = loop_.comm();
  const AdamWConfig adam{r_.optimizer.beta1, r_.optimizer.beta2, r_.optimizer.eps,
                         r_.optimizer.weight_decay};
  // zero_stage is not part of the recipe hash (it does not change the result): check it here.
  const auto stages = comm.all_gather_strings(std::to_string(r_.dist.zero_stage));
  for (size_t i = 1; i < stages.size(); ++i)
    if (stages[i] != stages[0])
      throw Error("dist", "rank " + std::to_string(i) + " has dist.zero_stage " + stages[i] +
                              ", rank 0 " + stages[0] + "; every rank must run the same recipe");
  if (r_.dist.zero_stage == 2)
    for (const auto& path : bank_->module_paths())
      if (path == "lm_head" ||
          (path.size() > 8 && path.compare(path.size() - 8, 8, ".lm_head") == 0))
        throw Error(
            "recipe",
            "dist.zero_stage: 2 reduces each adapter's gradient once per backward, but with "
            "lm_head among lora.targets the output layer's adapters get theirs in several "
            "passes (one per chunk of positions, a number that differs between ranks); use "
            "dist.zero_stage 1");
  if (r_.dist.zero_stage > 0) {
    std::vector<dist::ZeroParam> params;
    for (const auto& item : model_->named_parameters())
      if (item.value().requires_grad())
        params.push_back({item.key(), item.value(), decays_by_default(item.value())});
    dist::ZeroConfig config;
    config.stage = static_cast<int>(r_.dist.zero_stage);
    config.adam = adam;
    loop_.set_optimizer(Optimizer::sharded(
        std::make_unique<dist::ZeroEngine>(comm, std::move(params),
                                           std::vector<std::vector<std::string>>{}, config),
        comm));
    return;
  }
  std::vector<TrainableParameter> params;
  for (const auto& item : model_->named_parameters())
    if (item.value().requires_grad())
      params.push_back({item.key(), item.value(), decays_by_default(item.value())});
  loop_.set_optimizer(Optimizer::replicated(std::move(params), adam, comm));
}

void DpoStage::announce() const {
  dist::Communicator& comm = loop_.comm();
  int64_t base_params = 0;
  for (const auto& item : model_->named_parameters())
    if (!item.value().requires_grad()) base_params += item.value().numel();
  const auto bytes = loop_.optimizer().state_bytes();
  dist::ZeroEngine* engine = loop_.optimizer().engine();
  std::ostream& log = loop_.log();
  log << "[dpo] base: " << model_->model_type() << ", " << model_->num_layers() << " layers, "
      << base_params << " frozen parameters (" << dtype_name(dtype_) << "), held once\n"
      << "[dpo] " << users_.size() << " users, one LoRA adapter each (r=" << lora_.rank << " on "
      << bank_->module_paths().size() << " modules, " << trainable_params_ / users_.size()
      << " parameters per user); " << r_.train.pairs_per_user << " pairs per user per step"
      << (comm.world_size() > 1
              ? " over " + std::to_string(comm.world_size()) + " ranks (" + comm.backend() + ")"
              : "")
      << "\n";
  for (size_t u = 0; u < users_.size(); ++u)
    log << "[dpo]   " << users_[u] << ": " << pairs_->train_of(u).size() << " train pairs, "
        << pairs_->eval_of(u).size() << " held out\n";
  log << "[dpo] adapters' model state per rank: params " << bytes.params << " B, grads "
      << bytes.grads << " B, optimizer " << bytes.optimizer << " B ("
      << (engine ? "ZeRO stage " + std::to_string(engine->stage()) + ", sharded over " +
                       std::to_string(comm.world_size()) + " ranks"
                 : std::string("replicated on every rank"))
      << ")\n";
}

void DpoStage::before_step(int64_t step) {
  if (const int64_t round = rounds_.at(step); round != round_) start_round(round, false);
}

// Round r >= 1 of iterative DPO: each user's adapter, as trained so far, samples answers to the
// training prompts; the user's judge picks the round's pairs among them (a user whose samples
// give no pair keeps its pairs of the round before). The held-out pairs stay those of round 1,
// so the held-out margins of every round compare. Written to pairs_round_<r + 1>.jsonl before the
// round trains: a resumed run reads the file of its checkpoint's round back (`resuming`).
void DpoStage::start_round(int64_t round, bool resuming) {
  const fs::path file = round_pairs_file(r_.output_dir, round);
  if (resuming) {
    if (!fs::exists(file))
      throw Error("dpo", "resume: the checkpoint was taken in round " + std::to_string(round + 1) +
                             " but that round's pairs " + file.string() + " are missing");
    loop_.log() << "[dpo] resume: reusing " << file.string() << "\n";
  } else {
    loop_.log() << "[dpo] round " << round + 1 << " of " << r_.generate.rounds << " (steps "
                << rounds_.start(round) + 1 << "-" << rounds_.start(round + 1) << "): sampling "
                << r_.generate.completions << " answers to each of " << train_prompts_.size()
                << " training prompts from each user's adapter\n";
    model_->eval();  // no LoRA dropout while sampling
    std::map<std::string, Samples> samples;
    for (const auto& user : users_) {
      const AdapterRoute route(*bank_, user);
      samples[user] =
          sample_answers(*ctx_, train_prompts_, sampling_config(r_, round), user + "'s adapter");
    }
    model_->train();
    std::vector<TextPair> pairs =
        pick_all_pairs(*ctx_, users_, train_prompts_,
                       [&](const std::string& user) -> const Samples& { return samples.at(user); });
    std::set<std::string> renewed;
    for (const auto& pair : pairs)
      renewed.insert(pair.user);
    for (size_t u = 0; u < users_.size(); ++u) {
      if (!renewed.count(users_[u])) {
        loop_.log() << "[dpo]   " << users_[u]
                    << ": no pair among its adapter's samples; keeps its "
                    << pairs_->train_of(u).size() << " pairs of round " << round << "\n";
        for (int64_t i : pairs_->train_of(u))
          pairs.push_back(pairs_->text_pair(i));
      }
      for (int64_t i : pairs_->eval_of(u))
        pairs.push_back(pairs_->text_pair(i));
    }
    if (loop_.rank0()) write_pairs_jsonl(file, pairs);
    loop_.comm().barrier();
    loop_.log() << "[dpo] round " << round + 1 << ": " << pairs.size() << " pairs -> "
                << file.string() << "\n";
  }
  const std::vector<std::string> eval_prompts = pairs_->eval_prompts();
  pairs_->read(file);
  pairs_->split(users_, eval_prompts);
  round_ = round;
  pairs_->reset_samplers(round_);
  if (r_.dpo.precompute_reference) pairs_->precompute_reference(*bank_);
  if (loop_.metrics() && !resuming) {
    nlohmann::json record = {{"round", round + 1}};
    for (size_t u = 0; u < users_.size(); ++u)
      record["users/" + users_[u] + "/round_pairs"] = pairs_->train_of(u).size();
    // With the round's first step (a resume cuts it off).
    loop_.metrics()->log(loop_.step() + 1, record);
  }
}

void DpoStage::forward_backward(int64_t step, Optimizer& optimizer) {
  const size_t U = users_.size();
  std::map<std::string, double> pair_weights;  // each user's mean over its pairs of the step
  for (const auto& user : users_)
    pair_weights[user] = 1.0 / static_cast<double>(r_.train.pairs_per_user);
  const std::vector<int64_t> mine = pairs_->next_step_pairs();
  const size_t micro =
      r_.train.micro_batch_size > 0 ? static_cast<size_t>(r_.train.micro_batch_size) : mine.size();
  sums_ = at::zeros({static_cast<int64_t>(U) * (kStats + 1) + 1}, at::kDouble);
  double* s = sums_.data_ptr<double>();
  AutocastScope autocast(r_.train.precision == Precision::kBf16Autocast, at::kCPU);
  for (size_t start = 0; start < mine.size(); start += micro) {
    const std::vector<int64_t> chunk(mine.begin() + start,
                                     mine.begin() + std::min(mine.size(), start + micro));
    const data::PairBatch batch = pairs_->collate(chunk);
    const at::Tensor reference =
        pairs_->has_reference() ? pairs_->reference_of(chunk) : at::Tensor();
    const auto stats =
        dpo_forward_backward(*model_, *bank_, batch, step_config_, at::kCPU, &pair_weights,
                             reference.defined() ? &reference : nullptr);
    optimizer.after_backward();
    for (size_t u = 0; u < U; ++u) {
      const auto it = stats.find(users_[u]);
      if (it == stats.end()) continue;
      const auto values = stat_values(it->second);
      for (int k = 0; k < kStats; ++k)
        s[u * (kStats + 1) + k] += values[k] * static_cast<double>(it->second.pairs);
      s[u * (kStats + 1) + kStats] += static_cast<double>(it->second.pairs);
    }
    s[U * (kStats + 1)] += batch.rows.attention_mask.sum().item<double>();
  }
}

// Each user's adapter clipped to its own norm; metrics' grad_norm is the norm of all of them.
double DpoStage::clip_gradients(Optimizer& optimizer, double max_norm) {
  norms_ = optimizer.engine()
               ? clip_bank_gradients_per_user(*bank_, *optimizer.engine(), loop_.comm(), max_norm)
               : clip_bank_gradients_per_user(*bank_, *model_, max_norm);
  double norm_sq = 0;
  for (double n : norms_)
    norm_sq += n * n;
  return std::sqrt(norm_sq);
}

// Per-user means; the overall numbers are means over the users (each user counts once).
StepResult DpoStage::step_result(int64_t step) {
  const size_t U = users_.size();
  const at::Tensor sums = sum_over_ranks(loop_.comm(), sums_);
  const double* s = sums.data_ptr<double>();
  StepResult result;
  std::array<double, kStats> overall{};
  for (size_t u = 0; u < U; ++u) {
    const double n = std::max(1.0, s[u * (kStats + 1) + kStats]);
    for (int k = 0; k < kStats; ++k) {
      const double mean = s[u * (kStats + 1) + k] / n;
      overall[k] += mean / static_cast<double>(U);
      result.record["users/" + users_[u] + "/" + kStatNames[k]] = mean;
    }
    result.record["users/" + users_[u] + "/grad_norm"] = norms_[u];
  }
  for (int k = 0; k < kStats; ++k)
    result.record[kStatNames[k]] = overall[k];
  result.loss = overall[0];
  result.tokens = static_cast<int64_t>(s[U * (kStats + 1)]);
  result.record["tokens"] = result.tokens;
  return result;
}

void DpoStage::on_log(int64_t step, nlohmann::json& record) {
  if (users_.size() <= 8) {
    std::ostringstream line;
    line << std::fixed << std::setprecision(3) << "[dpo] step " << step << " reward acc/margin:";
    for (const auto& user : users_)
      line << " " << user << " " << record["users/" + user + "/rewards/accuracies"].get<double>()
           << "/" << record["users/" + user + "/rewards/margins"].get<double>();
    loop_.log() << line.str() << "\n";
  }
  // The adapters' model state on rank 0 (ranks differ only by padding); see train/zero/zero.h.
  const auto bytes = loop_.optimizer().state_bytes();
  record["world_size"] = loop_.comm().world_size();
  record["zero_stage"] = r_.dist.zero_stage;
  record["trainable_params"] = trainable_params_;
  record["state_bytes_params"] = bytes.params;
  record["state_bytes_grads"] = bytes.grads;
  record["state_bytes_optimizer"] = bytes.optimizer;
}

void DpoStage::evaluate(int64_t step) {
  evaluate_margins(*ctx_, *bank_, users_, *pairs_, loop_.metrics(), step, /*final=*/false);
}

TensorMap DpoStage::restorable_tensors() {
  return parameters_by_name(*model_);
}

TensorMap DpoStage::frozen_tensors_to_save() {
  return stores_base() ? frozen_parameters(*model_) : TensorMap();
}

void DpoStage::save_state(TrainerState& state) {
  state.extra["users"] = users_;
  state.extra["samplers"] = pairs_->sampler_positions();  // over the round's training pairs
  state.extra["round"] = round_;
  ModelProvenance provenance;
  provenance.config = model_->hf_config(dtype_);
  provenance.lora = lora_;
  provenance.tokenizer = fs::absolute(r_.tokenizer);
  provenance.dtype = dtype_name(dtype_);
  if (!stores_base()) provenance.base_model = fs::absolute(r_.model.path);
  state.extra["model"] = provenance_to_json(provenance);
  state.extra["dpo"] = {{"users", users_}};
  if (loop_.optimizer().engine())
    state.extra["dist"] = {{"world_size", loop_.comm().world_size()},
                           {"zero_stage", loop_.optimizer().engine()->stage()}};
}

void DpoStage::check_checkpoint(const TrainerState& state, const std::string& source) {
  if (state.extra.value("users", nlohmann::json::array()) != nlohmann::json(users_))
    throw Error("dpo",
                fs::path(source).parent_path().string() + ": its users differ from this run's");
}

void DpoStage::load_state(const TrainerState& state, const std::string& source) {
  // The checkpoint's round: its pairs (written before that round trained) and pair order.
  if (const int64_t round = state.extra.value("round", int64_t{0}); round > 0)
    start_round(round, /*resuming=*/true);
  pairs_->set_sampler_positions(state.extra.at("samplers"));
}

// export/users/<user>/: a PEFT adapter per user; with a random base (tests, demos) the base goes
// to export/base/, since no other copy of it exists.
void DpoStage::export_adapters() const {
  const fs::path run_dir = r_.output_dir;
  const std::string base_name = r_.model.init == ModelInit::kPretrained
                                    ? fs::absolute(r_.model.path).string()
                                    : (run_dir / "export" / "base").string();
  const bool fan_in_fan_out = model_->linear_layout() == WeightLayout::kConv1D;
  write_dir_atomic(run_dir / "export", [&](const fs::path& tmp) {
    for (const auto& user : users_)
      save_user_peft_adapter(tmp / "users" / user, *bank_, user, lora_, base_name, fan_in_fan_out);
    if (r_.model.init == ModelInit::kRandom) {
      save_pretrained(tmp / "base", *model_);
      save_tokenizer_files(r_.tokenizer, tmp / "base");
    }
    write_file_atomic(tmp / "users.json", nlohmann::json(users_).dump(2) + "\n");
  });
}

// Evaluation splits its work over the ranks; the export is rank 0's alone.
void DpoStage::finish(int64_t step) {
  const double trained = steady_clock_seconds();
  const nlohmann::json margins =
      evaluate_margins(*ctx_, *bank_, users_, *pairs_, loop_.metrics(), step, /*final=*/true);
  const nlohmann::json wins =
      evaluate_win_rates(*ctx_, *bank_, users_, pairs_->eval_prompts(), loop_.metrics(), step);
  const fs::path& run_dir = r_.output_dir;
  const double evaluated = steady_clock_seconds();
  if (loop_.rank0()) {
    if (r_.export_.enabled) export_adapters();
    // From the stage's start (the pairs: sampling and judging, i.e. relabelling) to the exported
    // adapters, without the evaluation: what a new user waits for once the answers are in.
    const double exported = steady_clock_seconds();
    const nlohmann::json seconds = {
        {"to_adapters", (trained - start_time_) + (exported - evaluated)},
        {"evaluation", evaluated - trained},
        {"export", exported - evaluated}};
    nlohmann::json summary = {{"stage", "dpo"},
                              {"seed", r_.seed},
                              {"users", users_},
                              {"steps", step},
                              {"pairs_per_user", r_.train.pairs_per_user},
                              {"world_size", loop_.comm().world_size()},
                              {"eval", margins},
                              {"wall_seconds", steady_clock_seconds() - start_time_},
                              {"seconds", seconds}};
    nlohmann::json train_pairs, eval_pairs;
    for (size_t u = 0; u < users_.size(); ++u) {
      train_pairs[users_[u]] = pairs_->train_of(u).size();
      eval_pairs[users_[u]] = pairs_->eval_of(u).size();
    }
    summary["train_pairs"] = train_pairs;  // of the last round
    summary["eval_pairs"] = eval_pairs;
    summary["rounds"] = r_.generate.rounds;
    if (wins.contains("win_rate")) summary["win_rate"] = wins["win_rate"];
    if (wins.contains("cross_user")) summary["cross_user"] = wins["cross_user"];
    for (const char* key : {"invalid_answers", "judges"})
      if (wins.contains(key)) summary[key] = wins[key];
    // The held-out margins are of pairs the training judges labelled.
    summary["eval_pairs_labelled_by"] = "the training judges (the held-out prompts' pairs)";
    write_file_atomic(run_dir / "summary.json", summary.dump(2) + "\n");
  }
  loop_.comm().barrier();
  if (!loop_.rank0()) return;
  std::cout << "run directory: " << run_dir.string() << "\n"
            << "  metrics:     " << (run_dir / "metrics.jsonl").string() << "\n"
            << "  summary:     " << (run_dir / "summary.json").string() << "\n"
            << "  checkpoint:  " << latest_checkpoint(run_dir)->string() << "\n";
  if (r_.export_.enabled) {
    const fs::path base =
        r_.model.init == ModelInit::kPretrained ? r_.model.path : run_dir / "export" / "base";
    std::cout << "  adapters:    " << (run_dir / "export" / "users").string() << "/<user> (PEFT)\n"
              << "score one:    ./build/tailor score --model " << base.string() << " --adapter "
              << (run_dir / "export" / "users" / users_.front()).string() << " --input "
              << (run_dir / "eval_pairs.jsonl").string() << "\n";
  }
}

}  // namespace

void run_dpo_stage(const DpoRecipe& recipe) {
  run_dpo_stage(recipe, dist::world());
}

void run_dpo_stage(const DpoRecipe& recipe, dist::Communicator& comm) {
  run_stage<DpoStage>(recipe, loop_config(recipe), comm);
}

}  // namespace tailor
