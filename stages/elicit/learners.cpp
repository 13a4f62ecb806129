#include "stages/elicit/learners.h"

#include <random>
#include <string>

#include "common/error.h"
#include "common/seeded_random.h"

namespace tailor {
namespace {

// Question t's generator: the same for a seed and t however the loop got to t.
std::mt19937_64 question_rng(uint64_t seed, int64_t t) {
  return std::mt19937_64(splitmix64(seed ^ splitmix64(1000003 + static_cast<uint64_t>(t))));
}

}  // namespace

TwentyQuestionsLearner::TwentyQuestionsLearner(elicit::Selector selector,
                                               const elicit::MhConfig& mh, int64_t dim,
                                               int64_t estimate_samples)
    : selector_(selector),
      mh_(mh),
      dim_(dim),
      estimate_count_(estimate_samples),
      estimate_(static_cast<size_t>(dim), 0.0) {
  if (selector == elicit::Selector::kActive)
    throw Error("elicit", "the active selector is PReF's (elicit.method: pref)");
  if (estimate_samples < mh.samples)
    throw Error("elicit", "estimate_samples (" + std::to_string(estimate_samples) +
                              ") must be >= samples (" + std::to_string(mh.samples) +
                              "): the estimate's chain continues the questions' one");
}

void TwentyQuestionsLearner::fit(const std::vector<elicit::Answer>& answers) {
  elicit::MhConfig mh = mh_;
  mh.seed = splitmix64(mh_.seed ^ splitmix64(answers.size()));
  mh.samples = estimate_count_;
  // One chain: its first M kept samples are exactly what a chain of M would keep (same seed,
  // same steps), so running it longer changes no question.
  estimate_samples_ = elicit::sample_posterior(dim_, answers, mh);
  posterior_.dim = dim_;
  posterior_.acceptance_rate = estimate_samples_.acceptance_rate;
  posterior_.values.assign(estimate_samples_.values.begin(),
                           estimate_samples_.values.begin() + mh_.samples * dim_);
  estimate_ = elicit::project_onto_answers(estimate_samples_.mean(), answers);
}

elicit::Question TwentyQuestionsLearner::choose(int64_t t, const std::vector<double>& features) {
  std::mt19937_64 rng = question_rng(mh_.seed, t);
  return elicit::choose_question(selector_, posterior_, features, rng);
}

PrefLearner::PrefLearner(elicit::Selector selector, int64_t J, double l2, uint64_t seed)
    : selector_(selector), J_(J), l2_(l2), seed_(seed) {
  if (selector != elicit::Selector::kActive && selector != elicit::Selector::kRandom)
    throw Error("elicit", "PReF chooses pairs by active or random, not " +
                              enum_name(elicit::selector_names(), selector));
  fit({});
}

void PrefLearner::fit(const std::vector<elicit::Answer>& answers) {
  fit_ = elicit::fit_user(J_, answers, l2_);
  answered_ = !answers.empty();
}

elicit::Question PrefLearner::choose(int64_t t, const std::vector<double>& features) {
  const auto N = static_cast<int64_t>(features.size()) / J_;
  // Before any answer H = beta I favours merely the largest difference: the paper asks the
  // first question at random instead.
  if (selector_ == elicit::Selector::kRandom || !answered_) {
    std::mt19937_64 rng = question_rng(seed_, t);
    return elicit::random_pair(N, rng);
  }
  return elicit::choose_uncertain_pair(J_, fit_.hessian, features);
}

}  // namespace tailor
