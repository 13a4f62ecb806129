// The reward stage: what reward modeling adds to the shared training loop
// (train/loop/training_loop.h). Its constructor prepares data, model and optimizer from the
// recipe; a step draws its pairs and takes the loss and gradient below; evaluate() measures every
// user on held-out pairs; finish() writes summary.json and the export. One process only.
//
// One step: draw batch_size x grad_accum (user, chosen, rejected) examples (uniform epochs, or
// the adaptive A:B:C schedule), score both responses and take the Bradley–Terry loss on the
// margin. For VPL each example also gets context_size of its user's survey answers, whose
// frozen-encoder embeddings (computed once before training) the VAE encodes into q(z | context);
// the reward is decoded from the trainable backbone's embedding of the response and z, and the
// loss adds beta_t * KL(q || N(0, I)) and optionally the contrastive term on the latent means.
// The step's examples, contexts and noise are drawn for the whole step, then the backbone runs
// one micro-batch of batch_size at a time (gradient accumulation), so a step's loss and gradient
// do not depend on grad_accum. With gradient surgery every user in the batch gets their own
// backward pass, and the per-user gradients are combined by PCGrad or MGDA before the update.
// The loss and gradient of a step are reward_step_accumulate() (reward_step.h).
//
// Checkpoints (train.checkpoint_every; written by the loop) hold the parameters (the trainable
// ones; the frozen base too when it is not a pretrained LoRA base), AdamW's state (with bf16: the
// fp32 master copies), and in trainer_state.json the sampler position, torch's and the stage's
// RNG states, the adaptive sampler's per-user visiting orders and cursors, the examples drawn per
// phase and the evaluation curve, so a resumed run ends bit-identical to an uninterrupted one.
#include "stages/reward/reward_stage.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <map>
#include <numeric>
#include <optional>
#include <random>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "data/sampling/adaptive_sampler.h"
#include "data/sampling/epoch_sampler.h"
#include "dist/runtime.h"
#include "models/core/lora.h"
#include "models/heads/reward_model.h"
#include "models/heads/vpl.h"
#include "models/io/hf_checkpoint.h"
#include "models/io/pretrained.h"
#include "models/io/reward_export.h"
#include "models/io/vpl_export.h"
#include "models/tokenizer/prompt_format.h"
#include "models/tokenizer/tokenizer.h"
#include "stages/reward/reward_data.h"
#include "stages/reward/reward_step.h"
#include "train/checkpoint/checkpoint.h"
#include "train/checkpoint/rng_state.h"
#include "train/features/context_embeddings.h"
#include "train/loop/autocast_guard.h"
#include "train/loop/model_setup.h"
#include "train/loop/recipe_loop_config.h"
#include "train/loop/training_loop.h"
#include "train/losses/preference_losses.h"
#include "train/losses/preference_metrics.h"

namespace tailor {
namespace fs = std::filesystem;
namespace {

// Right-padded ids and mask of `rows` sequences, plus the tokens they hold.
struct Padded {
  at::Tensor ids, mask;  // [N, T]
  int64_t tokens = 0;
};

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names)
    out += (out.empty() ? "" : ", ") + n;
  return out;
}

Padded pad(const std::vector<const std::vector<int32_t>*>& rows) {
  int64_t T = 1;
  for (const auto* r : rows)
    T = std::max<int64_t>(T, static_cast<int64_t>(r->size()));
  const int64_t N = static_cast<int64_t>(rows.size());
  Padded out;
  out.ids = at::zeros({N, T}, at::kLong);
  out.mask = at::zeros({N, T}, at::kLong);
  auto ids = out.ids.accessor<int64_t, 2>();
  auto mask = out.mask.accessor<int64_t, 2>();
  for (int64_t i = 0; i < N; ++i) {
    const auto& r = *rows[i];
    for (size_t t = 0; t < r.size(); ++t) {
      ids[i][t] = r[t];
      mask[i][t] = 1;
    }
    out.tokens += static_cast<int64_t>(r.size());
  }
  return out;
}

