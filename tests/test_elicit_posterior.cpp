// 20 Questions' posterior over a user's preference embedding and its choice of questions
// (judges/elicit), against float64 computations written here: a grid integration of the 2-D
// posterior, and the mutual information and volume of every pair worked out another way
// (entropy of the mean answer minus the mean entropy; M^2 (pbar^2 + (1 - pbar)^2)).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "common/error.h"
#include "judges/elicit/preference_posterior.h"
#include "judges/elicit/question_choice.h"

namespace tailor::elicit {
namespace {

// Three answers that pull w away from the centre (towards +x), and a "no preference" that must not
// count.
const std::vector<Answer> kAnswers = {
    {{3.0, 0.5}, 1}, {{-1.0, 2.5}, -1}, {{1.5, 1.5}, 1}, {{0.7, -0.2}, 0}};

struct Moments {
  double mean[2] = {0, 0};
  double cov[2][2] = {{0, 0}, {0, 0}};
};

// The posterior's mean and covariance by the midpoint rule on an n x n grid over [-1, 1]^2,
// with the density written out here: inside the disk, prod over answers of 1 / (1 + e^-(c w.d)).
Moments grid_moments(int n) {
  double z = 0, s[2] = {0, 0}, ss[2][2] = {{0, 0}, {0, 0}};
  const double h = 2.0 / n;
  for (int a = 0; a < n; ++a)
    for (int b = 0; b < n; ++b) {
      const double x = -1 + (a + 0.5) * h, y = -1 + (b + 0.5) * h;
      if (x * x + y * y > 1) continue;
      double density = 1;
      for (const auto& answer : kAnswers)
        if (answer.choice != 0)
          density /=
              1 + std::exp(-answer.choice * (x * answer.difference[0] + y * answer.difference[1]));
      const double v[2] = {x, y};
      z += density;
      for (int i = 0; i < 2; ++i) {
        s[i] += density * v[i];
        for (int j = 0; j < 2; ++j)
          ss[i][j] += density * v[i] * v[j];
      }
    }
  Moments m;
  for (int i = 0; i < 2; ++i)
    m.mean[i] = s[i] / z;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      m.cov[i][j] = ss[i][j] / z - m.mean[i] * m.mean[j];
  return m;
}

// Batch means: the estimate of f's posterior mean from the samples and its standard error (the
// spread of 20 batch means / sqrt(20)), which accounts for the chain's autocorrelation.
template <class F>
std::pair<double, double> estimate(const PosteriorSamples& s, F f) {
  const int64_t M = s.count(), batches = 20, per = M / batches;
  std::vector<double> means(batches, 0.0);
  for (int64_t b = 0; b < batches; ++b) {
    for (int64_t m = b * per; m < (b + 1) * per; ++m)
      means[b] += f(s.sample(m)) / static_cast<double>(per);
  }
  double mean = 0, var = 0;
  for (double v : means)
    mean += v / batches;
  for (double v : means)
    var += (v - mean) * (v - mean) / (batches - 1);
  return {mean, std::sqrt(var / batches)};
}

TEST(PreferencePosterior, MetropolisHastingsMatchesAFloat64GridIntegration) {
  const Moments want = grid_moments(1000);
  // The answers move the mean well away from the prior's (0, 0).
  ASSERT_GT(std::hypot(want.mean[0], want.mean[1]), 0.2);
  MhConfig config;
  config.samples = 20000;
  config.burn_in = 1000;
  config.thinning = 10;
  config.proposal_step = 0.4;
  config.seed = 5;
  const PosteriorSamples s = sample_posterior(2, kAnswers, config);
  ASSERT_EQ(s.count(), 20000);
  std::cout << "acceptance rate " << s.acceptance_rate << "\n";
  for (int64_t m = 0; m < s.count(); ++m)
    ASSERT_LE(s.sample(m)[0] * s.sample(m)[0] + s.sample(m)[1] * s.sample(m)[1], 1.0);
  // Each moment within 5 standard errors of the grid's (the grid's own error, O(h^2) inside and
  // O(h) at the disk's edge, is below 1e-3 at n = 1000, well under one standard error here).
  for (int i = 0; i < 2; ++i) {
    const auto [mean, se] = estimate(s, [&](const double* w) { return w[i]; });
    std::cout << "mean[" << i << "] " << mean << " +- " << se << ", grid " << want.mean[i] << "\n";
    EXPECT_NEAR(mean, want.mean[i], 5 * se) << i;
    for (int j = 0; j < 2; ++j) {
      const auto [c, c_se] = estimate(
          s, [&](const double* w) { return (w[i] - want.mean[i]) * (w[j] - want.mean[j]); });
      std::cout << "cov[" << i << "][" << j << "] " << c << " +- " << c_se << ", grid "
                << want.cov[i][j] << "\n";
      EXPECT_NEAR(c, want.cov[i][j], 5 * c_se) << i << "," << j;
    }
  }
}

TEST(PreferencePosterior, SeededAndChecked) {
  MhConfig config;
  config.samples = 10;
  config.burn_in = 50;
  config.thinning = 5;
  config.seed = 1;
  const auto a = sample_posterior(2, kAnswers, config), b = sample_posterior(2, kAnswers, config);
  EXPECT_EQ(a.values, b.values);
  config.seed = 2;
  EXPECT_NE(sample_posterior(2, kAnswers, config).values, a.values);
  // No answers: the prior, uniform on the ball; the log density is 0 inside and -inf outside.
  EXPECT_EQ(log_posterior({0.6, 0.7}, {}), 0.0);
  EXPECT_EQ(log_posterior({0.8, 0.7}, {}), -INFINITY);
  EXPECT_NEAR(log_posterior({0.5, 0.0}, {{{2.0, 9.0}, -1}}), -std::log1p(std::exp(1.0)), 1e-15);
  EXPECT_NEAR(log_sigmoid(-800.0), -800.0, 1e-12);  // no overflow of exp(800)
  EXPECT_NEAR(log_sigmoid(800.0), 0.0, 1e-300);
  const std::string error = [&] {
    try {
      sample_posterior(3, kAnswers, config);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  }();
  EXPECT_NE(error.find("answer 1 has 2 features, expected 3"), std::string::npos) << error;
  config.thinning = 0;
  EXPECT_THROW(sample_posterior(2, kAnswers, config), Error);
}

// Hand-built samples and candidates (2-D) where the best pairs are unique.
PosteriorSamples hand_samples() {
  PosteriorSamples s;
  s.dim = 2;
  s.values = {0.9, 0.0, 0.5, 0.5, -0.2, 0.8, 0.3, -0.6};
  return s;
}
const std::vector<double> kFeatures = {0.0, 0.0, 1.0,  0.0, 0.0, 1.0,
                                       1.0, 1.0, -1.0, 0.5, 2.0, -1.5};

struct Brute {
  double gain, volume;
};

// Both criteria for candidates j, k, computed another way: mutual information as
// H(mean answer) - mean H(answer | w_m), in bits; volume as M^2 (pbar^2 + (1 - pbar)^2).
Brute brute_force(const PosteriorSamples& s, int j, int k) {
  const int M = static_cast<int>(s.count());
  auto entropy = [](double p) {
    double h = 0;
    if (p > 0) h -= p * std::log2(p);
    if (p < 1) h -= (1 - p) * std::log2(1 - p);
    return h;
  };
  double pbar = 0, mean_entropy = 0;
  for (int m = 0; m < M; ++m) {
    const double* w = s.sample(m);
    const double margin = w[0] * (kFeatures[2 * j] - kFeatures[2 * k]) +
                          w[1] * (kFeatures[2 * j + 1] - kFeatures[2 * k + 1]);
    const double p = 1 / (1 + std::exp(-margin));
    pbar += p / M;
    mean_entropy += entropy(p) / M;
  }
  return {entropy(pbar) - mean_entropy,
          static_cast<double>(M) * M * (pbar * pbar + (1 - pbar) * (1 - pbar))};
}

TEST(QuestionChoice, InfoGainAndVolumePickTheBruteForcePair) {
  const PosteriorSamples s = hand_samples();
  const int N = static_cast<int>(kFeatures.size() / 2);
  int best_gain[2] = {-1, -1}, best_volume[2] = {-1, -1};
  double top_gain = -1, second_gain = -1, low_volume = 1e300, second_volume = 1e300;
  const std::vector<double> rewards = candidate_rewards(s, kFeatures);
  for (int j = 0; j < N; ++j)
    for (int k = j + 1; k < N; ++k) {
      const Brute b = brute_force(s, j, k);
      EXPECT_NEAR(information_gain(rewards, s.count(), N, j, k), b.gain, 1e-12) << j << "," << k;
      EXPECT_NEAR(volume(rewards, s.count(), N, j, k), b.volume, 1e-12) << j << "," << k;
      if (b.gain > top_gain) {
        second_gain = top_gain;
        top_gain = b.gain;
        best_gain[0] = j, best_gain[1] = k;
      } else {
        second_gain = std::max(second_gain, b.gain);
      }
      if (b.volume < low_volume) {
        second_volume = low_volume;
        low_volume = b.volume;
        best_volume[0] = j, best_volume[1] = k;
      } else {
        second_volume = std::min(second_volume, b.volume);
      }
    }
  ASSERT_GT(top_gain - second_gain, 1e-6) << "the hand-built case must have one best pair";
  ASSERT_GT(second_volume - low_volume, 1e-6);
  std::mt19937_64 rng(0);
  const Question info = choose_question(Selector::kInfoGain, s, kFeatures, rng);
  EXPECT_EQ(info.first, best_gain[0]);
  EXPECT_EQ(info.second, best_gain[1]);
  EXPECT_NEAR(info.score, top_gain, 1e-12);
  const Question vol = choose_question(Selector::kVolume, s, kFeatures, rng);
  EXPECT_EQ(vol.first, best_volume[0]);
  EXPECT_EQ(vol.second, best_volume[1]);
  EXPECT_NEAR(vol.score, low_volume, 1e-12);
}

TEST(QuestionChoice, IdenticalCandidatesTellNothing) {
  const PosteriorSamples s = hand_samples();
  const std::vector<double> same = {0.3, 0.4, 0.3, 0.4};
  const auto rewards = candidate_rewards(s, same);
  EXPECT_EQ(information_gain(rewards, 4, 2, 0, 1), 0.0);     // every p = 1/2: log2(1) = 0
  EXPECT_DOUBLE_EQ(volume(rewards, 4, 2, 0, 1), 2 * 2 * 2);  // 2 outcomes x (M / 2)^2
}

TEST(QuestionChoice, RandomDrawsEveryPairEvenly) {
  const PosteriorSamples s = hand_samples();
  const std::vector<double> four(kFeatures.begin(), kFeatures.begin() + 8);  // N = 4: 6 pairs
  std::mt19937_64 rng(3);
  std::vector<int> count(16, 0);
  const int draws = 6000;
  for (int i = 0; i < draws; ++i) {
    const Question q = choose_question(Selector::kRandom, s, four, rng);
    ASSERT_LT(q.first, q.second);
    ASSERT_LT(q.second, 4);
    ++count[q.first * 4 + q.second];
  }
  // Each of the 6 pairs: 1000 expected, standard deviation sqrt(6000 (1/6)(5/6)) = 28.9.
  for (int j = 0; j < 4; ++j)
    for (int k = j + 1; k < 4; ++k)
      EXPECT_NEAR(count[j * 4 + k], 1000, 5 * 28.9) << j << "," << k;
  EXPECT_THROW(choose_question(Selector::kInfoGain, s, {0.1, 0.2}, rng), Error);  // one candidate
}

}  // namespace
}  // namespace tailor::elicit
