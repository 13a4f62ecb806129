#include "stages/elicit/pref_stage.h"

#include <cmath>
#include <iomanip>
#include <map>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>

#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/fixed_digits.h"
#include "common/seeded_random.h"
#include "data/sampling/epoch_sampler.h"
#include "dist/runtime.h"
#include "judges/elicit/pref_factorization.h"
#include "judges/elicit/simulated_users.h"
#include "models/heads/multi_reward.h"
#include "models/io/multi_reward_export.h"
#include "stages/elicit/elicit_data.h"
#include "stages/elicit/elicit_session.h"
#include "stages/elicit/elicit_users.h"
#include "train/loop/metrics.h"
#include "train/optim/adamw.h"

namespace tailor {
namespace fs = std::filesystem;
namespace {

using Users = std::map<std::string, judges::OracleWeights>;

// Each user answers `per_user` distinct pairs (a partial shuffle of their own stream): 1 when
// the pair's first completion wins the user's vote over `verdicts` [pairs, K], 0 when the second
// does, 0.5 for a tie.
std::vector<elicit::Observation> answer_pairs(const std::vector<judges::OracleWeights>& users,
                                              const std::vector<std::string>& oracles,
                                              const at::Tensor& verdicts, int64_t per_user,
                                              uint64_t seed) {
  const int64_t P = verdicts.size(0);
  const auto v = verdicts.accessor<float, 2>();
  std::vector<elicit::Observation> out;
  std::vector<int64_t> order(static_cast<size_t>(P));
  for (size_t u = 0; u < users.size(); ++u) {
    std::mt19937_64 rng(splitmix64(seed ^ splitmix64(u)));
    std::iota(order.begin(), order.end(), 0);
    const int64_t n = std::min(per_user, P);
    for (int64_t i = 0; i < n; ++i) {
      std::swap(order[i], order[i + static_cast<int64_t>(uniform_below(rng, P - i))]);
      const int64_t m = order[i];
      double vote = 0;
      for (size_t k = 0; k < oracles.size(); ++k)
        vote += users[u].at(oracles[k]) * v[m][static_cast<int64_t>(k)];
      const double answer = std::abs(vote) <= 1e-12 ? 0.5 : vote > 0 ? 1.0 : 0.0;
      out.push_back({static_cast<int64_t>(u), m, answer});
    }
  }
  return out;
}

std::vector<elicit::Observation> decided(const std::vector<elicit::Observation>& all) {
  std::vector<elicit::Observation> out;
  for (const auto& o : all)
    if (o.answer != 0.5) out.push_back(o);
  return out;
}

class PrefStage final : public TrainingStage {
 public:
  PrefStage(const ElicitRecipe& recipe, TrainingLoop& loop);

  void forward_backward(int64_t step, Optimizer& optimizer) override;
  StepResult step_result(int64_t) override { return {loss_, 0, record_}; }
  void evaluate(int64_t step) override;
  TensorMap restorable_tensors() override {
    return {{"phi.weight", phi_->hidden_layer->weight}, {"lambda", lambda_}};
  }
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
  // The logits lambda_u . (phi(a) - phi(b)) of observations over `pairs`, and their signs c.
  std::pair<at::Tensor, at::Tensor> logits(const std::vector<elicit::Observation>& observations,
                                           const std::vector<RowPair>& pairs,
                                           const std::vector<int64_t>& which);
  nlohmann::json dev_metrics();