LoopConfig loop_config(const RewardRecipe& r) {
  LoopConfig c = recipe_loop_config(r, "reward", reward_recipe_hash(r), RecipeChange::kWarn);
  c.checkpoint_at_end = false;  // checkpoints only when train.checkpoint_every asks for them
  c.log_memory = false;
  return c;
}

class RewardStage final : public TrainingStage {
 public:
  RewardStage(const RewardRecipe& recipe, TrainingLoop& loop);

  void start_training() override;
  void forward_backward(int64_t step, Optimizer& optimizer) override;
  StepResult step_result(int64_t step) override;
  void on_log(int64_t step, nlohmann::json& record) override;
  void evaluate(int64_t step) override { evaluate(); }
  // Resume, then checkpoints.
  void check_checkpoint(const TrainerState& state, const std::string& source) override;
  void load_state(const TrainerState& state, const std::string& source) override;
  TensorMap restorable_tensors() override;
  void save_state(TrainerState& state) override;
  TensorMap frozen_tensors_to_save() override;
  void finish(int64_t step) override;

 private:
  bool vae() const { return r_.reward.kind == RewardKind::kVae; }
  bool autocast() const { return r_.train.precision == Precision::kBf16Autocast; }
  // Whether checkpoints hold the frozen base weights too: everything but LoRA on a pretrained
  // base (which the recipe's model.path restores).
  bool stores_base() const { return !r_.lora.enabled || r_.model.init == ModelInit::kRandom; }
  void setup();
  // Every parameter under its checkpoint name (backbone's HF names, VPL heads under "vpl.").
  std::vector<std::pair<std::string, at::Tensor>> all_parameters() const;
  std::vector<PreferenceExample> next_batch(int64_t step);
  // [B, C, 2, E] frozen-encoder embeddings of each example's context pairs, drawn from `rng`,
  // in the weights' dtype.
  at::Tensor contexts(const std::vector<PreferenceExample>& batch, std::mt19937_64& rng) const;
  // Evaluation rewards of chosen and rejected (VPL: z = mean).
  RewardScores score(const std::vector<PreferenceExample>& batch, const at::Tensor& context);
  // Training rewards of examples [begin, end) of a step's batch (one micro-batch); VPL decodes
  // with rows [begin, end) of the step's latents z.
  RewardScores train_scores(const std::vector<PreferenceExample>& batch, int64_t begin, int64_t end,
                            const at::Tensor& z, int64_t* tokens);
  // Per-user held-out metrics into metrics.jsonl; with `predictions`, one JSON line per pair.
  nlohmann::json evaluate(std::string* predictions = nullptr);
  std::vector<at::Tensor> trainable() const;

  RewardRecipe r_;
  TrainingLoop& loop_;
  at::ScalarType dtype_ = at::kFloat;  // the weights' dtype (bf16 with train.precision bf16)
  std::unique_ptr<Tokenizer> tokenizer_;
  RewardData data_;
  CausalLM backbone_;
  std::optional<LoraConfig> lora_;
  RewardModel bt_{nullptr};  // reward.kind bt
  VplHeads heads_{nullptr};  // reward.kind vae
  at::Tensor embeddings_;    // [responses, E] frozen-encoder embeddings (VPL), zero rows unused
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::optional<data::EpochSampler> uniform_;
  std::optional<AdaptiveSampler> adaptive_;
  std::vector<std::vector<int64_t>> train_of_user_;  // adaptive: each user's examples
  std::vector<int64_t> cursor_of_user_;
  // adaptive: examples drawn per [phase][user], phase n (= users) the uniform tail
  std::vector<std::vector<int64_t>> phase_samples_;
  bool context_cache_hit_ = false;  // VPL: the context embeddings were read from the cache
  std::mt19937_64 rng_;
  double start_time_ = 0;
  double earlier_wall_ = 0;  // wall seconds of the run before the checkpoint it resumed from
  // The step in progress.
  nlohmann::json record_;
  int64_t tokens_ = 0;
  double kl_weight_ = 0;
  // Convergence: first evaluation at or above train.converge_accuracy.
  std::optional<int64_t> converged_step_;
  nlohmann::json last_eval_;
  std::vector<nlohmann::json> curve_;
};

std::vector<at::Tensor> RewardStage::trainable() const {
  std::vector<at::Tensor> out;
  for (const auto& [name, p] : params_)
    out.push_back(p);
  return out;
}

