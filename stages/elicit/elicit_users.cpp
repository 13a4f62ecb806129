#include "stages/elicit/elicit_users.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <memory>
#include <sstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/fixed_digits.h"
#include "stages/elicit/learners.h"
#include "stages/elicit/query_loop.h"
#include "train/loop/metrics.h"

namespace tailor {
namespace fs = std::filesystem;
namespace {

double metric_of(const ElicitRecipe& r, const Embeddings& h, const std::vector<double>& w,
                 const std::vector<RowPair>& pairs) {
  return r.elicit.method == ElicitMethod::kPref ? pair_auc(h, w, pairs)
                                                : pair_accuracy(h, w, pairs);
}

nlohmann::json elicit_user(const ElicitRecipe& r, const ElicitData& data, const ElicitModel& model,
                           const std::string& user, const judges::OracleWeights& weights,
                           std::ostream& log) {
  const char* metric = elicit_metric(r);
  const auto seed = static_cast<uint64_t>(r.generate.seed);
  const std::vector<RowPair> heldout = label_pairs(
      data, random_pairs(data, data.heldout_prompts, r.elicit.heldout_pairs_per_prompt, seed + 2),
      weights);
  if (heldout.empty())
    throw Error("elicit", "user '" + user +
                              "' prefers neither completion of any held-out pair "
                              "(every pair is a tie); nothing to score on");
  const Embeddings& h = model.h;
  nlohmann::json out = {
      {"heldout_pairs", heldout.size()},
      {std::string("default_") + metric, metric_of(r, h, model.default_weights, heldout)},
      {"selectors", nlohmann::json::object()}};

  const auto pool_of = question_pools(r, data, h, user);
  for (elicit::Selector selector : r.selectors()) {
    const std::string& name = enum_name(elicit::selector_names(), selector);
    const fs::path dir = user_dir(r, user, selector);
    // A new run asks again from the first question; a resumed one continues the answers.
    if (!r.train.resume) {
      fs::remove(dir / "answers.jsonl");
      fs::remove(dir / "profile.json");
    }
    check_profile_model(dir, model.model_id);
    const QueryLoopConfig config = query_config(r, selector, h.dim);
    std::vector<double> curve(static_cast<size_t>(config.questions + 1), NAN);
    OracleRespondent respondent(weights);
    const std::unique_ptr<Learner> learner = make_learner(r, selector, h.dim);
    const QueryLoopResult result = run_query_loop(
        config, pool_of, respondent, *learner, dir / "answers.jsonl",
        [&](int64_t t, const Learner& fitted) {
          curve[static_cast<size_t>(t)] = metric_of(r, h, fitted.estimate(), heldout);
        });
    // The curve before resumed answers: a fresh learner's fit to each prefix of them.
    if (result.resumed > 0) {
      const std::unique_ptr<Learner> replay = make_learner(r, selector, h.dim);
      for (int64_t t = 0; t < result.resumed; ++t) {
        replay->fit({result.answers.begin(), result.answers.begin() + t});
        curve[static_cast<size_t>(t)] = metric_of(r, h, replay->estimate(), heldout);
      }
    }
    nlohmann::json at_k = nlohmann::json::object();
    for (int64_t k : r.question_counts())
      at_k[std::to_string(k)] = curve[static_cast<size_t>(k)];
    out["selectors"][name] = {
        {metric, at_k}, {"curve", curve}, {"ms_per_question", result.ms_per_question}};
    if (const auto* q = dynamic_cast<const TwentyQuestionsLearner*>(learner.get()))
      out["selectors"][name]["acceptance_rate"] = q->posterior().acceptance_rate;
    write_profile(dir, r, user, selector, result, *learner, h.dim, model.model_id, curve);
    log << "[elicit] " << user << " / " << name << ": " << metric;
    for (int64_t k : r.question_counts())
      log << " K=" << k << " " << fixed_digits(curve[static_cast<size_t>(k)], 3);
    log << " (default " << fixed_digits(out[std::string("default_") + metric].get<double>(), 3)
        << ", " << fixed_digits(result.ms_per_question, 1) << " ms per question)\n";
  }
  return out;
}

}  // namespace

void log_elicit_table(const ElicitRecipe& r, const nlohmann::json& summary, std::ostream& log);

const char* elicit_metric(const ElicitRecipe& r) {
  return r.elicit.method == ElicitMethod::kPref ? "auc" : "accuracy";
}

nlohmann::json elicit_users(const ElicitRecipe& r, const ElicitData& data, const ElicitModel& model,
                            const std::map<std::string, judges::OracleWeights>& users,
                            std::ostream& log) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [user, weights] : users)
    out[user] = elicit_user(r, data, model, user, weights, log);
  return out;
}

