// Evaluation metrics of reward models on preference pairs (per-user accuracy, AUC, loss in the
// metrics.jsonl of issue 4).
#pragma once

#include <cstdint>
#include <vector>

namespace tailor {

// Area under the ROC curve as the Mann–Whitney statistic (Hanley & McNeil 1982):
//   P(score of a positive > score of a negative) + 0.5 P(equal),
// computed from mid-ranks in O(n log n). labels are 0 or 1, one per score; throws
// Error("metrics", ...) when a class is absent, a label is not 0/1, the sizes differ or a score
// is NaN.
double roc_auc(const std::vector<double>& scores, const std::vector<int>& labels);

struct PairMetrics {
  int64_t count = 0;      // pairs
  double accuracy = 0.0;  // fraction with d > 0, ties counting 1/2
  double auc = 0.0;       // roc_auc over {d_k labelled 1} U {-d_k labelled 0}
  double loss = 0.0;      // mean Bradley–Terry loss, softplus(-d)
};

// Metrics of preference pairs from their margins d_k = r_chosen_k - r_rejected_k. The AUC
// symmetrises each pair (the chosen-minus-rejected margin is a positive, its negation a
// negative), so it is P(d_i + d_j > 0) over all pairs (i, j): threshold-free, unlike accuracy.
// Throws Error("metrics", ...) for no margins or a NaN margin.
PairMetrics pair_metrics(const std::vector<double>& margins);

}  // namespace tailor