RewardStage::RewardStage(const RewardRecipe& recipe, TrainingLoop& loop) : r_(recipe), loop_(loop) {
  start_time_ = steady_clock_seconds();
  rng_.seed(static_cast<uint64_t>(r_.seed) * 0x9e3779b97f4a7c15ULL + 1);
  tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::from_dir(r_.tokenizer));
  const auto encode = [this](const std::string& field, const std::string& text) {
    return encode_sft_field(*tokenizer_, PromptTemplate::kPlain, field, text);
  };
  data_ = prepare_reward_data(r_, encode, std::cerr);

  dtype_ = weights_dtype(r_.train.precision);
  backbone_ = build_model(r_.model, model_config_for(r_.model), dtype_);
  if (r_.data.max_length > backbone_->max_positions())
    throw Error("recipe", "data.max_length " + std::to_string(r_.data.max_length) +
                              " exceeds the model's n_positions " +
                              std::to_string(backbone_->max_positions()));

  if (vae()) {
    // VPL's context encoder is the frozen initial backbone: embed every response a survey answer
    // uses once, before any weight changes (cached in output_dir/cache).
    std::vector<int64_t> needed;
    for (const auto& pool : data_.context_pool)
      for (const auto& [c, rj] : pool)
        needed.insert(needed.end(), {c, rj});
    std::sort(needed.begin(), needed.end());
    needed.erase(std::unique(needed.begin(), needed.end()), needed.end());
    embeddings_ = context_embeddings(*backbone_, data_.sequences, needed,
                                     r_.output_dir / "cache" / "context_embeddings.h5",
                                     context_cache_key(r_), std::cerr, &context_cache_hit_);
  }
  if (r_.lora.enabled) {
    lora_ =
        LoraConfig{r_.lora.rank, r_.lora.alpha, r_.lora.dropout, r_.lora.rslora, r_.lora.targets};
    apply_lora(*backbone_, *lora_);  // freezes the base; the heads built below stay trainable
  }
  if (vae()) {
    VplConfig vc;
    vc.embed_dim = backbone_->hidden_size();
    vc.hidden_dim = r_.vae.hidden_dim;
    vc.latent_dim = r_.vae.latent_dim;
    vc.logvar_clamp = r_.vae.logvar_clamp;
    heads_ = VplHeads(vc);
    heads_->to(dtype_);
    for (const auto& item : backbone_->named_parameters())
      if (item.value().requires_grad()) params_.emplace_back(item.key(), item.value());
    for (const auto& item : heads_->named_parameters())
      params_.emplace_back("vpl." + item.key(), item.value());
  } else {
    bt_ = RewardModel(backbone_, 1);
    for (const auto& item : bt_->named_parameters())
      if (item.value().requires_grad()) params_.emplace_back(item.key(), item.value());
  }
  int64_t n_trainable = 0;
  for (const auto& [name, p] : params_)
    n_trainable += p.numel();

  std::vector<TrainableParameter> trainable;
  for (const auto& [name, p] : params_)
    trainable.push_back({name, p, decays_by_default(p)});
  loop_.set_optimizer(
      Optimizer::replicated(std::move(trainable),
                            AdamWConfig{r_.optimizer.beta1, r_.optimizer.beta2, r_.optimizer.eps,
                                        r_.optimizer.weight_decay},
                            loop_.comm()));

  const int64_t U = data_.num_users();
  if (r_.train.sampling == BatchSampling::kAdaptive) {
    AdaptiveSamplingOptions options;
    options.order.resize(U);
    std::iota(options.order.begin(), options.order.end(), 0);
    if (!r_.train.adaptive_order.empty()) {
      // Names -> indices; the sampler itself checks that every user appears exactly once.
      options.order.clear();
      for (const auto& name : r_.train.adaptive_order) {
        const auto it = std::find(data_.user_names.begin(), data_.user_names.end(), name);
        if (it == data_.user_names.end())
          throw Error("recipe", "train.adaptive_order: unknown user \"" + name +
                                    "\" (users: " + join(data_.user_names) + ")");
        options.order.push_back(static_cast<int32_t>(it - data_.user_names.begin()));
      }
      if (static_cast<int64_t>(options.order.size()) != U)
        throw Error("recipe", "train.adaptive_order: expected all " + std::to_string(U) +
                                  " users once (" + join(data_.user_names) + ")");
    }
    for (int i = 0; i < 3; ++i)
      options.ratio[i] = static_cast<int64_t>(r_.train.adaptive_ratio[i]);
    options.steps_per_phase = r_.train.steps_per_phase > 0
                                  ? r_.train.steps_per_phase
                                  : std::max<int64_t>(1, r_.train.max_steps / U);
    options.batch_size = pairs_per_step(r_);
    options.seed = static_cast<uint64_t>(r_.seed);
    adaptive_.emplace(options);
    train_of_user_.resize(U);
    for (size_t i = 0; i < data_.train.size(); ++i)
      train_of_user_[data_.train[i].user].push_back(static_cast<int64_t>(i));
    cursor_of_user_.assign(U, 0);
    phase_samples_.assign(U + 1, std::vector<int64_t>(U, 0));
    for (int64_t u = 0; u < U; ++u)
      if (train_of_user_[u].empty())
        throw Error("data", "user " + data_.user_names[u] +
                                " has no training pairs; adaptive sampling needs every user");
  } else {
    uniform_.emplace(static_cast<int64_t>(data_.train.size()), static_cast<uint64_t>(r_.seed));
  }
  std::cerr << "[reward] " << (vae() ? "VPL conditional VAE" : "Bradley-Terry") << " reward model, "
            << backbone_->num_layers() << " layers, hidden size " << backbone_->hidden_size()
            << ", " << n_trainable << " trainable parameters" << (r_.lora.enabled ? " (LoRA)" : "")
            << "; sampling " << to_string(r_.train.sampling) << ", grad_surgery "
            << to_string(r_.train.grad_surgery) << "; " << pairs_per_step(r_) << " pairs per step";
  if (r_.train.grad_accum > 1)
    std::cerr << " (" << r_.train.grad_accum << " micro-batches of " << r_.train.batch_size << ")";
  std::cerr << ", " << to_string(r_.train.precision) << "\n";
}