nlohmann::json compare_selectors(const ElicitRecipe& r, const nlohmann::json& users) {
  nlohmann::json mean = nlohmann::json::object();
  for (elicit::Selector selector : r.selectors()) {
    const std::string& name = enum_name(elicit::selector_names(), selector);
    std::vector<double> sum;
    double n = 0;
    for (const auto& [user, u] : users.items()) {
      const auto curve = u.at("selectors").at(name).at("curve").get<std::vector<double>>();
      sum.resize(curve.size(), 0.0);
      for (size_t t = 0; t < curve.size(); ++t)
        sum[t] += curve[t];
      ++n;
    }
    for (double& v : sum)
      v /= n;
    mean[name] = sum;
  }
  nlohmann::json out = {{"users", users.size()}, {"mean_curve", mean}};
  // Random against the first other selector: the answers random needs to do as well, on the
  // users' mean curve, as that selector after K.
  const auto& selectors = r.elicit.selector;
  const auto other = std::find_if(selectors.begin(), selectors.end(),
                                  [](const std::string& s) { return s != "random"; });
  if (mean.contains("random") && other != selectors.end()) {
    const auto random = mean.at("random").get<std::vector<double>>();
    const auto chosen = mean.at(*other).get<std::vector<double>>();
    nlohmann::json needed = nlohmann::json::object();
    for (int64_t k : r.question_counts()) {
      nlohmann::json t_match = nullptr;
      for (size_t t = 0; t < random.size(); ++t)
        if (random[t] >= chosen[static_cast<size_t>(k)]) {
          t_match = t;
          break;
        }
      needed[std::to_string(k)] = t_match;
    }
    out["random_answers_to_match"] = {{"selector", *other}, {"at", needed}};
  }
  return out;
}

void write_elicit_summary(const ElicitRecipe& r, const nlohmann::json& users,
                          const nlohmann::json& reward_model, double started, std::ostream& log) {
  nlohmann::json summary = {{"stage", "elicit"},
                            {"method", to_string(r.elicit.method)},
                            {"metric", elicit_metric(r)},
                            {"seed", r.seed},
                            {"questions", r.question_counts()},
                            {"selectors", r.elicit.selector},
                            {"reward_model", reward_model},
                            {"users", users},
                            {"selector_means", compare_selectors(r, users)}};
  double ms = 0;
  int64_t n = 0;
  for (const auto& [user, u] : users.items())
    for (const auto& [selector, s] : u.at("selectors").items())
      ms += s.at("ms_per_question").get<double>(), ++n;
  summary["ms_per_question"] = n > 0 ? ms / static_cast<double>(n) : 0.0;
  summary["wall_seconds"] = steady_clock_seconds() - started;
  write_file_atomic(r.output_dir / "summary.json", summary.dump(2) + "\n");
  log_elicit_table(r, summary, log);
  log << "[elicit] " << fixed_digits(summary["ms_per_question"].get<double>(), 1)
      << " ms per question (fit + pair choice); summary in "
      << (r.output_dir / "summary.json").string() << "\n";
}

void log_elicit_table(const ElicitRecipe& r, const nlohmann::json& summary, std::ostream& log) {
  const std::string metric = elicit_metric(r);
  const auto& users = summary.at("users");
  log << "[elicit] held-out " << metric << " after K answers ("
      << (r.elicit.method == ElicitMethod::kPref ? "lambda" : "posterior mean") << "):\n";
  log << "  user          selector   ";
  for (int64_t k : r.question_counts())
    log << std::setw(7) << ("K=" + std::to_string(k));
  log << "\n";
  const auto row = [&](const std::string& user, const std::string& selector, auto value_at_k) {
    log << "  " << std::left << std::setw(14) << user << std::setw(11) << selector << std::right;
    for (int64_t k : r.question_counts())
      log << std::setw(7) << fixed_digits(100 * value_at_k(k), 1);
    log << "\n";
  };
  for (const auto& [user, u] : users.items()) {
    const double d = u.at("default_" + metric).get<double>();
    row(user, "default", [&](int64_t) { return d; });
    for (const auto& [selector, s] : u.at("selectors").items())
      row(user, selector,
          [&](int64_t k) { return s.at(metric).at(std::to_string(k)).get<double>(); });
  }
  if (users.size() > 1)
    for (const auto& [selector, curve] : summary.at("selector_means").at("mean_curve").items())
      row("(mean)", selector,
          [&](int64_t k) { return curve.at(static_cast<size_t>(k)).get<double>(); });
  if (summary.at("selector_means").contains("random_answers_to_match")) {
    const auto& m = summary.at("selector_means").at("random_answers_to_match");
    log << "[elicit] answers random needs to reach " << m.at("selector").get<std::string>()
        << "'s mean " << metric << " after K:";
    for (int64_t k : r.question_counts()) {
      const auto& t = m.at("at").at(std::to_string(k));
      log << " K=" << k << " " << (t.is_null() ? std::string("(not reached)") : t.dump());
    }
    log << "\n";
  }
}

}  // namespace tailor
