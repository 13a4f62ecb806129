// Win rates (judges/win_rate.h) through the function the DPO stage calls, win_rates() with a
// judges::Judge, on hand-built cases whose answers are counted by hand: a stub judge that records
// what it was asked, and the production oracle judge (judges/judge.h) of a user who prefers
// shorter answers.
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "judges/judge.h"
#include "judges/win_rate.h"

namespace tailor {
namespace {

// Prefers the shorter completion (a tie on equal lengths), or always the first one; keeps every
// matchup it was asked about.
class StubJudge : public judges::Judge {
 public:
  enum class Taste { kShorter, kLonger, kFirstPosition };
  explicit StubJudge(Taste taste) : taste_(taste) {}
  std::vector<int> compare(const std::vector<judges::Matchup>& matchups) override {
    ++calls;
    std::vector<int> out;
    for (const auto& m : matchups) {
      asked.push_back(m);
      const int shorter = m.a.size() < m.b.size() ? 1 : (m.a.size() > m.b.size() ? -1 : 0);
      out.push_back(taste_ == Taste::kFirstPosition ? 1
                    : taste_ == Taste::kShorter     ? shorter
                                                    : -shorter);
    }
    return out;
  }
  std::vector<judges::Ranking> rank(const std::vector<judges::Candidates>&) override {
    throw Error("test", "not used");
  }
  std::string description() const override { return "stub"; }

  int calls = 0;
  std::vector<judges::Matchup> asked;

 private:
  Taste taste_;
};

TEST(WinRate, CountsWinsTiesAndLossesAndTiesCountHalf) {
  // Adapter shorter twice (wins), equal once (tie), longer once (loss): (2 + 0.5) / 4.
  const std::vector<Comparison> c = {
      {"p", "ab", "abcd"}, {"p", "a", "abc"}, {"p", "xyz", "abc"}, {"p", "abcdef", "ab"}};
  StubJudge shorter(StubJudge::Taste::kShorter);
  const WinRate w = win_rates({c}, shorter).front();
  EXPECT_EQ(w.wins, 2);
  EXPECT_EQ(w.ties, 1);
  EXPECT_EQ(w.losses, 1);
  EXPECT_DOUBLE_EQ(w.rate(), 0.625);
  // Every comparison asked both ways round, in one call.
  EXPECT_EQ(shorter.calls, 1);
  ASSERT_EQ(shorter.asked.size(), 8u);
  EXPECT_EQ(shorter.asked[0].a, "ab");
  EXPECT_EQ(shorter.asked[1].a, "abcd");
  StubJudge longer(StubJudge::Taste::kLonger);
  EXPECT_DOUBLE_EQ(win_rates({c}, longer).front().rate(), 0.375);
  EXPECT_TRUE(std::isnan(win_rates({{}}, shorter).front().rate()));
}

TEST(WinRate, AJudgeThatAlwaysPicksTheFirstPositionScoresOneHalf) {
  StubJudge first(StubJudge::Taste::kFirstPosition);
  const WinRate w = win_rates({{{"p", "a", "bb"}, {"p", "ccc", "d"}}}, first).front();
  EXPECT_EQ(w.ties, 2);
  EXPECT_DOUBLE_EQ(w.rate(), 0.5);
}

// The cross-user matrix as the stage builds it: one call per judge with every adapter's
// comparisons. Adapter 0 writes short answers, adapter 1 long ones.
TEST(WinRate, OneJudgeRatesEveryAdapterInOneCall) {
  const std::vector<std::vector<Comparison>> c = {{{"p", "a", "abc"}, {"q", "ab", "abcd"}},
                                                  {{"p", "abcde", "abc"}, {"q", "abcdef", "abcd"}}};
  StubJudge shorter(StubJudge::Taste::kShorter), longer(StubJudge::Taste::kLonger);
  const auto by_shorter = win_rates(c, shorter), by_longer = win_rates(c, longer);
  EXPECT_EQ(shorter.calls, 1);
  EXPECT_DOUBLE_EQ(by_shorter[0].rate(), 1.0);
  EXPECT_DOUBLE_EQ(by_shorter[1].rate(), 0.0);
  EXPECT_DOUBLE_EQ(by_longer[0].rate(), 0.0);
  EXPECT_DOUBLE_EQ(by_longer[1].rate(), 1.0);
}

// The oracle judge a recipe's `users: {brief: {shorter_length: 1.0}}` builds (shorter_length
// prefers fewer characters): one win (2 against 19), one loss (31 against 4), one tie of equal
// length (3 and 3), counted by hand.
TEST(WinRate, TheOracleJudgeOfAShortAnswerUser) {
  const auto brief = judges::make_oracle_judge({{"shorter_length", 1.0}});
  const std::vector<Comparison> c = {{"What is 2 + 2?", "4.", "The answer is four."},
                                     {"Name a colour.", "Red, or perhaps a deep crimson.", "Red."},
                                     {"Say hi.", "Hi!", "Yo!"}};
  const WinRate w = win_rates({c}, *brief).front();
  EXPECT_EQ(w.wins, 1);
  EXPECT_EQ(w.losses, 1);
  EXPECT_EQ(w.ties, 1);
  EXPECT_DOUBLE_EQ(w.rate(), 0.5);
}

// An adapter that answers nothing would beat every answer under a judge that likes short ones;
// marked invalid (is_invalid_answer), an empty or cut-off answer loses to a valid one, two invalid
// answers tie, and only valid pairs reach the judge.
TEST(WinRate, EmptyAndCutOffAnswersNeverWin) {
  EXPECT_TRUE(is_invalid_answer("", false));
  EXPECT_TRUE(is_invalid_answer(" \n\t ", false));
  EXPECT_TRUE(is_invalid_answer("Cats are", true));
  EXPECT_FALSE(is_invalid_answer(" Cats.", false));

  const auto brief = judges::make_oracle_judge({{"shorter_length", 1.0}});
  // Unmarked, the empty answer wins: the gaming the rule exists for.
  EXPECT_EQ(win_rates({{{"Say hi.", "", "Hello there."}}}, *brief).front().wins, 1);

  std::vector<Comparison> c;
  for (const std::string empty : {"", " ", "\n"})
    c.push_back({"Say hi.", empty, "Hello there.", is_invalid_answer(empty, false), false});
  c.push_back({"Say hi.", "Hi", "Hello there.", /*adapter_invalid=*/true, false});  // cut off
  c.push_back({"Say hi.", "", "Hello", true, true});                               // both invalid
  c.push_back({"Say hi.", "Hello there, friend.", "", false, true});               // base invalid
  c.push_back({"Say hi.", "Hi.", "Hello there.", false, false});                   // judged: a win
  const WinRate w = win_rates({c}, *brief).front();
  EXPECT_EQ(w.losses, 4);
  EXPECT_EQ(w.ties, 1);
  EXPECT_EQ(w.wins, 2);
  EXPECT_DOUBLE_EQ(w.rate(), 2.5 / 7.0);

  StubJudge shorter(StubJudge::Taste::kShorter);
  win_rates({c}, shorter);
  ASSERT_EQ(shorter.asked.size(), 2u);  // the one valid comparison, both ways round
  EXPECT_EQ(shorter.asked[0].a, "Hi.");
}

}  // namespace
}  // namespace tailor
