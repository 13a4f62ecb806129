// The heuristic preference oracles: simulated users who prefer one of two completions of a prompt
// by a text statistic (the 20 Questions seed report's heuristic preferences, issue 11). Each is a
// deterministic score(prompt, completion), higher = preferred; the statistics and their exact
// definitions are in judges/text_features.h.
//
//   name                     group  score (higher is preferred)
//   no_punctuation           train  -punctuation_ratio(completion)
//   readability              train  flesch_reading_ease(completion)
//   new_lines                train  count_newlines(completion)
//   anti_new_lines           train  -count_newlines(completion)
//   short_words              train  -mean_word_length(completion)
//   shallow_dependency_tree  train  -max_dependency_depth(completion)
//   prompt_similarity        train  levenshtein_similarity(prompt, completion)
//   simple_words             train  common_word_ratio(completion)
//   shorter_length           test   -count_code_points(completion)
//   lowercase                test   lowercase_ratio(completion)
//   adjectives               test   adjective_adverb_ratio(completion)
//
// Only prompt_similarity reads the prompt. shorter_length counts characters as the 20 Questions
// paper's Table 3 does: every code point of the completion as written, whitespace, newlines and
// leading/trailing spaces included (an answer with trailing spaces is longer), so "abc def" (7)
// beats "abcdefgh" (8) although it has more words.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace tailor::judges {

struct Oracle {
  std::string name;        // recipe key, snake_case
  std::string group;       // "train" or "test" (the seed's split)
  std::string preference;  // one line for people, e.g. "fewer newline characters"
  std::function<double(const std::string& prompt, const std::string& completion)> score;
};

// Scores closer than this (absolute) are a tie.
constexpr double kTieTolerance = 1e-9;

const std::vector<std::string>& oracle_names();  // the eleven, in the table's order
const Oracle& oracle(const std::string& name);   // Error("oracle", ...) naming the valid names

// +1 when `oracle` prefers a, -1 when it prefers b, 0 when the scores tie (kTieTolerance).
int prefers(const Oracle& oracle, const std::string& prompt, const std::string& a,
            const std::string& b);

// A user as a weighted mixture of oracles (recipe: users: {bob: {new_lines: 0.7, lowercase: 0.3}}):
// a weighted vote of each oracle's prefers(), v = sum_k w_k prefers_k(a, b), and the result is
// the sign of v (0 when |v| <= 1e-12). The vote is scale-free: statistics with different units
// (Flesch points, ratios, counts) weigh only by w_k. Weights may be negative (the opposite taste)
// but must be finite; an empty mixture or an unknown name is an Error("oracle", ...).
using OracleWeights = std::map<std::string, double>;  // oracle name -> weight
int mixture_prefers(const OracleWeights& weights, const std::string& prompt, const std::string& a,
                    const std::string& b);

}  // namespace tailor::judges
