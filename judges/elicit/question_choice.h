// Which pair of candidate completions to ask a user about next (20 Questions). Given M posterior
// samples of the preference embedding and N candidates' features, sample m prefers candidate j
// to k with p_m = sigmoid(w_m . (h_j - h_k)); the question's two outcomes have probabilities
// p_1m = p_m and p_2m = 1 - p_m under sample m.
//   info_gain: maximise (1/M) sum_q sum_m p_qm log2(M p_qm / sum_m' p_qm'), the mutual information
//              in bits between the answer and w;
//   volume:    minimise sum_q (sum_m p_qm)^2, the expected posterior mass an answer leaves;
//   random:    a uniformly drawn pair.
// (active is PReF's selector, judges/elicit/pref_user.h: the pair the user's fit is least sure
// of; it has no posterior samples to work with, so choose_question refuses it.)
// Exhaustive over the N (N - 1) / 2 pairs; ties go to the first pair in (j, k) order.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "common/enum_names.h"
#include "judges/elicit/preference_posterior.h"

namespace tailor::elicit {

enum class Selector { kInfoGain, kVolume, kRandom, kActive };
const EnumNames<Selector>& selector_names();  // info_gain, volume, random, active

struct Question {
  int64_t first = 0, second = 0;  // candidate indices, first < second
  double score = 0;               // information gain (bits) or volume; 0 for random
};

// A uniformly drawn pair of N >= 2 candidates: one draw of rng over the N (N - 1) / 2 pairs,
// decoded in (j, k) order.
Question random_pair(int64_t N, std::mt19937_64& rng);

// Rewards [M, N] row-major: sample m's reward for candidate n. `features` is [N, dim] row-major.
std::vector<double> candidate_rewards(const PosteriorSamples& samples,
                                      const std::vector<double>& features);

// The two criteria for candidates j and k, from the [M, N] rewards.
double information_gain(const std::vector<double>& rewards, int64_t M, int64_t N, int64_t j,
                        int64_t k);
double volume(const std::vector<double>& rewards, int64_t M, int64_t N, int64_t j, int64_t k);

// The question to ask among N >= 2 candidates (`features` [N, dim]). `rng` is drawn from only by
// the random selector.
Question choose_question(Selector selector, const PosteriorSamples& samples,
                         const std::vector<double>& features, std::mt19937_64& rng);

}  // namespace tailor::elicit