  const ElicitRecipe& r_;
  TrainingLoop& loop_;
  Tokenizer tokenizer_;
  CausalLM backbone_;
  ElicitData data_;
  MultiReward phi_{nullptr};  // features -> J (the hidden layer is W^T), one head: the mean user
  at::Tensor lambda_;         // [training users, J]
  std::vector<RowPair> train_pairs_, dev_pairs_;
  std::vector<elicit::Observation> train_, dev_;  // decided answers only (ties carry no term)
  std::optional<data::EpochSampler> sampler_;
  nlohmann::json factorisation_;
  nlohmann::json dev_curve_ = nlohmann::json::array();
  double loss_ = 0;
  nlohmann::json record_;
  double started_ = steady_clock_seconds();
};

PrefStage::PrefStage(const ElicitRecipe& recipe, TrainingLoop& loop)
    : r_(recipe),
      loop_(loop),
      tokenizer_(Tokenizer::from_dir(recipe.tokenizer)),
      backbone_(frozen_backbone(recipe)) {
  data_ = prepare_elicit_data(r_, *backbone_, tokenizer_, loop_.log());
  const auto& p = r_.pref;
  const auto seed = static_cast<uint64_t>(r_.generate.seed);
  train_pairs_ = random_pairs(data_, data_.question_prompts, r_.reward.pairs_per_prompt, seed);
  dev_pairs_ = random_pairs(data_, data_.heldout_prompts, r_.reward.pairs_per_prompt, seed + 1);
  const at::Tensor train_verdicts = oracle_verdicts(data_, train_pairs_, r_.reward.oracles);
  const at::Tensor dev_verdicts = oracle_verdicts(data_, dev_pairs_, r_.reward.oracles);

  // 1. Training users and the matrix of their answers, factorised at rank J.
  elicit::SimulatedUsersConfig population{p.training_users, p.dirichlet_alpha, p.flip_probability,
                                          splitmix64(static_cast<uint64_t>(r_.seed) ^ 0x7e4f)};
  const auto users = elicit::simulated_users(r_.reward.oracles, population);
  const std::vector<elicit::Observation> answers =
      answer_pairs(users, r_.reward.oracles, train_verdicts, p.answers_per_user,
                   splitmix64(population.seed + 1));
  train_ = decided(answers);
  dev_ = decided(answer_pairs(users, r_.reward.oracles, dev_verdicts, p.dev_answers_per_user,
                              splitmix64(population.seed + 2)));
  if (train_.empty() || dev_.empty())
    throw Error("elicit",
                "every training user's answer was a tie; the factorisation has nothing "
                "to fit (check reward.oracles)");
  const auto U = static_cast<int64_t>(users.size());
  const auto P = static_cast<int64_t>(train_pairs_.size());
  const int64_t J = p.rank;
  if (J > std::min(U, P))
    throw Error("recipe", "pref.rank: " + std::to_string(J) + " exceeds the matrix's " +
                              std::to_string(U) + " users x " + std::to_string(P) + " pairs");
  loop_.log() << "[pref] " << U << " training users answered " << answers.size() << " of " << U * P
              << " (user, pair) cells (" << fixed_digits(100.0 * answers.size() / (U * P), 1)
              << "%), " << answers.size() - train_.size() << " of them ties; factorising at rank "
              << J << "\n";
  elicit::ImputeConfig impute;
  impute.max_iterations = p.impute_iterations;
  impute.svd.seed = splitmix64(population.seed + 3);
  const auto start = steady_clock_seconds();
  const elicit::LowRankFactors factors =
      elicit::impute_low_rank(elicit::preference_matrix(U, P, answers), U, P, J, impute);
  factorisation_ = {{"training_users", U},
                    {"training_pairs", P},
                    {"observed_cells", answers.size()},
                    {"rank", J},
                    {"impute_iterations", factors.iterations},
                    {"impute_converged", factors.converged},
                    {"impute_last_change", factors.last_change},
                    {"singular_values", factors.singular_values},
                    {"impute_seconds", steady_clock_seconds() - start}};
  loop_.log() << "[pref] imputation: " << factors.iterations << " SVDs, "
              << (factors.converged ? "converged" : "not converged") << " (last change "
              << factors.last_change << "); singular values";
  for (double s : factors.singular_values)
    loop_.log() << " " << fixed_digits(s, 1);
  loop_.log() << "\n";

  // 2. The linear head on standardised features, fitted to Phi.
  MultiRewardConfig config;
  config.embed_dim = data_.features.size(1);
  config.hidden_dim = J;
  config.dropout = 0;
  config.heads = {"mean_user"};
  phi_ = MultiReward(config);
  phi_->set_standardization(question_features(data_));
  std::vector<int64_t> a, b;
  for (const auto& pair : train_pairs_)
    a.push_back(pair.a), b.push_back(pair.b);
  const at::Tensor x = ((data_.features.index_select(0, at::tensor(a, at::kLong)) -
                         data_.features.index_select(0, at::tensor(b, at::kLong))) /
                        phi_->feature_scale)
                           .to(at::kDouble)
                           .contiguous();
  const elicit::PairFeatures pair_features{
      P, x.size(1), {x.data_ptr<double>(), x.data_ptr<double>() + x.numel()}};
  const std::vector<double> w = elicit::fit_linear_head(pair_features, factors.right, J, p.head_l2);
  {
    c10::NoGradGuard no_grad;
    phi_->hidden_layer->weight.copy_(at::tensor(w, at::kDouble).view({x.size(1), J}).t());
    phi_->hidden_layer->bias.zero_();  // cancels in every difference: kept at 0, not trained
  }
  phi_->hidden_layer->bias.set_requires_grad(false);
  lambda_ =
      at::tensor(factors.left, at::kDouble).view({U, J}).to(at::kFloat).set_requires_grad(true);

  // 3. The joint refinement: the training loop's optimizer over W and Lambda. The L2 terms are in
  // the loss (as in the paper), so neither parameter decays.
  loop_.set_optimizer(Optimizer::replicated(
      {{"phi.weight", phi_->hidden_layer->weight, false}, {"lambda", lambda_, false}},
      AdamWConfig{r_.optimizer.beta1, r_.optimizer.beta2, r_.optimizer.eps, 0.0}, loop_.comm()));
  sampler_.emplace(static_cast<int64_t>(train_.size()), static_cast<uint64_t>(r_.seed));
  const nlohmann::json initial = dev_metrics();
  loop_.log() << "[pref] linear head " << config.embed_dim << " features -> " << J
              << " fitted to Phi; before refinement: dev accuracy "
              << fixed_digits(initial.at("dev_accuracy").get<double>(), 3) << ", dev AUC "
              << fixed_digits(initial.at("dev_auc").get<double>(), 3)
              << " (training users, held-out "
              << "prompts' pairs)\n";
  factorisation_["initial_dev"] = initial;
}

std::pair<at::Tensor, at::Tensor> PrefStage::logits(
    const std::vector<elicit::Observation>& observations, const std::vector<RowPair>& pairs,
    const std::vector<int64_t>& which) {
  std::vector<int64_t> users, a, b;
  std::vector<float> sign;
  for (int64_t i : which) {
    const auto& o = observations[static_cast<size_t>(i)];
    users.push_back(o.user);
    a.push_back(pairs[static_cast<size_t>(o.pair)].a);
    b.push_back(pairs[static_cast<size_t>(o.pair)].b);
    sign.push_back(o.answer > 0.5 ? 1.0f : -1.0f);
  }
  const auto B = static_cast<int64_t>(which.size());
  const at::Tensor phi =
      phi_->hidden(at::cat({data_.features.index_select(0, at::tensor(a, at::kLong)),
                            data_.features.index_select(0, at::tensor(b, at::kLong))}));
  const at::Tensor difference = phi.slice(0, 0, B) - phi.slice(0, B, 2 * B);
  const at::Tensor lambda = lambda_.index_select(0, at::tensor(users, at::kLong));
  return {(lambda * difference).sum(1), at::tensor(sign)};
}

void PrefStage::forward_backward(int64_t, Optimizer& optimizer) {
  const std::vector<int64_t> batch = sampler_->next_batch(r_.train.batch_size);
  const auto [logit, c] = logits(train_, train_pairs_, batch);
  // factorization_loss (judges/elicit/pref_factorization.h) on the minibatch: the user's L2 term
  // rides with each observation, the head's once.
  std::vector<int64_t> users;
  for (int64_t i : batch)
    users.push_back(train_[static_cast<size_t>(i)].user);
  const at::Tensor lambda = lambda_.index_select(0, at::tensor(users, at::kLong));
  const at::Tensor nll = -at::log_sigmoid(c * logit).mean();
  const at::Tensor loss = nll + r_.pref.lambda_l2 * lambda.pow(2).sum(1).mean() +
                          r_.pref.w_l2 * phi_->hidden_layer->weight.pow(2).sum();
  loss.backward();
  optimizer.after_backward();
  loss_ = loss.item<double>();
  record_ = {{"loss", loss_},
             {"nll", nll.item<double>()},
             {"accuracy", ((c * logit) > 0).to(at::kFloat).mean().item<double>()}};
}

nlohmann::json PrefStage::dev_metrics() {
  c10::NoGradGuard no_grad;
  std::vector<int64_t> all(dev_.size());
  std::iota(all.begin(), all.end(), 0);
  const auto [logit, c] = logits(dev_, dev_pairs_, all);
  const at::Tensor signed_logit = (c * logit).to(at::kDouble).contiguous();
  const std::vector<double> s(signed_logit.data_ptr<double>(),
                              signed_logit.data_ptr<double>() + signed_logit.numel());
  double right = 0;
  for (double v : s)
    right += v > 0 ? 1.0 : v == 0 ? 0.5 : 0.0;
  return {{"dev_accuracy", right / static_cast<double>(s.size())},
          {"dev_auc", signed_margin_auc(s)},
          {"dev_nll", -at::log_sigmoid(signed_logit).mean().item<double>()}};
}

void PrefStage::evaluate(int64_t step) {
  const nlohmann::json dev = dev_metrics();
  dev_curve_.push_back({{"step", step}, {"dev", dev}});
  loop_.log() << "[pref] step " << step << ": dev accuracy "
              << fixed_digits(dev.at("dev_accuracy").get<double>(), 3) << ", AUC "
              << fixed_digits(dev.at("dev_auc").get<double>(), 3) << ", NLL "
              << fixed_digits(dev.at("dev_nll").get<double>(), 3) << "\n";
  if (loop_.metrics()) loop_.metrics()->log(step, dev);
}

void PrefStage::finish(int64_t) {
  const nlohmann::json dev = dev_metrics();
  // The unpersonalised model: the mean training user, as the export's one head.
  const at::Tensor mean_user = lambda_.detach().mean(0).to(at::kDouble).contiguous();
  {
    c10::NoGradGuard no_grad;
    phi_->heads->weight.copy_(mean_user.view({1, -1}));
    phi_->heads->bias.zero_();
  }
  FeatureEncoding encoding{r_.data.prompt_template, r_.data.max_length};
  const fs::path export_dir = r_.output_dir / "export";
  const std::string model_id =
      save_multi_reward_export(export_dir, *backbone_, *phi_, encoding, r_.tokenizer);
  loop_.log() << "[pref] exported phi (features -> " << r_.pref.rank << " base rewards) to "
              << export_dir.string() << " (id " << model_id << ")\n";

  Users users = r_.users;
  if (r_.pref.new_users > 0) {
    elicit::SimulatedUsersConfig fresh{r_.pref.new_users, r_.pref.dirichlet_alpha,
                                       r_.pref.flip_probability,
                                       splitmix64(static_cast<uint64_t>(r_.seed) ^ 0x9e3b)};
    const auto drawn = elicit::simulated_users(r_.reward.oracles, fresh);
    for (size_t i = 0; i < drawn.size(); ++i) {
      std::ostringstream name;
      name << "simulated_" << std::setw(2) << std::setfill('0') << i + 1;
      users[name.str()] = drawn[i];
    }
  }
  const Embeddings h = embed_candidates(*phi_, data_.features);
  const ElicitModel model{
      h,
      {mean_user.data_ptr<double>(), mean_user.data_ptr<double>() + mean_user.numel()},
      model_id};
  const nlohmann::json answered = elicit_users(r_, data_, model, users, loop_.log());
  nlohmann::json reward_model = {{"path", export_dir.string()},
                                 {"id", model_id},
                                 {"factorisation", factorisation_},
                                 {"dev", dev},
                                 {"dev_curve", dev_curve_}};
  write_elicit_summary(r_, answered, reward_model, started_, loop_.log());
}

}  // namespace

void run_pref_stage(const ElicitRecipe& recipe, LoopConfig config) {
  run_stage<PrefStage>(recipe, std::move(config), dist::world());
}

}  // namespace tailor