std::vector<std::pair<std::string, at::Tensor>> RewardStage::all_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  if (bt_) {
    for (const auto& item : bt_->named_parameters())
      out.emplace_back(item.key(), item.value());
  } else {
    for (const auto& item : backbone_->named_parameters())
      out.emplace_back(item.key(), item.value());
    for (const auto& item : heads_->named_parameters())
      out.emplace_back("vpl." + item.key(), item.value());
  }
  return out;
}

TensorMap RewardStage::restorable_tensors() {
  TensorMap out;
  for (const auto& [name, p] : all_parameters())
    out[name] = p;
  return out;
}

TensorMap RewardStage::frozen_tensors_to_save() {
  TensorMap out;
  if (stores_base()) {
    out = restorable_tensors();
    for (const auto& [name, p] : params_)
      out.erase(name);
  }
  return out;
}

void RewardStage::save_state(TrainerState& state) {
  if (uniform_) {
    state.epoch = uniform_->position().epoch;
    state.sample_position = uniform_->position().index;
  }
  state.rng["stage"] = mt19937_to_string(rng_);  // adaptive reshuffles, PCGrad's visiting orders
  nlohmann::json extra = {
      {"reward_kind", to_string(r_.reward.kind)},
      {"converged_step", converged_step_ ? nlohmann::json(*converged_step_) : nlohmann::json()},
      {"eval_curve", curve_},
      {"wall_seconds", earlier_wall_ + steady_clock_seconds() - start_time_}};
  if (adaptive_) {
    // Each user's examples in their current visiting order, and how many were drawn so far.
    extra["user_order"] = train_of_user_;
    extra["user_cursor"] = cursor_of_user_;
    extra["phase_samples"] = phase_samples_;
  }
  state.extra["reward"] = extra;
}

