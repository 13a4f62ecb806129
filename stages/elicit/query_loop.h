// The 20 Questions query loop for one user: before each question, M samples of the posterior
// over the user's preference embedding given the answers so far; the selector picks a pair of
// the question's candidates; the respondent (an oracle mixture, or a person at the terminal)
// answers; the answer is appended to answers.jsonl at once. After every answer the caller sees
// the new posterior (to score held-out pairs with its mean).
//
// Resuming: answers.jsonl is read back first. Each line must be the question the loop would ask
// now (same number, prompt and pair; a changed recipe or candidate pool is an error naming the
// line), so an interrupted session continues at the first unanswered question, and no answer is
// lost or counted twice. Posterior t (given the first t answers) is sampled with a seed made
// from elicit's seed and t, so a resumed loop asks exactly what an uninterrupted one would.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "judges/elicit/preference_posterior.h"
#include "judges/elicit/question_choice.h"
#include "judges/oracles.h"

namespace tailor {

// One question's candidates and their embeddings h (float64, [N, dim] row-major).
struct QuestionPool {
  std::string prompt;
  std::vector<std::string> texts;
  std::vector<double> features;
};

// What a respondent says: the first completion, the second, or no preference.
enum class Choice { kFirst = 1, kSecond = 2, kNone = 0 };

class Respondent {
 public:
  virtual ~Respondent() = default;
  // `question` is 1-based, of `questions`. A person who stops throws StopAsking.
  virtual Choice answer(const std::string& prompt, const std::string& first,
                        const std::string& second, int64_t question, int64_t questions) = 0;
};

// Thrown by a respondent that ends the session early; the answers so far are kept.
struct StopAsking {};

// A simulated user: a weighted mixture of oracles (judges/oracles.h); a tie is no preference.
class OracleRespondent final : public Respondent {
 public:
  explicit OracleRespondent(judges::OracleWeights weights) : weights_(std::move(weights)) {}
  Choice answer(const std::string& prompt, const std::string& first, const std::string& second,
                int64_t question, int64_t questions) override;

 private:
  judges::OracleWeights weights_;
};

struct QueryLoopConfig {
  elicit::Selector selector = elicit::Selector::kInfoGain;
  elicit::MhConfig mh;    // mh.seed is the loop's seed; question t's sampler mixes t into it
  int64_t questions = 1;  // K
  int64_t dim = 0;        // the embedding's size
};

struct QueryLoopResult {
  std::vector<elicit::Answer> answers;  // every answer, resumed ones first
  elicit::PosteriorSamples posterior;   // given all of them
  int64_t resumed = 0;                  // answers read back from answers.jsonl
  bool stopped = false;                 // the respondent stopped before question K
  double ms_per_question = 0;           // posterior sampling + pair choice, mean over the asked
};

// pool_of(t) is question t's pool (0-based; the same on every call). on_posterior(t, samples) is
// called with the posterior given the first t answers, for t from the resumed count to the last
// answer. Errors name answers_file and the line.
QueryLoopResult run_query_loop(
    const QueryLoopConfig& config, const std::function<QuestionPool(int64_t)>& pool_of,
    Respondent& respondent, const std::filesystem::path& answers_file,
    const std::function<void(int64_t, const elicit::PosteriorSamples&)>& on_posterior);

// The posterior given `answers` as the loop samples it after that many answers.
elicit::PosteriorSamples posterior_after(const QueryLoopConfig& config,
                                         const std::vector<elicit::Answer>& answers);

}  // namespace tailor
