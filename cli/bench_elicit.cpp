#include "cli/bench_elicit.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>

#include "cli/bench_dpo_users.h"
#include "common/error.h"
#include "stages/elicit/learners.h"
#include "stages/elicit/query_loop.h"

namespace tailor::cli {
namespace fs = std::filesystem;
namespace {

constexpr int64_t kPrefRank = 6;  // PReF's J (pref.rank's default)

// Answers by the sign of w* . (h1 - h2) and records when each question arrived.
class TimedRespondent final : public Respondent {
 public:
  TimedRespondent(const std::vector<QuestionPool>& pools, std::vector<double> w)
      : pools_(pools), w_(std::move(w)) {}

  Choice answer(const std::string&, const std::string& first, const std::string& second,
                int64_t question, int64_t) override {
    arrivals.push_back(now_seconds());
    const QuestionPool& pool = pools_[static_cast<size_t>(question - 1)];
    const auto row = [&](const std::string& text) {
      return pool.features.data() +
             (std::find(pool.texts.begin(), pool.texts.end(), text) - pool.texts.begin()) *
                 static_cast<int64_t>(w_.size());
    };
    const double* a = row(first);
    const double* b = row(second);
    double m = 0;
    for (size_t i = 0; i < w_.size(); ++i)
      m += w_[i] * (a[i] - b[i]);
    answered.push_back(now_seconds());
    return m > 0 ? Choice::kFirst : m < 0 ? Choice::kSecond : Choice::kNone;
  }

  std::vector<double> arrivals, answered;

 private:
  const std::vector<QuestionPool>& pools_;
  std::vector<double> w_;
};

}  // namespace

nlohmann::json bench_elicit(const ElicitBench& o) {
  if (o.dim < 1 || o.samples < 1 || o.questions < 1 || o.thinning < 1 || o.burn_in < 0)
    throw Error("bench", "elicit suite: need dim, samples, questions, thinning >= 1");
  if (o.estimate_samples < o.samples)
    throw Error("bench", "elicit suite: --elicit-estimate-samples must be >= --elicit-samples");
  const fs::path dir = fs::temp_directory_path() /
                       ("tailor_bench_elicit_" + std::to_string(static_cast<long>(::getpid())));
  fs::create_directories(dir);
  std::printf(
      "[elicit] 20 Questions: d=%lld, M=%lld, E=%lld (burn-in %lld, thinning %lld); PReF: J=%lld; "
      "K=%lld questions\n",
      (long long)o.dim, (long long)o.samples, (long long)o.estimate_samples, (long long)o.burn_in,
      (long long)o.thinning, (long long)kPrefRank, (long long)o.questions);
  std::printf("%-6s %-14s %18s %18s\n", "N", "method selector", "mean ms/question",
              "max ms/question");
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t N : o.candidates) {
    if (N < 2) throw Error("bench", "elicit suite: N must be >= 2");
    std::mt19937_64 rng(12345);
    std::normal_distribution<double> normal;
    // K pools of N candidates with random dim-wide embeddings, and a user w* over them.
    const auto make_pools = [&](int64_t dim) {
      std::vector<QuestionPool> pools;
      for (int64_t t = 0; t < o.questions; ++t) {
        QuestionPool pool{"prompt " + std::to_string(t), {}, {}};
        for (int64_t i = 0; i < N; ++i)
          pool.texts.push_back(std::to_string(t) + "." + std::to_string(i));
        pool.features.resize(static_cast<size_t>(N * dim));
        for (auto& x : pool.features)
          x = normal(rng);
        pools.push_back(std::move(pool));
      }
      std::vector<double> w(static_cast<size_t>(dim));
      for (auto& x : w)
        x = normal(rng) / std::sqrt(static_cast<double>(dim));
      return std::make_pair(pools, w);
    };
    const auto [pools, w] = make_pools(o.dim);
    const auto [pref_pools, pref_w] = make_pools(kPrefRank);
    struct Run {
      const char* method;
      elicit::Selector selector;
    };
    for (const Run& run :
         {Run{"20q", elicit::Selector::kInfoGain}, Run{"20q", elicit::Selector::kVolume},
          Run{"20q", elicit::Selector::kRandom}, Run{"pref", elicit::Selector::kActive},
          Run{"pref", elicit::Selector::kRandom}}) {
      const bool pref = std::string(run.method) == "pref";
      const int64_t dim = pref ? kPrefRank : o.dim;
      QueryLoopConfig config;
      config.selector = enum_name(elicit::selector_names(), run.selector);
      config.questions = o.questions;
      config.dim = dim;
      std::unique_ptr<Learner> learner;
      if (pref) {
        learner = std::make_unique<PrefLearner>(run.selector, dim, 1.0, 0);
      } else {
        elicit::MhConfig mh;
        mh.samples = o.samples;
        mh.burn_in = o.burn_in;
        mh.thinning = o.thinning;
        learner =
            std::make_unique<TwentyQuestionsLearner>(run.selector, mh, dim, o.estimate_samples);
      }
      const auto& used = pref ? pref_pools : pools;
      const fs::path file = dir / "answers.jsonl";
      fs::remove(file);
      TimedRespondent respondent(used, pref ? pref_w : w);
      const double start = now_seconds();
      run_query_loop(
          config, [&](int64_t t) { return used[static_cast<size_t>(t)]; }, respondent, *learner,
          file, nullptr);
      // The wait for question t + 1 runs from answer t (or the start) to its arrival.
      std::vector<double> waits;
      for (size_t t = 0; t < respondent.arrivals.size(); ++t)
        waits.push_back(1e3 *
                        (respondent.arrivals[t] - (t == 0 ? start : respondent.answered[t - 1])));
      double mean = 0;
      for (double v : waits)
        mean += v / static_cast<double>(waits.size());
      const double slowest = *std::max_element(waits.begin(), waits.end());
      const std::string name = std::string(run.method) + " " + config.selector;
      std::printf("%-6lld %-14s %18.1f %18.1f\n", (long long)N, name.c_str(), mean, slowest);
      nlohmann::json row = {{"suite", "elicit"},
                            {"method", pref ? "pref" : "twenty_questions"},
                            {"candidates", N},
                            {"selector", config.selector},
                            {"dim", dim},
                            {"questions", o.questions},
                            {"ms_per_question_mean", mean},
                            {"ms_per_question_max", slowest}};
      if (!pref) {
        row["samples"] = o.samples;
        row["estimate_samples"] = o.estimate_samples;
        row["burn_in"] = o.burn_in;
        row["thinning"] = o.thinning;
      }
      rows.push_back(row);
    }
  }
  fs::remove_all(dir);
  return rows;
}

}  // namespace tailor::cli