void RewardStage::check_checkpoint(const TrainerState& state, const std::string& source) {
  if (!state.extra.contains("reward") || !state.extra.at("reward").is_object())
    throw Error("checkpoint", source + ": not a reward-stage checkpoint (no extra.reward)");
  const nlohmann::json& extra = state.extra.at("reward");
  if (extra.value("reward_kind", "") != to_string(r_.reward.kind))
    throw Error("checkpoint", source + ": a reward.kind " + extra.value("reward_kind", "?") +
                                  " run, the recipe says " + to_string(r_.reward.kind));
}

void RewardStage::load_state(const TrainerState& state, const std::string& source) {
  const nlohmann::json& extra = state.extra.at("reward");
  if (uniform_) uniform_->set_position({state.epoch, state.sample_position});
  if (!state.rng.contains("stage") || !state.rng.at("stage").is_string())
    throw Error("checkpoint", source + ": rng.stage is missing");
  rng_ = mt19937_from_string(state.rng.at("stage").get<std::string>());
  if (adaptive_) {
    auto order = extra.at("user_order").get<std::vector<std::vector<int64_t>>>();
    auto cursor = extra.at("user_cursor").get<std::vector<int64_t>>();
    auto phases = extra.at("phase_samples").get<std::vector<std::vector<int64_t>>>();
    bool same = order.size() == train_of_user_.size() && cursor.size() == cursor_of_user_.size() &&
                phases.size() == phase_samples_.size();
    for (size_t u = 0; same && u < order.size(); ++u) {
      std::vector<int64_t> mine = order[u], want = train_of_user_[u];
      std::sort(mine.begin(), mine.end());
      std::sort(want.begin(), want.end());
      same = mine == want;
    }
    if (!same)
      throw Error("checkpoint", source +
                                    ": its adaptive sampling state does not fit this "
                                    "recipe's data (users or training pairs differ)");
    train_of_user_ = std::move(order);
    cursor_of_user_ = std::move(cursor);
    phase_samples_ = std::move(phases);
  }
  if (!extra.value("converged_step", nlohmann::json()).is_null())
    converged_step_ = extra.at("converged_step").get<int64_t>();
  curve_ = extra.value("eval_curve", std::vector<nlohmann::json>{});
  earlier_wall_ = extra.value("wall_seconds", 0.0);
}

std::vector<PreferenceExample> RewardStage::next_batch(int64_t step) {
  std::vector<PreferenceExample> batch;
  if (uniform_) {
    for (int64_t i : uniform_->next_batch(pairs_per_step(r_)))
      batch.push_back(data_.train[i]);
    return batch;
  }
  // Adaptive: the schedule picks the user of each slot; each user's examples are visited in
  // reshuffled passes.
  for (int32_t u : adaptive_->users_for_step(step)) {
    auto& mine = train_of_user_[u];
    int64_t& cursor = cursor_of_user_[u];
    if (cursor % static_cast<int64_t>(mine.size()) == 0) {
      for (int64_t i = static_cast<int64_t>(mine.size()) - 1; i > 0; --i)
        std::swap(mine[i], mine[rng_() % (i + 1)]);
    }
    batch.push_back(data_.train[mine[cursor % static_cast<int64_t>(mine.size())]]);
    ++cursor;
  }
  return batch;
}

at::Tensor RewardStage::contexts(const std::vector<PreferenceExample>& batch,
                                 std::mt19937_64& rng) const {
  const int64_t B = static_cast<int64_t>(batch.size()), C = r_.vae.context_size;
  std::vector<int64_t> rows;
  rows.reserve(B * C * 2);
  for (const auto& ex : batch) {
    const auto& pool = data_.context_pool[ex.user];
    const int64_t n = static_cast<int64_t>(pool.size());
    // C distinct answers when the pool has them (partial Fisher-Yates), else with repetition.
    std::vector<int64_t> pick(n);
    std::iota(pick.begin(), pick.end(), 0);
    for (int64_t c = 0; c < C; ++c) {
      int64_t j;
      if (c < n) {
        std::swap(pick[c], pick[c + rng() % (n - c)]);
        j = pick[c];
      } else {
        j = pick[rng() % n];
      }
      rows.push_back(pool[j].first);
      rows.push_back(pool[j].second);
    }
  }
  return embeddings_.index_select(0, at::tensor(rows, at::kLong)).view({B, C, 2, -1}).to(dtype_);
}

