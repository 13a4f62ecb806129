#include "train/losses/preference_metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "common/error.h"

namespace tailor {

double roc_auc(const std::vector<double>& scores, const std::vector<int>& labels) {
  if (scores.size() != labels.size()) {
    throw Error("metrics", "roc_auc: " + std::to_string(scores.size()) + " scores but " +
                               std::to_string(labels.size()) + " labels");
  }
  int64_t positives = 0;
  for (size_t k = 0; k < labels.size(); ++k) {
    if (labels[k] != 0 && labels[k] != 1) {
      throw Error("metrics", "roc_auc: label " + std::to_string(k) + " is " +
                                 std::to_string(labels[k]) + ", expected 0 or 1");
    }
    if (std::isnan(scores[k])) {
      throw Error("metrics", "roc_auc: score " + std::to_string(k) + " is NaN");
    }
    positives += labels[k];
  }
  const auto negatives = static_cast<int64_t>(labels.size()) - positives;
  if (positives == 0 || negatives == 0) {
    throw Error("metrics", "roc_auc: needs both classes, got " + std::to_string(positives) +
                               " positives and " + std::to_string(negatives) + " negatives");
  }
  // Mann–Whitney U from ranks: U = R_pos - n_pos (n_pos + 1) / 2, tied scores sharing their
  // mean rank (so a tied positive/negative pair counts 1/2).
  std::vector<size_t> index(scores.size());
  std::iota(index.begin(), index.end(), size_t{0});
  std::sort(index.begin(), index.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  double rank_sum = 0.0;  // of the positives, ranks 1-based
  for (size_t begin = 0; begin < index.size();) {
    size_t end = begin + 1;
    while (end < index.size() && scores[index[end]] == scores[index[begin]])
      ++end;
    const double mid_rank = 0.5 * static_cast<double>(begin + 1 + end);  // mean of begin+1..end
    for (size_t k = begin; k < end; ++k) {
      if (labels[index[k]] == 1) rank_sum += mid_rank;
    }
    begin = end;
  }
  const auto p = static_cast<double>(positives);
  const double u = rank_sum - p * (p + 1.0) / 2.0;
  return u / (p * static_cast<double>(negatives));
}

PairMetrics pair_metrics(const std::vector<double>& margins) {
  if (margins.empty()) throw Error("metrics", "pair_metrics: no pairs");
  PairMetrics m;
  m.count = static_cast<int64_t>(margins.size());
  double correct = 0.0;
  double loss = 0.0;
  std::vector<double> scores;
  std::vector<int> labels;
  scores.reserve(2 * margins.size());
  labels.reserve(2 * margins.size());
  for (size_t k = 0; k < margins.size(); ++k) {
    const double d = margins[k];
    if (std::isnan(d))
      throw Error("metrics", "pair_metrics: margin " + std::to_string(k) + " is NaN");
    correct += d > 0.0 ? 1.0 : (d == 0.0 ? 0.5 : 0.0);
    // softplus(-d) = max(-d, 0) + log1p(exp(-|d|)): finite for any finite margin.
    loss += std::max(-d, 0.0) + std::log1p(std::exp(-std::abs(d)));
    scores.push_back(d);
    labels.push_back(1);
    scores.push_back(-d);
    labels.push_back(0);
  }
  m.accuracy = correct / static_cast<double>(m.count);
  m.loss = loss / static_cast<double>(m.count);
  m.auc = roc_auc(scores, labels);
  return m;
}

}  // namespace tailor
