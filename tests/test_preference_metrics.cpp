// ROC AUC and preference-pair metrics against hand-computed values and an O(n^2) pair count.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "common/error.h"
#include "train/losses/preference_metrics.h"

namespace {

using tailor::roc_auc;

TEST(PreferenceMetrics, AucHandComputed) {
  // Positives 0.35, 0.8; negatives 0.1, 0.4: 0.35 beats 0.1 only, 0.8 beats both -> 3/4.
  EXPECT_DOUBLE_EQ(roc_auc({0.1, 0.4, 0.35, 0.8}, {0, 0, 1, 1}), 0.75);
  // Positives 0.5, 0.9; negatives 0.5, 0.2, 0.5: 0.5 -> 1/2 + 1 + 1/2, 0.9 -> 3; 5 of 6 pairs.
  EXPECT_DOUBLE_EQ(roc_auc({0.5, 0.5, 0.2, 0.9, 0.5}, {1, 0, 0, 1, 0}), 5.0 / 6.0);
  EXPECT_DOUBLE_EQ(roc_auc({1, 2, 3, 4}, {0, 0, 1, 1}), 1.0);  // perfect
  EXPECT_DOUBLE_EQ(roc_auc({1, 2, 3, 4}, {1, 1, 0, 0}), 0.0);  // inverted
  EXPECT_DOUBLE_EQ(roc_auc({7, 7, 7}, {1, 0, 1}), 0.5);        // all tied
}

TEST(PreferenceMetrics, AucMatchesPairCountWithManyTies) {
  std::mt19937_64 rng(4);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> scores(40);
    std::vector<int> labels(40);
    for (size_t k = 0; k < scores.size(); ++k) {
      scores[k] = static_cast<double>(rng() % 6);  // heavy ties
      labels[k] = static_cast<int>(rng() % 2);
    }
    labels[0] = 0;
    labels[1] = 1;
    double wins = 0, pairs = 0;
    for (size_t i = 0; i < scores.size(); ++i) {
      for (size_t j = 0; j < scores.size(); ++j) {
        if (labels[i] != 1 || labels[j] != 0) continue;
        pairs += 1;
        wins += scores[i] > scores[j] ? 1.0 : (scores[i] == scores[j] ? 0.5 : 0.0);
      }
    }
    EXPECT_NEAR(roc_auc(scores, labels), wins / pairs, 1e-12) << "trial " << trial;
  }
}

TEST(PreferenceMetrics, AucRejectsBadInput) {
  EXPECT_THROW(roc_auc({1, 2}, {1, 1}), tailor::Error);
  EXPECT_THROW(roc_auc({1, 2}, {0, 0}), tailor::Error);
  EXPECT_THROW(roc_auc({}, {}), tailor::Error);
  EXPECT_THROW(roc_auc({1, 2}, {0, 2}), tailor::Error);
  EXPECT_THROW(roc_auc({1, 2, 3}, {0, 1}), tailor::Error);
  EXPECT_THROW(roc_auc({1, NAN}, {0, 1}), tailor::Error);
}

TEST(PreferenceMetrics, PairMetricsHandComputed) {
  // d = {2, -1, 0.5}: two of three positive. AUC over positives {2, -1, 0.5} vs negatives
  // {-2, 1, -0.5}: 2 beats 3, -1 beats 1 (-2), 0.5 beats 2 (-2, -0.5) -> 6/9.
  const tailor::PairMetrics m = tailor::pair_metrics({2, -1, 0.5});
  EXPECT_EQ(m.count, 3);
  EXPECT_DOUBLE_EQ(m.accuracy, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.auc, 6.0 / 9.0);
  const double loss =
      (std::log(1 + std::exp(-2.0)) + std::log(1 + std::exp(1.0)) + std::log(1 + std::exp(-0.5))) /
      3;
  EXPECT_NEAR(m.loss, loss, 1e-15);

  // A tie: d = {0, 1}: accuracy (1/2 + 1) / 2; AUC positives {0, 1} vs negatives {0, -1}:
  // 0 ties 0 (1/2) and beats -1, 1 beats both -> 3.5 / 4.
  const tailor::PairMetrics t = tailor::pair_metrics({0, 1});
  EXPECT_DOUBLE_EQ(t.accuracy, 0.75);
  EXPECT_DOUBLE_EQ(t.auc, 0.875);
  EXPECT_NEAR(t.loss, (std::log(2.0) + std::log(1 + std::exp(-1.0))) / 2, 1e-15);

  // Large margins stay finite: softplus(-1000) = 0, softplus(1000) = 1000.
  const tailor::PairMetrics big = tailor::pair_metrics({1000, -1000});
  EXPECT_DOUBLE_EQ(big.loss, 500.0);
  EXPECT_DOUBLE_EQ(big.accuracy, 0.5);
  // Positives {1000, -1000} vs negatives {-1000, 1000}: 1 + 1/2 + 1/2 + 0 of 4 pairs.
  EXPECT_DOUBLE_EQ(big.auc, 0.5);

  EXPECT_THROW(tailor::pair_metrics({}), tailor::Error);
  EXPECT_THROW(tailor::pair_metrics({1.0, NAN}), tailor::Error);
}

}  // namespace
