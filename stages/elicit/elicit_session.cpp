#include "stages/elicit/elicit_session.h"

#include <algorithm>
#include <random>
#include <sstream>

#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/fnv1a.h"
#include "models/heads/multi_reward.h"
#include "models/io/multi_reward_export.h"
#include "models/io/safetensors.h"
#include "stages/elicit/learners.h"
#include "train/features/response_features.h"

namespace tailor {
namespace fs = std::filesystem;

Embeddings embed_candidates(MultiRewardImpl& model, const at::Tensor& features) {
  c10::NoGradGuard no_grad;
  model.eval();
  const at::Tensor hidden = model.hidden(features).to(at::kDouble).contiguous();
  Embeddings h;
  h.dim = hidden.size(1);
  h.values.assign(hidden.data_ptr<double>(), hidden.data_ptr<double>() + hidden.numel());
  return h;
}

double pair_accuracy(const Embeddings& h, const std::vector<double>& w,
                     const std::vector<RowPair>& pairs) {
  if (pairs.empty()) return NAN;
  double right = 0;
  for (const auto& p : pairs) {
    double margin = 0;
    for (int64_t i = 0; i < h.dim; ++i)
      margin += w[i] * (h.row(p.a)[i] - h.row(p.b)[i]);
    right += margin * p.label > 0 ? 1.0 : margin == 0 ? 0.5 : 0.0;
  }
  return right / static_cast<double>(pairs.size());
}

double pair_auc(const Embeddings& h, const std::vector<double>& w,
                const std::vector<RowPair>& pairs) {
  std::vector<double> signed_margins;
  for (const auto& p : pairs) {
    double margin = 0;
    for (int64_t i = 0; i < h.dim; ++i)
      margin += w[i] * (h.row(p.a)[i] - h.row(p.b)[i]);
    signed_margins.push_back(p.label > 0 ? margin : -margin);
  }
  return signed_margin_auc(signed_margins);
}

double signed_margin_auc(const std::vector<double>& signed_margins) {
  if (signed_margins.empty()) return NAN;
  // Positives score s, negatives -s. AUC = P(a positive's score > a negative's) + P(equal) / 2,
  // by ranks (Mann-Whitney U) over the 2n scores.
  std::vector<std::pair<double, bool>> scored;  // (score, positive)
  for (double s : signed_margins) {
    scored.push_back({s, true});
    scored.push_back({-s, false});
  }
  std::sort(scored.begin(), scored.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });
  double positive_rank_sum = 0;  // 1-based ranks, tied scores sharing their mean rank
  for (size_t i = 0; i < scored.size();) {
    size_t j = i;
    while (j < scored.size() && scored[j].first == scored[i].first)
      ++j;
    const double mean_rank = 0.5 * static_cast<double>(i + 1 + j);
    for (size_t k = i; k < j; ++k)
      if (scored[k].second) positive_rank_sum += mean_rank;
    i = j;
  }
  const auto n = static_cast<double>(signed_margins.size());  // positives = negatives = n
  return (positive_rank_sum - n * (n + 1) / 2) / (n * n);
}

std::function<QuestionPool(int64_t)> question_pools(const ElicitRecipe& r, const ElicitData& data,
                                                    const Embeddings& h, const std::string& user) {
  std::vector<int64_t> order = data.question_prompts;
  // FNV-1a of the name: std::hash may differ between standard libraries.
  const uint64_t name_hash = Fnv1a64().update(user).value();
  std::mt19937_64 rng(static_cast<uint64_t>(r.seed) * 1000003ULL ^ name_hash);
  for (int64_t i = static_cast<int64_t>(order.size()) - 1; i > 0; --i)
    std::swap(order[i], order[rng() % static_cast<uint64_t>(i + 1)]);
  return [&data, &h, order](int64_t t) {
    if (t < 0 || t >= static_cast<int64_t>(order.size()))
      throw Error("elicit", "question " + std::to_string(t + 1) + " asked, but only " +
                                std::to_string(order.size()) + " prompts are left for questions");
    const auto& c = data.prompts[static_cast<size_t>(order[static_cast<size_t>(t)])];
    QuestionPool pool{c.prompt, c.texts, {}};
    pool.features.assign(h.row(c.first_row),
                         h.row(c.first_row + static_cast<int64_t>(c.texts.size())));
    return pool;
  };
}

