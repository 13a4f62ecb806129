// The two methods as query-loop learners (stages/elicit/query_loop.h).
//
// 20 Questions: the posterior over the user's embedding w (judges/elicit/preference_posterior.h),
// M Metropolis-Hastings samples given the answers; the pair by info_gain | volume | random
// (judges/elicit/question_choice.h); the estimate is the posterior mean.
//
// PReF: lambda by L2-regularised logistic regression on the answers (judges/elicit/pref_user.h);
// the pair whose feature difference has the largest H^-1 norm (active; the first question, with
// nothing fitted yet, is random) or a random one; the estimate is lambda.
//
// Both draw their randomness from their seed and the question number only, so a learner replays
// exactly after a resume.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "judges/elicit/pref_user.h"
#include "judges/elicit/preference_posterior.h"
#include "judges/elicit/question_choice.h"
#include "stages/elicit/query_loop.h"

namespace tailor {

class TwentyQuestionsLearner final : public Learner {
 public:
  // `mh.seed` is the learner's seed; the sampler after t answers mixes t into it.
  TwentyQuestionsLearner(elicit::Selector selector, const elicit::MhConfig& mh, int64_t dim);
  void fit(const std::vector<elicit::Answer>& answers) override;
  elicit::Question choose(int64_t t, const std::vector<double>& features) override;
  std::vector<double> estimate() const override { return posterior_.mean(); }
  const elicit::PosteriorSamples& posterior() const { return posterior_; }

 private:
  elicit::Selector selector_;
  elicit::MhConfig mh_;
  int64_t dim_;
  elicit::PosteriorSamples posterior_;
};

class PrefLearner final : public Learner {
 public:
  // selector: kActive or kRandom; l2 the new user's beta (> 0); J the number of base rewards.
  PrefLearner(elicit::Selector selector, int64_t J, double l2, uint64_t seed);
  void fit(const std::vector<elicit::Answer>& answers) override;
  elicit::Question choose(int64_t t, const std::vector<double>& features) override;
  std::vector<double> estimate() const override { return fit_.lambda; }
  const elicit::UserFit& user_fit() const { return fit_; }

 private:
  elicit::Selector selector_;
  int64_t J_;
  double l2_;
  uint64_t seed_;
  bool answered_ = false;  // the last fit saw at least one answer
  elicit::UserFit fit_;
};

}  // namespace tailor
