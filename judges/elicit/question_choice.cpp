#include "judges/elicit/question_choice.h"

#include <cmath>
#include <string>

#include "common/error.h"
#include "judges/elicit/logistic.h"

namespace tailor::elicit {

namespace {

// The outcome probabilities of "j or k?" under each sample: p[m] (j preferred), q[m] (k).
void outcome_probabilities(const std::vector<double>& rewards, int64_t M, int64_t N, int64_t j,
                           int64_t k, std::vector<double>* p, std::vector<double>* q) {
  p->resize(static_cast<size_t>(M));
  q->resize(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m) {
    const double margin =
        rewards[static_cast<size_t>(m * N + j)] - rewards[static_cast<size_t>(m * N + k)];
    (*p)[static_cast<size_t>(m)] = sigmoid(margin);
    (*q)[static_cast<size_t>(m)] = sigmoid(-margin);  // not 1 - p: keeps precision when p ~ 1
  }
}

}  // namespace

const EnumNames<Selector>& selector_names() {
  static const EnumNames<Selector> table = {{"info_gain", Selector::kInfoGain},
                                            {"volume", Selector::kVolume},
                                            {"random", Selector::kRandom},
                                            {"active", Selector::kActive}};
  return table;
}

std::vector<double> candidate_rewards(const PosteriorSamples& samples,
                                      const std::vector<double>& features) {
  const int64_t d = samples.dim, M = samples.count();
  if (d < 1 || features.size() % static_cast<size_t>(d) != 0)
    throw Error("elicit", "candidate features of " + std::to_string(features.size()) +
                              " values are not rows of the embedding's " + std::to_string(d));
  const int64_t N = static_cast<int64_t>(features.size()) / d;
  std::vector<double> out(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0;
      for (int64_t i = 0; i < d; ++i)
        s += samples.sample(m)[i] * features[static_cast<size_t>(n * d + i)];
      out[static_cast<size_t>(m * N + n)] = s;
    }
  return out;
}

double information_gain(const std::vector<double>& rewards, int64_t M, int64_t N, int64_t j,
                        int64_t k) {
  std::vector<double> p, q;
  outcome_probabilities(rewards, M, N, j, k, &p, &q);
  double gain = 0;
  for (const auto* outcome : {&p, &q}) {
    double total = 0;
    for (double v : *outcome)
      total += v;
    for (double v : *outcome)
      if (v > 0) gain += v * std::log2(static_cast<double>(M) * v / total);
  }
  return gain / static_cast<double>(M);
}

double volume(const std::vector<double>& rewards, int64_t M, int64_t N, int64_t j, int64_t k) {
  std::vector<double> p, q;
  outcome_probabilities(rewards, M, N, j, k, &p, &q);
  double out = 0;
  for (const auto* outcome : {&p, &q}) {
    double total = 0;
    for (double v : *outcome)
      total += v;
    out += total * total;
  }
  return out;
}

Question random_pair(int64_t N, std::mt19937_64& rng) {
  if (N < 2)
    throw Error("elicit",
                "choosing a question needs at least 2 candidates, got " + std::to_string(N));
  // Plain modulo (its bias is below 2^-40 at N = 128): kept so that answers.jsonl files written
  // by earlier versions still replay on resume.
  int64_t index = static_cast<int64_t>(rng() % static_cast<uint64_t>(N * (N - 1) / 2));
  for (int64_t j = 0;; ++j) {
    if (index < N - 1 - j) return {j, j + 1 + index, 0.0};
    index -= N - 1 - j;
  }
}

Question choose_question(Selector selector, const PosteriorSamples& samples,
                         const std::vector<double>& features, std::mt19937_64& rng) {
  const int64_t d = samples.dim;
  const int64_t N = d > 0 ? static_cast<int64_t>(features.size()) / d : 0;
  if (N < 2)
    throw Error("elicit",
                "choosing a question needs at least 2 candidates, got " + std::to_string(N));
  if (selector == Selector::kRandom) return random_pair(N, rng);
  if (selector == Selector::kActive)
    throw Error("elicit", "the active selector is PReF's (elicit.method: pref), not 20 Questions'");
  const std::vector<double> rewards = candidate_rewards(samples, features);
  const int64_t M = samples.count();
  Question best{-1, -1, 0.0};
  for (int64_t j = 0; j < N; ++j)
    for (int64_t k = j + 1; k < N; ++k) {
      const double score = selector == Selector::kInfoGain ? information_gain(rewards, M, N, j, k)
                                                           : volume(rewards, M, N, j, k);
      const bool better = selector == Selector::kInfoGain ? score > best.score : score < best.score;
      if (best.first < 0 || better) best = {j, k, score};
    }
  return best;
}

}  // namespace tailor::elicit
