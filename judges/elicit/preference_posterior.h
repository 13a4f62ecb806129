// A user of the multi-reward model is a preference embedding w in R^d: the reward of a completion
// is w . h(x, y), h the model's shared hidden features. 20 Questions keeps a posterior over w
// given the user's answers (prior: uniform on the unit ball; likelihood: Bradley-Terry,
// P(y1 preferred) = sigmoid(w . (h(x, y1) - h(x, y2)))) and draws samples from it by
// Metropolis-Hastings with a random-walk proposal, after Biyik et al. The step is
// N(0, (proposal_step^2 / d) I), of length ~proposal_step whatever d: their N(0, 0.1^2 I) was
// for a handful of dimensions, and at d = 128 its steps (length ~1.1) leave the unit ball almost
// always (measured: acceptance 0.000 at d = 128 with 20 answers; 0.56 with this scaling).
// Plain float64 arithmetic: d is ~128 and a user has at most tens of answers.
#pragma once

#include <cstdint>
#include <vector>

namespace tailor::elicit {

// One answered question: the feature difference h(x, y1) - h(x, y2) and the answer, +1 when y1
// was preferred, -1 when y2 was, 0 for "no preference" (which carries no likelihood term: a
// Bradley-Terry model has no tie outcome).
struct Answer {
  std::vector<double> difference;
  int choice = 0;
};

struct MhConfig {
  int64_t samples = 100;       // M, kept after burn-in, one every `thinning` steps
  int64_t burn_in = 1000;      // steps discarded first
  int64_t thinning = 50;       // steps between two kept samples
  double proposal_step = 0.1;  // typical length of a random-walk step (per coordinate / sqrt(d))
  uint64_t seed = 0;
  void validate() const;  // throws naming the field
};

// M samples of w, row-major [M, dim], and the share of accepted proposals.
struct PosteriorSamples {
  int64_t dim = 0;
  std::vector<double> values;
  double acceptance_rate = 0;

  int64_t count() const { return dim == 0 ? 0 : static_cast<int64_t>(values.size()) / dim; }
  const double* sample(int64_t m) const { return values.data() + m * dim; }
  std::vector<double> mean() const;
};

// log sigmoid(x), without overflow for large |x|.
double log_sigmoid(double x);

// The log of the unnormalised posterior density at w: -inf outside the unit ball, else the sum
// over answers of log sigmoid(choice * w . difference).
double log_posterior(const std::vector<double>& w, const std::vector<Answer>& answers);

// The orthogonal projection of w onto the span of the answers' differences (ties excluded).
// Why: the prior is uniform on the ball (rotation invariant) and the likelihood depends on w only
// through w . difference, so the posterior is symmetric under reflections that fix that span,
// and its mean lies in it. Projecting a Monte Carlo mean there keeps it unbiased and drops its
// noise in the d - k directions no answer has touched (with no answers: exactly 0, the prior's
// mean). Modified Gram-Schmidt in float64; a difference within 1e-12 (relative) of the span of
// the earlier ones adds no direction.
std::vector<double> project_onto_answers(const std::vector<double>& w,
                                         const std::vector<Answer>& answers);

// Metropolis-Hastings from w = 0 (the prior's centre): burn_in + samples * thinning steps.
// Deterministic for a seed (its own generator; torch's and the C library's are untouched).
// Every answer's difference must have `dim` entries.
PosteriorSamples sample_posterior(int64_t dim, const std::vector<Answer>& answers,
                                  const MhConfig& config);

}  // namespace tailor::elicit