RewardScores RewardStage::score(const std::vector<PreferenceExample>& batch,
                                const at::Tensor& context) {
  const int64_t B = static_cast<int64_t>(batch.size());
  std::vector<const std::vector<int32_t>*> rows;
  for (const auto& ex : batch)
    rows.push_back(&data_.sequences[ex.chosen]);
  for (const auto& ex : batch)
    rows.push_back(&data_.sequences[ex.rejected]);
  const Padded p = pad(rows);
  if (vae()) {
    const auto e = last_token_features(backbone_->hidden_states(p.ids, p.mask), p.mask);  // [2B, E]
    return vpl_scores(heads_, e, context, at::Tensor());
  }
  const at::Tensor rewards = bt_->forward(p.ids, p.mask).select(1, 0);
  RewardScores s;
  s.chosen = rewards.slice(0, 0, B);
  s.rejected = rewards.slice(0, B, 2 * B);
  return s;
}

RewardScores RewardStage::train_scores(const std::vector<PreferenceExample>& batch, int64_t begin,
                                       int64_t end, const at::Tensor& z, int64_t* tokens) {
  const int64_t B = end - begin;
  std::vector<const std::vector<int32_t>*> rows;
  for (int64_t i = begin; i < end; ++i)
    rows.push_back(&data_.sequences[batch[i].chosen]);
  for (int64_t i = begin; i < end; ++i)
    rows.push_back(&data_.sequences[batch[i].rejected]);
  const Padded p = pad(rows);
  *tokens += p.tokens;
  AutocastGuard guard(autocast());
  at::Tensor rewards;
  if (vae()) {
    const auto e = last_token_features(backbone_->hidden_states(p.ids, p.mask), p.mask);  // [2B, E]
    const at::Tensor zb = z.slice(0, begin, end);
    rewards = heads_->decode(e, at::cat({zb, zb}, 0));
  } else {
    rewards = bt_->forward(p.ids, p.mask).select(1, 0);
  }
  RewardScores s;
  s.chosen = rewards.slice(0, 0, B);
  s.rejected = rewards.slice(0, B, 2 * B);
  return s;
}

void RewardStage::start_training() {
  if (bt_) bt_->train();
  backbone_->train();
  if (heads_) heads_->train();
}

void RewardStage::forward_backward(int64_t step, Optimizer& optimizer) {
  // Everything random about the step is drawn for its whole batch (examples, contexts, noise), so
  // micro-batching changes nothing but the order of float sums.
  const auto batch = next_batch(step);
  const int64_t N = static_cast<int64_t>(batch.size());
  std::mt19937_64 context_rng(static_cast<uint64_t>(r_.seed) * 1000003ULL + step);
  const int64_t anneal = r_.vae.kl_anneal_steps > 0 ? r_.vae.kl_anneal_steps : r_.train.max_steps;
  kl_weight_ = kl_weight(r_.vae.kl_schedule, r_.vae.kl_beta, step, anneal);
  tokens_ = 0;
  std::vector<int32_t> users;
  for (const auto& ex : batch)
    users.push_back(ex.user);
  if (adaptive_) {
    auto& drawn = phase_samples_[adaptive_->phase_of_step(step)];
    for (int32_t u : users)
      ++drawn[u];
  }
  at::Tensor mean, logvar, z;
  if (vae()) {
    // q(z | context) of the step's N examples (cheap: the context embeddings are precomputed)
    // and the reparameterised z = mean + exp(logvar / 2) * eps, eps ~ N(0, I) from torch's
    // default generator, float32 whatever the precision.
    const at::Tensor context = contexts(batch, context_rng);
    const at::Tensor eps = at::randn({N, r_.vae.latent_dim}, at::kFloat);
    AutocastGuard guard(autocast());
    std::tie(mean, logvar) = heads_->encode(context);
    z = mean + at::exp(0.5 * logvar) * eps.to(mean.scalar_type());
  }
  const RewardLossOptions loss_options{vae(), kl_weight_, r_.vae.contrastive,
                                       r_.train.grad_surgery};
  record_ = reward_step_accumulate(
      [&](int64_t begin, int64_t end) { return train_scores(batch, begin, end, z, &tokens_); },
      r_.train.batch_size, users, mean, logvar, trainable(), loss_options, rng_);
}

