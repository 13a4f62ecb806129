// The two methods as query-loop learners (stages/elicit/query_loop.h).
//
// 20 Questions: the posterior over the user's embedding w (judges/elicit/preference_posterior.h),
// M Metropolis-Hastings samples given the answers; the pair by info_gain | volume | random
// (judges/elicit/question_choice.h); the estimate is the posterior mean over E >= M samples of
// the same chain (below).
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

// The pair is chosen with the chain's first M = mh.samples samples, as the paper does. The
// estimate is the posterior mean, estimated with less noise than the mean of those M:
//  - it averages `estimate_samples` (E) samples of the same chain, run on past the first M, so
//    the questions are exactly those of an M-sample run;
//  - it is projected onto the span of the answers' differences, where the exact posterior mean
//    lies (elicit::project_onto_answers).
// Why: at d = 128 the mean of 100 correlated samples is mostly Monte Carlo noise in the
// directions the answers leave open. With no answers it should be 0, and it scored held-out pairs
// anywhere from 32% to 66%; the held-out accuracy jumped by up to 15 points from one answer to the
// next.
class TwentyQuestionsLearner final : public Learner {
 public:
  // `mh.seed` is the learner's seed; the sampler after t answers mixes t into it.
  TwentyQuestionsLearner(elicit::Selector selector, const elicit::MhConfig& mh, int64_t dim,
                         int64_t estimate_samples);
  void fit(const std::vector<elicit::Answer>& answers) override;
  elicit::Question choose(int64_t t, const std::vector<double>& features) override;
  std::vector<double> estimate() const override { return estimate_; }
  // The M samples that choose the pair.
  const elicit::PosteriorSamples& posterior() const { return posterior_; }
  // The E samples the estimate averages (the first M of them are posterior()'s).
  const elicit::PosteriorSamples& estimate_samples() const { return estimate_samples_; }

 private:
  elicit::Selector selector_;
  elicit::MhConfig mh_;
  int64_t dim_;
  int64_t estimate_count_;
  elicit::PosteriorSamples posterior_;
  elicit::PosteriorSamples estimate_samples_;
  std::vector<double> estimate_;
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
