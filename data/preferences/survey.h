// The survey: a pool of preference questions shared by all users, whose answers identify a
// user. VPL (Poddar et al. 2024) conditions the reward model on C answered questions drawn from
// this pool (docs/reward_modeling.md).
//
// Dimension legend: Q candidate questions, U users.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/enum_names.h"

namespace tailor::data {

// How the survey is chosen (recipe key vae.survey_selection).
enum class SurveySelection { kRandom, kInfoGain };
const EnumNames<SurveySelection>& survey_selection_names();  // random, info_gain
const std::string& to_string(SurveySelection selection);

// Picks `pool_size` of the Q candidate questions (all of them, in index order, when Q <=
// pool_size).
//   answers: int8 [Q * U] row-major; answers[q * U + u] = +1 when user u prefers question q's
//            first response, -1 the second, 0 unknown or tie.
//   kRandom:      a seeded random subset, returned in increasing index order.
//   kInfoGain: greedy information gain (the seed report; docs/reward_modeling.md):
//            repeatedly add the question j maximising sum over users z of -log(n_z / U), where
//            n_z is the number of users whose answers agree with z's on every question chosen so
//            far plus j (0 counts as an answer of its own); ties go to the lowest index. When no
//            question raises the gain any more (users fully separated, or indistinguishable), the
//            rest is filled with a seeded random choice of the remaining questions. Returned in
//            the order chosen.
// Throws Error("recipe", ...) for a negative pool size and Error("data", ...)
// when `answers` has the wrong size or values outside {-1, 0, 1}.
std::vector<int64_t> select_survey(const std::vector<int8_t>& answers, int64_t num_questions,
                                   int64_t num_users, int64_t pool_size, SurveySelection mode,
                                   uint64_t seed);

// sum over users z of -log(n_z / U) for the questions `chosen` (the objective above).
double survey_information(const std::vector<int8_t>& answers, int64_t num_users,
                          const std::vector<int64_t>& chosen);

}  // namespace tailor::data
