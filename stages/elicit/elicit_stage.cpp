#include "stages/elicit/elicit_stage.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>

#include <c10/core/GradMode.h>
#include <torch/nn/functional/activation.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/fixed_digits.h"
#include "data/sampling/epoch_sampler.h"
#include "dist/runtime.h"
#include "judges/oracles.h"
#include "models/heads/multi_reward.h"
#include "models/io/multi_reward_export.h"
#include "models/io/safetensors.h"
#include "models/tokenizer/tokenizer.h"
#include "stages/elicit/elicit_data.h"
#include "stages/elicit/elicit_session.h"
#include "stages/elicit/elicit_users.h"
#include "stages/elicit/pref_stage.h"
#include "train/loop/metrics.h"
#include "train/loop/model_setup.h"
#include "train/loop/recipe_loop_config.h"
#include "train/loop/training_loop.h"
#include "train/optim/adamw.h"

namespace tailor {
namespace fs = std::filesystem;
namespace {

LoopConfig elicit_loop_config(const ElicitRecipe& r) {
  LoopConfig c = recipe_loop_config(r, "elicit", elicit_recipe_hash(r), RecipeChange::kRefuse);
  c.checkpoint_at_end = false;
  c.log_memory = false;
  return c;
}

class ElicitStage final : public TrainingStage {
 public:
  ElicitStage(const ElicitRecipe& recipe, TrainingLoop& loop);

  void forward_backward(int64_t step, Optimizer& optimizer) override;
  StepResult step_result(int64_t step) override { return {loss_, 0, record_}; }
  void evaluate(int64_t step) override;
  TensorMap restorable_tensors() override { return parameters_by_name(*model_); }
  TensorMap frozen_tensors_to_save() override { return {}; }
  void save_state(TrainerState& state) override {
    state.epoch = sampler_->position().epoch;
    state.sample_position = sampler_->position().index;
  }
  void load_state(const TrainerState& state, const std::string&) override {
    sampler_->set_position({state.epoch, state.sample_position});
  }
  void finish(int64_t step) override;

 private:
  // Rewards difference r(a) - r(b) [B, K] and labels [B, K] (+1, -1, 0 = a tie) of `pairs`.
  std::pair<at::Tensor, at::Tensor> margins(const std::vector<int64_t>& pairs,
                                            const std::vector<RowPair>& rows,
                                            const at::Tensor& labels);
  nlohmann::json dev_accuracy();

