#include "data/preferences/survey.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "common/error.h"
#include "data/preferences/simulated_users.h"

namespace tailor::data {

const EnumNames<SurveySelection>& survey_selection_names() {
  static const EnumNames<SurveySelection> table = {{"random", SurveySelection::kRandom},
                                                   {"info_gain", SurveySelection::kInfoGain}};
  return table;
}

const std::string& to_string(SurveySelection selection) {
  return enum_name(survey_selection_names(), selection);
}

namespace {

// Users are partitioned by their answers so far: group[u] in [0, U), equal for users who answered
// every chosen question alike. Refines `group` by question q's answers: new group = (old group,
// answer), renumbered densely.
std::vector<int64_t> refine(const std::vector<int64_t>& group, const int8_t* row,
                            std::vector<int64_t>& scratch) {
  const size_t U = group.size();
  scratch.assign(3 * U, -1);
  std::vector<int64_t> out(U);
  int64_t next = 0;
  for (size_t u = 0; u < U; ++u) {
    int64_t& id = scratch[static_cast<size_t>(group[u]) * 3 + static_cast<size_t>(row[u] + 1)];
    if (id < 0) id = next++;
    out[u] = id;
  }
  return out;
}

// sum_z -log(n_z / U) = sum over groups g of -n_g log(n_g / U).
double information(const std::vector<int64_t>& group, std::vector<int64_t>& counts) {
  const size_t U = group.size();
  counts.assign(U, 0);
  for (int64_t g : group)
    ++counts[static_cast<size_t>(g)];
  double total = 0.0;
  for (int64_t n : counts) {
    if (n > 0) total -= static_cast<double>(n) * std::log(static_cast<double>(n) / U);
  }
  return total;
}

void check_answers(const std::vector<int8_t>& answers, int64_t num_questions, int64_t num_users) {
  if (num_questions < 0 || num_users < 1) {
    throw Error("data", "survey needs num_questions >= 0 and num_users >= 1, got " +
                            std::to_string(num_questions) + " and " + std::to_string(num_users));
  }
  if (static_cast<int64_t>(answers.size()) != num_questions * num_users) {
    throw Error("data", "survey answers have " + std::to_string(answers.size()) +
                            " entries, expected questions x users = " +
                            std::to_string(num_questions) + " x " + std::to_string(num_users));
  }
  for (size_t i = 0; i < answers.size(); ++i) {
    if (answers[i] < -1 || answers[i] > 1) {
      throw Error("data", "survey answer for question " + std::to_string(i / num_users) +
                              ", user " + std::to_string(i % num_users) + " is " +
                              std::to_string(answers[i]) + ", expected -1, 0 or 1");
    }
  }
}

}  // namespace

double survey_information(const std::vector<int8_t>& answers, int64_t num_users,
                          const std::vector<int64_t>& chosen) {
  const int64_t num_questions =
      num_users > 0 ? static_cast<int64_t>(answers.size()) / num_users : 0;
  check_answers(answers, num_questions, num_users);
  std::vector<int64_t> group(static_cast<size_t>(num_users), 0), scratch, counts;
  for (int64_t q : chosen) {
    if (q < 0 || q >= num_questions)
      throw Error("data", "survey question " + std::to_string(q) + " out of range");
    group = refine(group, answers.data() + q * num_users, scratch);
  }
  return information(group, counts);
}

std::vector<int64_t> select_survey(const std::vector<int8_t>& answers, int64_t num_questions,
                                   int64_t num_users, int64_t pool_size, SurveySelection mode,
                                   uint64_t seed) {
  if (pool_size < 0)
    throw Error("recipe", "survey pool size must be >= 0, got " + std::to_string(pool_size));
  check_answers(answers, num_questions, num_users);
  std::vector<int64_t> chosen;
  if (num_questions <= pool_size) {
    for (int64_t q = 0; q < num_questions; ++q)
      chosen.push_back(q);
    return chosen;
  }
  std::vector<bool> taken(static_cast<size_t>(num_questions), false);
  if (mode == SurveySelection::kInfoGain) {
    std::vector<int64_t> group(static_cast<size_t>(num_users), 0), scratch, counts;
    double current = 0.0;
    while (static_cast<int64_t>(chosen.size()) < pool_size) {
      int64_t best = -1;
      double best_gain = current;
      std::vector<int64_t> best_group;
      for (int64_t q = 0; q < num_questions; ++q) {
        if (taken[static_cast<size_t>(q)]) continue;
        std::vector<int64_t> candidate = refine(group, answers.data() + q * num_users, scratch);
        const double gain = information(candidate, counts);
        if (gain > best_gain + 1e-12) {  // strict: ties keep the lowest index
          best = q;
          best_gain = gain;
          best_group = std::move(candidate);
        }
      }
      if (best < 0) break;  // nothing separates the users further
      chosen.push_back(best);
      taken[static_cast<size_t>(best)] = true;
      group = std::move(best_group);
      current = best_gain;
    }
  }
  // Random choice of the rest (all of the pool for "random"): partial Fisher–Yates over the
  // questions not taken yet.
  std::vector<int64_t> rest;
  for (int64_t q = 0; q < num_questions; ++q) {
    if (!taken[static_cast<size_t>(q)]) rest.push_back(q);
  }
  std::mt19937_64 rng(seed);
  const size_t need = static_cast<size_t>(pool_size) - chosen.size();
  for (size_t k = 0; k < need; ++k) {
    const size_t pick =
        k + static_cast<size_t>(detail::uniform_index(rng, static_cast<int64_t>(rest.size() - k)));
    std::swap(rest[k], rest[pick]);
    chosen.push_back(rest[k]);
  }
  if (mode == SurveySelection::kRandom) std::sort(chosen.begin(), chosen.end());
  return chosen;
}

}  // namespace tailor::data
