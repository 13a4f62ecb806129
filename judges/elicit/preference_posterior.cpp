#include "judges/elicit/preference_posterior.h"

#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "common/error.h"
#include "judges/elicit/logistic.h"

namespace tailor::elicit {

namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;

// Standard normal draws from 64-bit words (Box-Muller), so the stream is the same with every
// standard library, unlike std::normal_distribution.
class Normal {
 public:
  explicit Normal(uint64_t seed) : rng_(seed) {}
  double uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }  // [0, 1)
  double next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - uniform();  // (0, 1]: log is finite
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(kTwoPi * u2);
    has_spare_ = true;
    return r * std::cos(kTwoPi * u2);
  }

 private:
  std::mt19937_64 rng_;
  bool has_spare_ = false;
  double spare_ = 0;
};

}  // namespace

void MhConfig::validate() const {
  if (samples < 1) throw Error("elicit", "samples must be >= 1, got " + std::to_string(samples));
  if (burn_in < 0) throw Error("elicit", "burn_in must be >= 0, got " + std::to_string(burn_in));
  if (thinning < 1) throw Error("elicit", "thinning must be >= 1, got " + std::to_string(thinning));
  if (!(proposal_step > 0) || !std::isfinite(proposal_step))
    throw Error("elicit", "proposal_step must be > 0, got " + std::to_string(proposal_step));
}

std::vector<double> PosteriorSamples::mean() const {
  std::vector<double> out(static_cast<size_t>(dim), 0.0);
  const int64_t M = count();
  for (int64_t m = 0; m < M; ++m)
    for (int64_t i = 0; i < dim; ++i)
      out[static_cast<size_t>(i)] += sample(m)[i] / static_cast<double>(M);
  return out;
}

double log_sigmoid(double x) {
  return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x));
}

double log_posterior(const std::vector<double>& w, const std::vector<Answer>& answers) {
  const int64_t d = static_cast<int64_t>(w.size());
  if (dot(w.data(), w.data(), d) > 1.0) return -std::numeric_limits<double>::infinity();
  double sum = 0;
  for (const auto& a : answers)
    if (a.choice != 0) sum += log_sigmoid(a.choice * dot(w.data(), a.difference.data(), d));
  return sum;
}

std::vector<double> project_onto_answers(const std::vector<double>& w,
                                         const std::vector<Answer>& answers) {
  const auto d = static_cast<int64_t>(w.size());
  std::vector<std::vector<double>> basis;
  for (const auto& a : answers) {
    if (a.choice == 0) continue;
    if (static_cast<int64_t>(a.difference.size()) != d)
      throw Error("elicit", "an answer has " + std::to_string(a.difference.size()) +
                                " features, expected " + std::to_string(d));
    std::vector<double> v = a.difference;
    const double length = std::sqrt(dot(v.data(), v.data(), d));
    for (const auto& q : basis) {
      const double c = dot(q.data(), v.data(), d);
      for (int64_t i = 0; i < d; ++i)
        v[static_cast<size_t>(i)] -= c * q[static_cast<size_t>(i)];
    }
    const double rest = std::sqrt(dot(v.data(), v.data(), d));
    if (!(rest > 1e-12 * length)) continue;
    for (auto& x : v)
      x /= rest;
    basis.push_back(std::move(v));
  }
  std::vector<double> out(w.size(), 0.0);
  for (const auto& q : basis) {
    const double c = dot(q.data(), w.data(), d);
    for (int64_t i = 0; i < d; ++i)
      out[static_cast<size_t>(i)] += c * q[static_cast<size_t>(i)];
  }
  return out;
}

PosteriorSamples sample_posterior(int64_t dim, const std::vector<Answer>& answers,
                                  const MhConfig& config) {
  config.validate();
  if (dim < 1) throw Error("elicit", "the preference embedding needs dim >= 1");
  for (size_t i = 0; i < answers.size(); ++i) {
    if (static_cast<int64_t>(answers[i].difference.size()) != dim)
      throw Error("elicit", "answer " + std::to_string(i + 1) + " has " +
                                std::to_string(answers[i].difference.size()) +
                                " features, expected " + std::to_string(dim));
    if (answers[i].choice < -1 || answers[i].choice > 1)
      throw Error("elicit", "answer " + std::to_string(i + 1) + ": choice must be -1, 0 or 1");
  }
  Normal normal(config.seed);
  std::vector<double> w(static_cast<size_t>(dim), 0.0), proposal(w.size());
  double current = log_posterior(w, answers);
  PosteriorSamples out;
  out.dim = dim;
  out.values.reserve(static_cast<size_t>(config.samples * dim));
  const int64_t steps = config.burn_in + config.samples * config.thinning;
  const double scale = config.proposal_step / std::sqrt(static_cast<double>(dim));
  int64_t accepted = 0;
  for (int64_t step = 1; step <= steps; ++step) {
    for (size_t i = 0; i < w.size(); ++i)
      proposal[i] = w[i] + scale * normal.next();
    const double candidate = log_posterior(proposal, answers);
    // The proposal is symmetric, so the acceptance ratio is the ratio of the targets. A
    // proposal outside the ball has target 0 and is always refused (without using a draw).
    if (candidate > -std::numeric_limits<double>::infinity() &&
        std::log(1.0 - normal.uniform()) < candidate - current) {
      w.swap(proposal);
      current = candidate;
      ++accepted;
    }
    if (step > config.burn_in && (step - config.burn_in) % config.thinning == 0)
      out.values.insert(out.values.end(), w.begin(), w.end());
  }
  out.acceptance_rate = static_cast<double>(accepted) / static_cast<double>(steps);
  return out;
}

}  // namespace tailor::elicit