  const ElicitRecipe& r_;
  TrainingLoop& loop_;
  Tokenizer tokenizer_;
  CausalLM backbone_;
  ElicitData data_;
  MultiReward model_{nullptr};
  std::vector<RowPair> train_pairs_, dev_pairs_;
  at::Tensor train_labels_, dev_labels_;  // [pairs, K]
  std::optional<data::EpochSampler> sampler_;
  double loss_ = 0;
  nlohmann::json record_;
  nlohmann::json dev_curve_ = nlohmann::json::array();
  double started_ = steady_clock_seconds();
};

ElicitStage::ElicitStage(const ElicitRecipe& recipe, TrainingLoop& loop)
    : r_(recipe),
      loop_(loop),
      tokenizer_(Tokenizer::from_dir(recipe.tokenizer)),
      backbone_(frozen_backbone(recipe)) {
  data_ = prepare_elicit_data(r_, *backbone_, tokenizer_, loop_.log());

  const auto seed = static_cast<uint64_t>(r_.generate.seed);
  train_pairs_ = random_pairs(data_, data_.question_prompts, r_.reward.pairs_per_prompt, seed);
  dev_pairs_ = random_pairs(data_, data_.heldout_prompts, r_.reward.pairs_per_prompt, seed + 1);
  train_labels_ = oracle_verdicts(data_, train_pairs_, r_.reward.oracles);
  dev_labels_ = oracle_verdicts(data_, dev_pairs_, r_.reward.oracles);

  MultiRewardConfig config;
  config.embed_dim = data_.features.size(1);
  config.hidden_dim = r_.reward.hidden_dim;
  config.dropout = r_.reward.dropout;
  config.heads = r_.reward.oracles;
  model_ = MultiReward(config);
  // Standardised by the question prompts' candidates only: held-out text stays unseen.
  model_->set_standardization(question_features(data_));

  std::vector<TrainableParameter> trainable;
  for (const auto& item : model_->named_parameters())
    trainable.push_back({item.key(), item.value(), decays_by_default(item.value())});
  loop_.set_optimizer(
      Optimizer::replicated(std::move(trainable),
                            AdamWConfig{r_.optimizer.beta1, r_.optimizer.beta2, r_.optimizer.eps,
                                        r_.optimizer.weight_decay},
                            loop_.comm()));
  sampler_.emplace(static_cast<int64_t>(train_pairs_.size()), static_cast<uint64_t>(r_.seed));
  loop_.log() << "[elicit] multi-reward model: " << config.embed_dim << " features -> "
              << config.hidden_dim << " hidden (dropout " << config.dropout << ") -> "
              << config.heads.size() << " heads; " << train_pairs_.size() << " training pairs, "
              << dev_pairs_.size() << " dev pairs\n";
}

std::pair<at::Tensor, at::Tensor> ElicitStage::margins(const std::vector<int64_t>& pairs,
                                                       const std::vector<RowPair>& rows,
                                                       const at::Tensor& labels) {
  std::vector<int64_t> a, b;
  for (int64_t i : pairs) {
    a.push_back(rows[static_cast<size_t>(i)].a);
    b.push_back(rows[static_cast<size_t>(i)].b);
  }
  const at::Tensor features = at::cat({data_.features.index_select(0, at::tensor(a, at::kLong)),
                                       data_.features.index_select(0, at::tensor(b, at::kLong))},
                                      0);
  const at::Tensor r = model_->forward(features);  // one pass: a's then b's rows
  const auto B = static_cast<int64_t>(pairs.size());
  return {r.slice(0, 0, B) - r.slice(0, B, 2 * B),
          labels.index_select(0, at::tensor(pairs, at::kLong))};
}

void ElicitStage::forward_backward(int64_t step, Optimizer& optimizer) {
  model_->train();
  const auto [margin, labels] =
      margins(sampler_->next_batch(r_.train.batch_size), train_pairs_, train_labels_);
  // Bradley-Terry per head on the pairs its oracle decided (ties carry no term).
  const at::Tensor decided = labels.ne(0).to(at::kFloat);
  const at::Tensor loss =
      -(at::log_sigmoid(margin * labels) * decided).sum() / decided.sum().clamp_min(1);
  loss.backward();
  optimizer.after_backward();
  const at::Tensor right = ((margin * labels) > 0).to(at::kFloat) * decided;
  loss_ = loss.item<double>();
  record_ = {{"loss", loss_},
             {"accuracy", (right.sum() / decided.sum().clamp_min(1)).item<double>()}};
}

nlohmann::json ElicitStage::dev_accuracy() {
  c10::NoGradGuard no_grad;
  model_->eval();
  std::vector<int64_t> all(dev_pairs_.size());
  std::iota(all.begin(), all.end(), 0);
  const auto [margin, labels] = margins(all, dev_pairs_, dev_labels_);
  nlohmann::json out = nlohmann::json::object();
  double sum = 0;
  int64_t heads = 0;
  for (size_t k = 0; k < r_.reward.oracles.size(); ++k) {
    const at::Tensor m = margin.select(1, static_cast<int64_t>(k));
    const at::Tensor y = labels.select(1, static_cast<int64_t>(k));
    const at::Tensor decided = y.ne(0).to(at::kFloat);
    const double n = decided.sum().item<double>();
    // An oracle that ties on every dev pair (no newlines anywhere, say) has no accuracy.
    if (n == 0) {
      out[r_.reward.oracles[k]] = nullptr;
      continue;
    }
    const double acc = (((m * y) > 0).to(at::kFloat) * decided).sum().item<double>() / n;
    out[r_.reward.oracles[k]] = acc;
    sum += acc;
    ++heads;
  }
  out["mean"] = heads > 0 ? nlohmann::json(sum / static_cast<double>(heads)) : nlohmann::json();
  return out;
}

void ElicitStage::evaluate(int64_t step) {
  const nlohmann::json acc = dev_accuracy();
  dev_curve_.push_back({{"step", step}, {"dev_accuracy", acc}});
  loop_.log() << "[elicit] step " << step << ": dev accuracy of the heads, mean "
              << (acc.at("mean").is_number() ? fixed_digits(acc.at("mean").get<double>(), 3) : "-")
              << "\n";
  if (loop_.metrics()) loop_.metrics()->log(step, {{"dev_accuracy", acc}});
}

void ElicitStage::finish(int64_t step) {
  const nlohmann::json dev = dev_accuracy();
  loop_.log() << "[elicit] dev accuracy per head (held-out prompts):";
  const auto shown = [](const nlohmann::json& v) {
    return v.is_number() ? fixed_digits(v.get<double>(), 3) : std::string("- (every pair a tie)");
  };
  for (const auto& name : r_.reward.oracles)
    loop_.log() << " " << name << " " << shown(dev.at(name));
  loop_.log() << "; mean " << shown(dev.at("mean")) << "\n";

  const double scale = model_->normalize_heads();
  loop_.log() << "[elicit] hidden layer rescaled by " << fixed_digits(scale, 3)
              << " (the largest head now has norm 1, inside the prior's unit ball)\n";
  FeatureEncoding encoding{r_.data.prompt_template, r_.data.max_length};
  const fs::path export_dir = r_.output_dir / "export";
  const std::string model_id =
      save_multi_reward_export(export_dir, *backbone_, *model_, encoding, r_.tokenizer);
  loop_.log() << "[elicit] exported the multi-reward model to " << export_dir.string() << " (id "
              << model_id << ")\n";

  const Embeddings h = embed_candidates(*model_, data_.features);
  const at::Tensor mean_head = model_->mean_head().to(at::kDouble).contiguous();
  const ElicitModel elicit_model{
      h,
      {mean_head.data_ptr<double>(), mean_head.data_ptr<double>() + mean_head.numel()},
      model_id};
  const nlohmann::json users = elicit_users(r_, data_, elicit_model, r_.users, loop_.log());
  write_elicit_summary(r_, users,
                       {{"path", export_dir.string()},
                        {"id", model_id},
                        {"dev_accuracy", dev},
                        {"dev_curve", dev_curve_}},
                       started_, loop_.log());
}

}  // namespace

void run_elicit_stage(const ElicitRecipe& recipe) {
  // One process: `tailor run` refuses mpirun for this stage before anything is written.
  if (recipe.elicit.method == ElicitMethod::kPref)
    run_pref_stage(recipe, elicit_loop_config(recipe));
  else
    run_stage<ElicitStage>(recipe, elicit_loop_config(recipe), dist::world());
}

}  // namespace tailor
