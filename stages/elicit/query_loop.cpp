#include "stages/elicit/query_loop.h"

#include <chrono>
#include <cstdio>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "data/store/jsonl_lines.h"

namespace tailor {
namespace fs = std::filesystem;
namespace {

std::vector<double> difference(const QuestionPool& pool, int64_t j, int64_t k, int64_t dim) {
  std::vector<double> d(static_cast<size_t>(dim));
  for (int64_t i = 0; i < dim; ++i)
    d[i] = pool.features[j * dim + i] - pool.features[k * dim + i];
  return d;
}

int sign_of(Choice c) {
  return c == Choice::kFirst ? 1 : c == Choice::kSecond ? -1 : 0;
}

// One line, appended with a single write() and synced, so a killed process leaves either the
// whole line or none of it.
void append_line(const fs::path& file, const std::string& line) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) throw Error("elicit", file.string() + ": cannot open for appending");
  const std::string text = line + "\n";
  const ssize_t n = ::write(fd, text.data(), text.size());
  const bool ok = n == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) throw Error("elicit", file.string() + ": could not append an answer");
}

void check_pool(const QuestionPool& pool, int64_t dim, int64_t t) {
  const auto N = static_cast<int64_t>(pool.texts.size());
  if (N < 2)
    throw Error("elicit", "question " + std::to_string(t + 1) + " has " + std::to_string(N) +
                              " candidates; a question needs two");
  if (static_cast<int64_t>(pool.features.size()) != N * dim)
    throw Error("elicit", "question " + std::to_string(t + 1) + ": features are not [N, dim]");
}

// The answers already in `file`, each checked against the question the loop would ask.
std::vector<elicit::Answer> read_answers(const fs::path& file, const QueryLoopConfig& config,
                                         const std::function<QuestionPool(int64_t)>& pool_of) {
  std::vector<elicit::Answer> answers;
  if (!fs::exists(file)) return answers;
  data::JsonlReader reader(file);
  for (std::string line; reader.next(line);) {
    const nlohmann::json j = reader.parse_object(line);
    const auto t = static_cast<int64_t>(answers.size());
    if (t >= config.questions)
      reader.fail("question", "more answers than the " + std::to_string(config.questions) +
                                  " questions this recipe asks");
    auto integer = [&](const char* key) {
      if (!j.contains(key) || !j[key].is_number_integer()) reader.fail(key, "expected an integer");
      return j[key].get<int64_t>();
    };
    auto text = [&](const char* key) {
      if (!j.contains(key) || !j[key].is_string()) reader.fail(key, "expected a string");
      return j[key].get<std::string>();
    };
    if (integer("question") != t + 1)
      reader.fail("question",
                  "expected " + std::to_string(t + 1) + " (answers in order, once each)");
    const int64_t answer = integer("answer");
    if (answer < 0 || answer > 2) reader.fail("answer", "expected 1, 2 or 0 (no preference)");
    const QuestionPool pool = pool_of(t);
    check_pool(pool, config.dim, t);
    const int64_t a = integer("first_index"), b = integer("second_index");
    const auto N = static_cast<int64_t>(pool.texts.size());
    if (a < 0 || a >= N || b < 0 || b >= N || a == b)
      reader.fail("first_index",
                  "candidate indices outside this question's " + std::to_string(N) + " candidates");
    if (text("prompt") != pool.prompt || text("first") != pool.texts[a] ||
        text("second") != pool.texts[b])
      reader.fail("prompt", "not the question this recipe asks at " + std::to_string(t + 1) +
                                " (the recipe or its candidates changed since this answer)");
    answers.push_back({difference(pool, a, b, config.dim), sign_of(static_cast<Choice>(answer))});
  }
  return answers;
}

}  // namespace

Choice OracleRespondent::answer(const std::string& prompt, const std::string& first,
                                const std::string& second, int64_t, int64_t) {
  const int v = judges::mixture_prefers(weights_, prompt, first, second);
  return v > 0 ? Choice::kFirst : v < 0 ? Choice::kSecond : Choice::kNone;
}

QueryLoopResult run_query_loop(const QueryLoopConfig& config,
                               const std::function<QuestionPool(int64_t)>& pool_of,
                               Respondent& respondent, Learner& learner,
                               const fs::path& answers_file,
                               const std::function<void(int64_t, const Learner&)>& on_fit) {
  QueryLoopResult result;
  result.answers = read_answers(answers_file, config, pool_of);
  result.resumed = static_cast<int64_t>(result.answers.size());
  fs::create_directories(answers_file.parent_path());
  using clock = std::chrono::steady_clock;
  double asking_ms = 0;
  int64_t asked = 0;
  auto t0 = clock::now();
  learner.fit(result.answers);
  for (int64_t t = result.resumed;; ++t) {
    if (on_fit) on_fit(t, learner);
    if (t >= config.questions) break;
    const QuestionPool pool = pool_of(t);
    check_pool(pool, config.dim, t);
    const elicit::Question q = learner.choose(t, pool.features);
    asking_ms += std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    ++asked;
    Choice choice;
    try {
      choice = respondent.answer(pool.prompt, pool.texts[q.first], pool.texts[q.second], t + 1,
                                 config.questions);
    } catch (const StopAsking&) {
      result.stopped = true;
      break;
    }
    const nlohmann::json line = {{"question", t + 1},
                                 {"prompt", pool.prompt},
                                 {"first", pool.texts[q.first]},
                                 {"second", pool.texts[q.second]},
                                 {"first_index", q.first},
                                 {"second_index", q.second},
                                 {"answer", static_cast<int>(choice)},
                                 {"selector", config.selector},
                                 {"score", q.score}};
    append_line(answers_file, line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    result.answers.push_back({difference(pool, q.first, q.second, config.dim), sign_of(choice)});
    t0 = clock::now();
    learner.fit(result.answers);
  }
  result.ms_per_question = asked > 0 ? asking_ms / asked : 0;
  return result;
}

}  // namespace tailor
