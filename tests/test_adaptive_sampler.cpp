// Adaptive continual sampling: exact A:B:C counts per phase (worked by hand), even spread inside
// a group, the user order, determinism, the uniform tail and option validation.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "common/error.h"
#include "data/sampling/adaptive_sampler.h"

namespace {

using tailor::AdaptiveSampler;
using tailor::AdaptiveSamplingOptions;

AdaptiveSamplingOptions three_users() {
  AdaptiveSamplingOptions o;
  o.order = {2, 0, 1};
  o.ratio = {1, 2, 4};
  o.steps_per_phase = 7;
  o.batch_size = 4;
  o.seed = 123;
  return o;
}

// Counts per user over all steps of `phase`, drawn through users_for_step.
std::vector<int64_t> drawn_counts(const AdaptiveSampler& s, int64_t phase) {
  std::vector<int64_t> counts(static_cast<size_t>(s.num_users()), 0);
  const int64_t steps = s.options().steps_per_phase;
  for (int64_t step = phase * steps; step < (phase + 1) * steps; ++step) {
    const std::vector<int32_t> users = s.users_for_step(step);
    EXPECT_EQ(static_cast<int64_t>(users.size()), s.options().batch_size);
    for (int32_t u : users)
      ++counts.at(static_cast<size_t>(u));
  }
  return counts;
}

// 3 users in order {2, 0, 1}, 1:2:4, 7 steps of 4 = 28 samples per phase.
//   phase 0: B = {2}, A = {0, 1}, C empty -> A:B = 1:2 of 28 = 9.33 : 18.67 -> floors 9, 18,
//            remainders 1/3 < 2/3 -> A 9, B 19; A spread 5 (user 0, earlier) + 4 (user 1).
//   phase 1: A = {1}, B = {0}, C = {2} -> 4 : 8 : 16 exactly.
//   phase 2: B = {1}, C = {2, 0}, A empty -> B:C = 2:4 of 28 = 9.33 : 18.67 -> B 9, C 19;
//            C spread 10 (user 2, earlier in order) + 9 (user 0).
TEST(AdaptiveSampler, PhaseCountsMatchRatioExactly) {
  const AdaptiveSampler s(three_users());
  ASSERT_EQ(s.num_phases(), 3);
  const std::vector<std::vector<int64_t>> want = {{5, 4, 19}, {8, 4, 16}, {9, 9, 10}};
  for (int64_t phase = 0; phase < 3; ++phase) {
    EXPECT_EQ(s.phase_counts(phase), want[static_cast<size_t>(phase)]) << "phase " << phase;
    EXPECT_EQ(drawn_counts(s, phase), want[static_cast<size_t>(phase)]) << "phase " << phase;
  }
}

TEST(AdaptiveSampler, GroupsFollowOrder) {
  const AdaptiveSampler s(three_users());
  // order {2, 0, 1}: phase p trains order[p], the earlier ones are finished.
  const std::vector<std::string> want = {"AAB", "BAC", "CBC", "CCC"};  // users 0,1,2 per phase
  for (int64_t phase = 0; phase < 4; ++phase) {
    std::string got;
    for (int32_t u = 0; u < 3; ++u)
      got += s.group_of(u, phase);
    EXPECT_EQ(got, want[static_cast<size_t>(phase)]) << "phase " << phase;
  }
  EXPECT_EQ(s.phase_of_step(0), 0);
  EXPECT_EQ(s.phase_of_step(6), 0);
  EXPECT_EQ(s.phase_of_step(7), 1);
  EXPECT_EQ(s.phase_of_step(20), 2);
  EXPECT_EQ(s.phase_of_step(21), 3);
  EXPECT_EQ(s.phase_of_step(1000), 3);
  EXPECT_THROW(s.phase_of_step(-1), tailor::Error);
  EXPECT_THROW(s.group_of(3, 0), tailor::Error);
}

// Largest remainder with ties to the earlier group and, inside a group, to the earlier user.
TEST(AdaptiveSampler, EvenSpreadAndTies) {
  AdaptiveSamplingOptions o;
  o.order = {3, 1, 4, 0, 2};
  o.ratio = {1, 1, 1};
  o.steps_per_phase = 1;
  o.batch_size = 4;
  const AdaptiveSampler s(o);
  // phase 2: A = {0, 2}, B = {4}, C = {3, 1}; 4 / 3 = 1 r 1 for each group -> the tie goes to A:
  // A 2 (1 + 1), B 1, C 1 (user 3, earlier in order, gets it; user 1 gets 0).
  EXPECT_EQ(s.phase_counts(2), (std::vector<int64_t>{1, 0, 1, 1, 1}));
  // phase 1 with 9 samples per step: A = {4, 0, 2} 3 (1 each), B = {1} 3, C = {3} 3.
  o.batch_size = 9;
  EXPECT_EQ(AdaptiveSampler(o).phase_counts(1), (std::vector<int64_t>{1, 3, 1, 3, 1}));
  // 11 samples, 1:2:4, phase 1 (A = {4, 0, 2}, B = {1}, C = {3}): 11/7, 22/7, 44/7 ->
  // floors 1, 3, 6 (remainders 4, 1, 2) -> A gets the extra: A 2 over three users -> 4 and 0 get 1.
  o.batch_size = 11;
  o.ratio = {1, 2, 4};
  EXPECT_EQ(AdaptiveSampler(o).phase_counts(1), (std::vector<int64_t>{1, 3, 0, 6, 1}));
}

TEST(AdaptiveSampler, SingleUserDrawsOnlyB) {
  AdaptiveSamplingOptions o;
  o.order = {0};
  o.steps_per_phase = 3;
  o.batch_size = 2;
  const AdaptiveSampler s(o);
  EXPECT_EQ(s.phase_counts(0), (std::vector<int64_t>{6}));
  EXPECT_EQ(s.users_for_step(0), (std::vector<int32_t>{0, 0}));
}

TEST(AdaptiveSampler, DeterministicAndShuffled) {
  const AdaptiveSampler a(three_users());
  const AdaptiveSampler b(three_users());
  AdaptiveSamplingOptions other = three_users();
  other.seed = 124;
  const AdaptiveSampler c(other);
  std::vector<int32_t> seq_a, seq_c;
  for (int64_t step = 0; step < 30; ++step) {
    const auto ua = a.users_for_step(step);
    EXPECT_EQ(ua, b.users_for_step(step)) << "step " << step;
    EXPECT_EQ(ua, a.users_for_step(step)) << "repeat call, step " << step;
    seq_a.insert(seq_a.end(), ua.begin(), ua.end());
    const auto uc = c.users_for_step(step);
    seq_c.insert(seq_c.end(), uc.begin(), uc.end());
  }
  EXPECT_NE(seq_a, seq_c) << "the seed should change the order";
  // Phase 1 is shuffled, not laid out user by user: its 28 samples are not sorted by order.
  std::vector<int32_t> phase1(seq_a.begin() + 28, seq_a.begin() + 56);
  std::vector<int32_t> blocks;
  for (int32_t u : {2, 0, 1}) {
    const std::vector<int64_t> counts = a.phase_counts(1);
    blocks.insert(blocks.end(), static_cast<size_t>(counts[static_cast<size_t>(u)]), u);
  }
  EXPECT_NE(phase1, blocks);
}

TEST(AdaptiveSampler, TailIsUniform) {
  AdaptiveSamplingOptions o = three_users();
  const AdaptiveSampler s(o);
  const int64_t first_tail = 3 * o.steps_per_phase;
  std::map<int32_t, int64_t> counts;
  const int64_t steps = 3000;
  for (int64_t step = first_tail; step < first_tail + steps; ++step) {
    for (int32_t u : s.users_for_step(step))
      ++counts[u];
  }
  ASSERT_EQ(counts.size(), 3u);
  // 12000 draws, p = 1/3: sd = sqrt(12000 * 1/3 * 2/3) = 51.6; allow 5 sd.
  for (const auto& [user, count] : counts)
    EXPECT_NEAR(count, 4000, 260) << "user " << user;
  EXPECT_EQ(s.users_for_step(first_tail + 5), AdaptiveSampler(o).users_for_step(first_tail + 5));
  EXPECT_NE(s.users_for_step(first_tail + 5), s.users_for_step(first_tail + 6));
}

void expect_recipe_error(const AdaptiveSamplingOptions& o, const std::string& field) {
  try {
    AdaptiveSampler s(o);
    ADD_FAILURE() << "expected an error naming " << field;
  } catch (const tailor::Error& e) {
    EXPECT_EQ(e.scope(), "recipe");
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
  }
}

TEST(AdaptiveSampler, RejectsBadOptions) {
  auto with = [](auto change) {
    AdaptiveSamplingOptions o = three_users();
    change(o);
    return o;
  };
  expect_recipe_error(with([](auto& o) { o.order = {}; }), "train.adaptive_order");
  expect_recipe_error(with([](auto& o) { o.order = {0, 0, 1}; }), "train.adaptive_order");
  expect_recipe_error(with([](auto& o) { o.order = {0, 3, 1}; }), "train.adaptive_order");
  expect_recipe_error(with([](auto& o) { o.order = {0, -1, 1}; }), "train.adaptive_order");
  expect_recipe_error(with([](auto& o) { o.ratio = {-1, 2, 4}; }), "train.adaptive_ratio");
  expect_recipe_error(with([](auto& o) { o.ratio = {0, 0, 0}; }), "train.adaptive_ratio");
  // B weightless and no C in phase 0 to draw from instead.
  expect_recipe_error(with([](auto& o) { o.ratio = {1, 0, 0}; }), "train.adaptive_ratio");
  expect_recipe_error(with([](auto& o) { o.steps_per_phase = 0; }), "train.steps_per_phase");
  expect_recipe_error(with([](auto& o) { o.batch_size = 0; }), "train.batch_size");
  // A weightless B still works when A and C carry weight: phase 0 draws only A, the last only C.
  AdaptiveSamplingOptions ok = three_users();
  ok.ratio = {1, 0, 1};
  const AdaptiveSampler s(ok);
  EXPECT_EQ(s.phase_counts(0), (std::vector<int64_t>{14, 14, 0}));
  EXPECT_EQ(s.phase_counts(2), (std::vector<int64_t>{14, 0, 14}));
}

}  // namespace