StepResult RewardStage::step_result(int64_t step) {
  return {record_["loss"].get<double>(), tokens_, record_};
}

void RewardStage::on_log(int64_t step, nlohmann::json& record) {
  record["kl_weight"] = kl_weight_;
  if (adaptive_) record["phase"] = adaptive_->phase_of_step(step - 1);
}

nlohmann::json RewardStage::evaluate(std::string* predictions) {
  if (bt_) bt_->eval();
  backbone_->eval();
  if (heads_) heads_->eval();
  torch::NoGradGuard no_grad;
  const int64_t U = data_.num_users();
  // Per user: the first eval_pairs_per_user of its held-out pairs, fixed contexts per pair.
  std::vector<std::vector<PreferenceExample>> of_user(U);
  for (const auto& ex : data_.eval) {
    auto& mine = of_user[ex.user];
    if (r_.train.eval_pairs_per_user == 0 ||
        static_cast<int64_t>(mine.size()) < r_.train.eval_pairs_per_user)
      mine.push_back(ex);
  }
  std::mt19937_64 context_rng(0xe7a1ULL);  // the same contexts at every evaluation
  nlohmann::json record;
  std::vector<double> all;
  double accuracy_sum = 0;
  int64_t users_seen = 0;
  constexpr size_t kChunk = 64;
  for (int64_t u = 0; u < U; ++u) {
    std::vector<double> margins;
    for (size_t i = 0; i < of_user[u].size(); i += kChunk) {
      const std::vector<PreferenceExample> chunk(
          of_user[u].begin() + i, of_user[u].begin() + std::min(i + kChunk, of_user[u].size()));
      const at::Tensor context = vae() ? contexts(chunk, context_rng) : at::Tensor();
      const RewardScores s = score(chunk, context);
      const at::Tensor d = (s.chosen.to(at::kDouble) - s.rejected.to(at::kDouble)).contiguous();
      for (size_t j = 0; predictions && j < chunk.size(); ++j) {
        *predictions += nlohmann::json({{"user", data_.user_names[u]},
                                        {"chosen_ids", data_.sequences[chunk[j].chosen]},
                                        {"rejected_ids", data_.sequences[chunk[j].rejected]},
                                        {"reward_chosen", s.chosen[j].item<double>()},
                                        {"reward_rejected", s.rejected[j].item<double>()}})
                            .dump() +
                        "\n";
      }
      margins.insert(margins.end(), d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
    }
    if (margins.empty()) continue;
    const PairMetrics m = pair_metrics(margins);
    const std::string prefix = "eval/" + data_.user_names[u] + "/";
    record[prefix + "accuracy"] = m.accuracy;
    record[prefix + "auc"] = m.auc;
    record[prefix + "loss"] = m.loss;
    accuracy_sum += m.accuracy;
    ++users_seen;
    all.insert(all.end(), margins.begin(), margins.end());
  }
  const PairMetrics m = pair_metrics(all);
  record["eval/accuracy"] = m.accuracy;
  record["eval/auc"] = m.auc;
  record["eval/loss"] = m.loss;
  record["eval/pairs"] = m.count;
  record["eval/mean_user_accuracy"] = accuracy_sum / std::max<int64_t>(1, users_seen);
  record["epoch"] = static_cast<double>(loop_.step() * pairs_per_step(r_)) / data_.train.size();
  loop_.metrics()->log(loop_.step(), record);
  std::cerr << "[reward] step " << loop_.step() << " eval accuracy " << m.accuracy << " auc "
            << m.auc << " loss " << m.loss << " (" << m.count << " pairs)\n";
  if (!converged_step_ && m.accuracy >= r_.train.converge_accuracy) converged_step_ = loop_.step();
  last_eval_ = record;
  curve_.push_back({{"step", loop_.step()}, {"accuracy", m.accuracy}});
  if (bt_) bt_->train();
  backbone_->train();
  if (heads_) heads_->train();
  return record;
}

void RewardStage::finish(int64_t step) {
  std::string predictions;
  const nlohmann::json final_eval = evaluate(&predictions);
  write_file_atomic(r_.output_dir / "eval_predictions.jsonl", predictions);
  const double wall = earlier_wall_ + steady_clock_seconds() - start_time_;
  const double pairs = static_cast<double>(data_.train.size());
  nlohmann::json summary = {
      {"stage", "reward"},
      {"reward_kind", to_string(r_.reward.kind)},
      {"sampling", to_string(r_.train.sampling)},
      {"grad_surgery", to_string(r_.train.grad_surgery)},
      {"contrastive", r_.vae.contrastive},
      {"seed", r_.seed},
      {"users", data_.num_users()},
      {"train_pairs", data_.train.size()},
      {"eval_pairs", final_eval["eval/pairs"]},
      {"steps", loop_.step()},
      {"pairs_per_step", pairs_per_step(r_)},
      {"precision", to_string(r_.train.precision)},
      {"epochs", loop_.step() * pairs_per_step(r_) / pairs},
      {"accuracy", final_eval["eval/accuracy"]},
      {"auc", final_eval["eval/auc"]},
      {"loss", final_eval["eval/loss"]},
      {"mean_user_accuracy", final_eval["eval/mean_user_accuracy"]},
      {"converge_accuracy", r_.train.converge_accuracy},
      {"converged", converged_step_.has_value()},
      {"converge_step", converged_step_ ? nlohmann::json(*converged_step_) : nlohmann::json()},
      {"converge_epoch", converged_step_
                             ? nlohmann::json(*converged_step_ * pairs_per_step(r_) / pairs)
                             : nlohmann::json()},
      {"wall_seconds", wall},
      {"eval_curve", curve_}};
  nlohmann::json per_user;
  for (const auto& name : data_.user_names)
    if (final_eval.contains("eval/" + name + "/accuracy"))
      per_user[name] = final_eval["eval/" + name + "/accuracy"];
  summary["user_accuracy"] = per_user;
  if (vae()) summary["context_cache"] = context_cache_hit_ ? "hit" : "computed";
  if (adaptive_) {
    // What the run drew: per phase, its group-B user and the examples of each user.
    nlohmann::json phases = nlohmann::json::array();
    for (size_t phase = 0; phase < phase_samples_.size(); ++phase) {
      const int64_t drawn =
          std::accumulate(phase_samples_[phase].begin(), phase_samples_[phase].end(), int64_t{0});
      if (drawn == 0) continue;
      nlohmann::json samples;
      for (size_t u = 0; u < phase_samples_[phase].size(); ++u)
        samples[data_.user_names[u]] = phase_samples_[phase][u];
      const int64_t n = static_cast<int64_t>(phase_samples_.size()) - 1;
      phases.push_back(
          {{"phase", phase},
           {"group_b", static_cast<int64_t>(phase) < n
                           ? nlohmann::json(data_.user_names[adaptive_->options().order[phase]])
                           : nlohmann::json()},
           {"samples", samples}});
    }
    summary["adaptive_phases"] = phases;
  }
  write_file_atomic(r_.output_dir / "summary.json", summary.dump(2) + "\n");

  if (r_.export_.enabled) {
    const fs::path out = r_.output_dir / "export";
    if (bt_) {
      save_reward_model(out, bt_, r_.export_.merge_lora, r_.tokenizer);
    } else {
      save_vpl_export(out, *backbone_, heads_, lora_, r_.export_.merge_lora, r_.tokenizer);
    }
    std::cerr << "[reward] exported to " << out.string() << "\n";
  }
  std::cerr << "[reward] done: accuracy " << summary["accuracy"] << ", "
            << (converged_step_ ? "converged at step " + std::to_string(*converged_step_)
                                : "did not reach " + summary["converge_accuracy"].dump())
            << ", " << format_duration(wall) << "; summary in "
            << (r_.output_dir / "summary.json").string() << "\n";
}

}  // namespace

void run_reward_stage(const RewardRecipe& recipe) {
  // One process: `tailor run` refuses mpirun for this stage before anything is written.
  run_stage<RewardStage>(recipe, loop_config(recipe), dist::world());
}

}  // namespace tailor
