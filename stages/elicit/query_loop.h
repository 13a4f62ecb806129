// The query loop for one user, shared by both methods: before each question the learner fits the
// answers so far and picks a pair of the question's candidates (20 Questions: posterior samples
// and info_gain | volume | random; PReF: a logistic fit and active | random); the respondent (an
// oracle mixture, or a person at the terminal) answers; the answer is appended to answers.jsonl
// at once. After every answer the caller sees the learner's new estimate (to score held-out pairs
// with it).
//
// Resuming: answers.jsonl is read back first. Each line must be the question the loop would ask
// now (same number, prompt and pair; a changed recipe or candidate pool is an error naming the
// line), so an interrupted session continues at the first unanswered question, and no answer is
// lost or counted twice. Learners are deterministic functions of the answers and the question
// number (their randomness is seeded from both), so a resumed loop asks exactly what an
// uninterrupted one would.
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

// What a method does in the loop (stages/elicit/learners.h has both).
class Learner {
 public:
  virtual ~Learner() = default;
  // Fits the user from `answers` (all of them so far, oldest first).
  virtual void fit(const std::vector<elicit::Answer>& answers) = 0;
  // Question t's pair (0-based t) among the candidates' embeddings [N, dim], from the last fit.
  virtual elicit::Question choose(int64_t t, const std::vector<double>& features) = 0;
  // The user's weights over the embedding after the last fit (the reward is w . h(x, y)).
  virtual std::vector<double> estimate() const = 0;
};

struct QueryLoopConfig {
  std::string selector;   // its name, written on every answers.jsonl line
  int64_t questions = 1;  // K
  int64_t dim = 0;        // the embedding's size
};

struct QueryLoopResult {
  std::vector<elicit::Answer> answers;  // every answer, resumed ones first
  int64_t resumed = 0;                  // answers read back from answers.jsonl
  bool stopped = false;                 // the respondent stopped before question K
  double ms_per_question = 0;           // fit + pair choice, mean over the questions asked
};

// pool_of(t) is question t's pool (0-based; the same on every call). `learner` is fitted to the
// resumed answers, then again after every answer; on_fit(t, learner) is called after the fit to
// the first t answers, for t from the resumed count to the last answer (when the loop returns,
// the learner holds the fit to all of them). Errors name answers_file and the line.
QueryLoopResult run_query_loop(const QueryLoopConfig& config,
                               const std::function<QuestionPool(int64_t)>& pool_of,
                               Respondent& respondent, Learner& learner,
                               const std::filesystem::path& answers_file,
                               const std::function<void(int64_t, const Learner&)>& on_fit);

}  // namespace tailor
