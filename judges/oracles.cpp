#include "judges/oracles.h"

#include <cmath>

#include "common/error.h"
#include "common/name_list.h"
#include "judges/text_features.h"

namespace tailor::judges {
namespace {

using Score = std::function<double(const std::string&, const std::string&)>;

// A score that reads only the completion.
Score of_completion(double (*statistic)(const std::string&)) {
  return [statistic](const std::string&, const std::string& completion) {
    return statistic(completion);
  };
}

const std::vector<Oracle>& oracles() {
  static const auto* table = new std::vector<Oracle>{
      {"no_punctuation", "train", "a lower share of punctuation characters",
       of_completion([](const std::string& c) { return -punctuation_ratio(c); })},
      {"readability", "train", "a higher Flesch reading ease", of_completion(flesch_reading_ease)},
      {"new_lines", "train", "more newline characters",
       of_completion([](const std::string& c) { return static_cast<double>(count_newlines(c)); })},
      {"anti_new_lines", "train", "fewer newline characters",
       of_completion([](const std::string& c) { return -static_cast<double>(count_newlines(c)); })},
      {"short_words", "train", "a lower mean word length",
       of_completion([](const std::string& c) { return -mean_word_length(c); })},
      {"shallow_dependency_tree", "train", "a shallower (estimated) dependency tree",
       of_completion(
           [](const std::string& c) { return -static_cast<double>(max_dependency_depth(c)); })},
      {"prompt_similarity", "train", "a higher Levenshtein similarity to the prompt",
       [](const std::string& prompt, const std::string& c) {
         return levenshtein_similarity(prompt, c);
       }},
      {"simple_words", "train", "a higher share of common words", of_completion(common_word_ratio)},
      {"shorter_length", "test", "fewer characters", of_completion([](const std::string& c) {
         return -static_cast<double>(count_code_points(c));
       })},
      {"lowercase", "test", "a higher share of lowercase letters", of_completion(lowercase_ratio)},
      {"adjectives", "test", "a higher share of adjectives and adverbs",
       of_completion(adjective_adverb_ratio)},
  };
  return *table;
}

}  // namespace

const std::vector<std::string>& oracle_names() {
  static const auto* names = [] {
    auto* out = new std::vector<std::string>;
    for (const auto& o : oracles())
      out->push_back(o.name);
    return out;
  }();
  return *names;
}

const Oracle& oracle(const std::string& name) {
  for (const auto& o : oracles())
    if (o.name == name) return o;
  throw Error("oracle", "unknown oracle \"" + name +
                            "\"; valid names: " + list_some(oracle_names(), oracle_names().size()));
}

int prefers(const Oracle& oracle, const std::string& prompt, const std::string& a,
            const std::string& b) {
  const double difference = oracle.score(prompt, a) - oracle.score(prompt, b);
  if (std::abs(difference) <= kTieTolerance) return 0;
  return difference > 0 ? 1 : -1;
}

int mixture_prefers(const OracleWeights& weights, const std::string& prompt, const std::string& a,
                    const std::string& b) {
  if (weights.empty()) throw Error("oracle", "a user needs at least one oracle weight");
  double vote = 0;
  for (const auto& [name, weight] : weights) {
    const Oracle& o = oracle(name);
    if (!std::isfinite(weight))
      throw Error("oracle", "weight of " + name + " must be finite, got " + std::to_string(weight));
    vote += weight * prefers(o, prompt, a, b);
  }
  if (std::abs(vote) <= 1e-12) return 0;
  return vote > 0 ? 1 : -1;
}

}  // namespace tailor::judges
