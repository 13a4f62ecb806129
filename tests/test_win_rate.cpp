// Win rates (trainer/stages/dpo/win_rate.h) on hand-built cases whose answers are counted by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "trainer/stages/dpo/win_rate.h"

namespace tailor {
namespace {

int prefers_shorter(const std::string&, const std::string& a, const std::string& b) {
  return a.size() < b.size() ? 1 : (a.size() > b.size() ? -1 : 0);
}
int prefers_longer(const std::string& p, const std::string& a, const std::string& b) {
  return -prefers_shorter(p, a, b);
}

TEST(WinRate, CountsWinsTiesAndLossesAndTiesCountHalf) {
  // Adapter shorter twice (wins), equal once (tie), longer once (loss): (2 + 0.5) / 4.
  const std::vector<Comparison> c = {
      {"p", "ab", "abcd"}, {"p", "a", "abc"}, {"p", "xyz", "abc"}, {"p", "abcdef", "ab"}};
  const WinRate w = win_rate(c, prefers_shorter);
  EXPECT_EQ(w.wins, 2);
  EXPECT_EQ(w.ties, 1);
  EXPECT_EQ(w.losses, 1);
  EXPECT_DOUBLE_EQ(w.rate(), 0.625);
  EXPECT_DOUBLE_EQ(win_rate(c, prefers_longer).rate(), 0.375);
  EXPECT_TRUE(std::isnan(win_rate({}, prefers_shorter).rate()));
}

TEST(WinRate, AJudgeThatAlwaysPicksTheFirstPositionScoresOneHalf) {
  const Judge first = [](const std::string&, const std::string&, const std::string&) { return 1; };
  const std::vector<Comparison> c = {{"p", "a", "bb"}, {"p", "ccc", "d"}};
  const WinRate w = win_rate(c, first);
  EXPECT_EQ(w.ties, 2);
  EXPECT_DOUBLE_EQ(w.rate(), 0.5);
}

TEST(WinRate, CrossUserMatrixHasTheJudgesInColumns) {
  // Adapter 0 writes short answers, adapter 1 long ones; judge 0 likes short, judge 1 long.
  const std::vector<std::vector<Comparison>> c = {{{"p", "a", "abc"}, {"q", "ab", "abcd"}},
                                                  {{"p", "abcde", "abc"}, {"q", "abcdef", "abcd"}}};
  const auto m = cross_user_win_rates(c, {prefers_shorter, prefers_longer});
  EXPECT_EQ(m, (std::vector<std::vector<double>>{{1.0, 0.0}, {0.0, 1.0}}));
  EXPECT_THROW(cross_user_win_rates(c, {prefers_shorter}), Error);
}

}  // namespace
}  // namespace tailor
