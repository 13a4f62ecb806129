#include "judges/judge.h"

#include <algorithm>
#include <numeric>
#include <sstream>

namespace tailor::judges {
namespace {

class OracleMixtureJudge : public Judge {
 public:
  explicit OracleMixtureJudge(OracleWeights weights) : weights_(std::move(weights)) {
    mixture_prefers(weights_, "", "a", "a");  // validates the names and weights
  }

  std::vector<int> compare(const std::vector<Matchup>& matchups) override {
    std::vector<int> out;
    out.reserve(matchups.size());
    for (const auto& m : matchups)
      out.push_back(mixture_prefers(weights_, m.prompt, m.a, m.b));
    return out;
  }

  // Copeland: each completion's votes over all the others; a stable sort keeps ties in order.
  // Votes are antisymmetric (each oracle's score difference flips sign exactly), so the matrix
  // is filled from the upper triangle.
  std::vector<Ranking> rank(const std::vector<Candidates>& groups) override {
    std::vector<Ranking> out;
    for (const auto& g : groups) {
      const size_t K = g.completions.size();
      Ranking r;
      r.prefers.assign(K, std::vector<int>(K, 0));
      std::vector<int64_t> score(K, 0);
      for (size_t i = 0; i < K; ++i)
        for (size_t j = i + 1; j < K; ++j) {
          const int vote = mixture_prefers(weights_, g.prompt, g.completions[i], g.completions[j]);
          r.prefers[i][j] = vote;
          r.prefers[j][i] = -vote;
          score[i] += vote;
          score[j] -= vote;
        }
      r.order.resize(K);
      std::iota(r.order.begin(), r.order.end(), 0);
      std::stable_sort(r.order.begin(), r.order.end(),
                       [&](size_t a, size_t b) { return score[a] > score[b]; });
      out.push_back(std::move(r));
    }
    return out;
  }

  std::string description() const override {
    std::ostringstream text;
    text << "oracles {";
    for (auto it = weights_.begin(); it != weights_.end(); ++it)
      text << (it == weights_.begin() ? "" : ", ") << it->first << ": " << it->second;
    text << "}";
    return text.str();
  }

 private:
  OracleWeights weights_;
};

}  // namespace

std::unique_ptr<Judge> make_oracle_judge(const OracleWeights& weights) {
  return std::make_unique<OracleMixtureJudge>(weights);
}

}  // namespace tailor::judges