QueryLoopConfig query_config(const ElicitRecipe& r, elicit::Selector selector, int64_t dim) {
  QueryLoopConfig config;
  config.selector = enum_name(elicit::selector_names(), selector);
  config.questions = r.question_counts().back();
  config.dim = dim;
  return config;
}

std::unique_ptr<Learner> make_learner(const ElicitRecipe& r, elicit::Selector selector,
                                      int64_t dim) {
  const uint64_t seed = static_cast<uint64_t>(r.seed) * 7919ULL + static_cast<uint64_t>(selector);
  if (r.elicit.method == ElicitMethod::kPref)
    return std::make_unique<PrefLearner>(selector, dim, r.pref.user_l2, seed);
  elicit::MhConfig mh;
  mh.samples = r.elicit.samples;
  mh.burn_in = r.elicit.burn_in;
  mh.thinning = r.elicit.thinning;
  mh.proposal_step = r.elicit.proposal_step;
  mh.seed = seed;
  return std::make_unique<TwentyQuestionsLearner>(selector, mh, dim, r.elicit.estimate_samples);
}

fs::path user_dir(const ElicitRecipe& r, const std::string& user, elicit::Selector selector) {
  return r.output_dir / "users" / user / enum_name(elicit::selector_names(), selector);
}

void check_profile_model(const fs::path& dir, const std::string& model_id) {
  const fs::path file = dir / "profile.json";
  if (!fs::exists(file)) return;
  nlohmann::json profile;
  try {
    profile = nlohmann::json::parse(read_file(file));
  } catch (const nlohmann::json::exception& e) {
    throw Error("elicit", file.string() + ": not valid JSON (" + e.what() + ")");
  }
  const std::string id = profile.value("reward_model_id", std::string());
  if (id != model_id)
    throw Error("elicit", file.string() + ": this profile was made with reward model " +
                              (id.empty() ? "(none)" : id) + " (" +
                              profile.value("reward_model", std::string("?")) +
                              "), not with this run's " + model_id +
                              "; its embedding means nothing under another model. Move the "
                              "user's folder away to start over with this model");
}

void write_profile(const fs::path& dir, const ElicitRecipe& r, const std::string& user,
                   elicit::Selector selector, const QueryLoopResult& result, const Learner& learner,
                   int64_t dim, const std::string& model_id, const std::vector<double>& metric) {
  nlohmann::json profile = {
      {"method", to_string(r.elicit.method)},
      {"user", user},
      {"selector", enum_name(elicit::selector_names(), selector)},
      {"answers", result.answers.size()},
      {"questions", r.question_counts().back()},
      {"reward_model", fs::absolute(r.output_dir / "export").lexically_normal().string()},
      {"reward_model_id", model_id},
      {"embedding_dim", dim}};
  fs::create_directories(dir);
  if (const auto* pref = dynamic_cast<const PrefLearner*>(&learner)) {
    profile["lambda"] = pref->user_fit().lambda;
    profile["hessian"] = pref->user_fit().hessian;  // [J, J] row-major: the fit's precision
    if (!metric.empty()) profile["heldout_auc"] = metric;
  } else {
    // The E samples of the estimate (the first M chose the last question); the posterior mean is
    // their mean projected onto the span of the answers' differences (learners.h).
    const auto& posterior = dynamic_cast<const TwentyQuestionsLearner&>(learner).estimate_samples();
    profile["posterior_mean"] = learner.estimate();
    profile["posterior_samples"] = "posterior.safetensors";
    profile["acceptance_rate"] = posterior.acceptance_rate;
    if (!metric.empty()) profile["heldout_accuracy"] = metric;
    safetensors::save(
        dir / "posterior.safetensors",
        {{"samples", at::tensor(posterior.values, at::kDouble).view({posterior.count(), dim})}});
  }
  write_file_atomic(dir / "profile.json", profile.dump(2) + "\n");
}

}  // namespace tailor
