// The query loop (stages/elicit/query_loop.h) with both learners (stages/elicit/learners.h) on a
// planted user: candidates with random features in d = 6, a respondent who answers by the sign
// of a known unit embedding w*, and held-out pairs scored by the learner's estimate. Each method
// must learn w* (the stated target: >= 85% held-out accuracy after 20 answers, from ~50% with
// none), its chosen questions must beat random ones (20 Questions: information gain; PReF: the
// H^-1-norm choice), and an interrupted session must resume to exactly the uninterrupted file.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "stages/elicit/learners.h"
#include "stages/elicit/query_loop.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace tailor {
namespace {

constexpr int64_t kDim = 6, kCandidates = 24;

std::vector<double> gaussian(std::mt19937_64& rng, int64_t n, double scale) {
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<double> v(static_cast<size_t>(n));
  for (auto& x : v)
    x = normal(rng);
  return v;
}

double dot(const double* a, const double* b) {
  double s = 0;
  for (int64_t i = 0; i < kDim; ++i)
    s += a[i] * b[i];
  return s;
}

// A planted user: a unit embedding, its question pools and its held-out pairs.
struct World {
  std::vector<double> w;
  std::vector<QuestionPool> pools;
  std::vector<std::vector<double>> heldout;  // pair differences, oriented so w* prefers the first

  explicit World(uint64_t seed, int64_t questions = 20) {
    std::mt19937_64 rng(seed);
    w = gaussian(rng, kDim, 1.0);
    const double n = std::sqrt(dot(w.data(), w.data()));
    for (auto& x : w)
      x /= n;
    for (int64_t t = 0; t < questions; ++t) {
      QuestionPool pool{"prompt " + std::to_string(t), {}, gaussian(rng, kCandidates * kDim, 2.0)};
      for (int64_t i = 0; i < kCandidates; ++i)
        pool.texts.push_back("candidate " + std::to_string(t) + "." + std::to_string(i));
      pools.push_back(std::move(pool));
    }
    for (int i = 0; i < 400; ++i) {
      std::vector<double> d = gaussian(rng, kDim, 2.0);
      if (dot(w.data(), d.data()) < 0)
        for (auto& x : d)
          x = -x;
      heldout.push_back(std::move(d));
    }
  }

  double accuracy(const std::vector<double>& v) const {
    double right = 0;
    for (const auto& d : heldout)
      right += dot(v.data(), d.data()) > 0 ? 1 : dot(v.data(), d.data()) == 0 ? 0.5 : 0;
    return right / static_cast<double>(heldout.size());
  }
};

// Answers by the sign of w* . (h_first - h_second); stops at question `stop_at` when set.
class PlantedRespondent final : public Respondent {
 public:
  PlantedRespondent(const World& world, int64_t stop_at = 0) : world_(world), stop_at_(stop_at) {}
  Choice answer(const std::string& prompt, const std::string& first, const std::string& second,
                int64_t question, int64_t) override {
    if (question == stop_at_) throw StopAsking{};
    ++asked;
    const QuestionPool& pool = world_.pools[static_cast<size_t>(question - 1)];
    EXPECT_EQ(prompt, pool.prompt);
    const auto index = [&](const std::string& text) {
      return std::find(pool.texts.begin(), pool.texts.end(), text) - pool.texts.begin();
    };
    const double* a = pool.features.data() + index(first) * kDim;
    const double* b = pool.features.data() + index(second) * kDim;
    double m = 0;
    for (int64_t i = 0; i < kDim; ++i)
      m += world_.w[i] * (a[i] - b[i]);
    return m > 0 ? Choice::kFirst : m < 0 ? Choice::kSecond : Choice::kNone;
  }
  int64_t asked = 0;

 private:
  const World& world_;
  int64_t stop_at_;
};

QueryLoopConfig config_for(elicit::Selector selector, int64_t questions = 20) {
  QueryLoopConfig c;
  c.selector = enum_name(elicit::selector_names(), selector);
  c.questions = questions;
  c.dim = kDim;
  return c;
}

TwentyQuestionsLearner twenty_questions(elicit::Selector selector, uint64_t seed) {
  elicit::MhConfig mh;
  mh.samples = 100;
  mh.burn_in = 1000;
  mh.thinning = 20;
  mh.proposal_step = 0.3;
  mh.seed = seed;
  return TwentyQuestionsLearner(selector, mh, kDim, mh.samples);
}

fs::path fresh_file(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / "tailor_query_loop";
  fs::create_directories(dir);
  fs::remove(dir / name);
  return dir / name;
}

// Held-out accuracy of the learner's estimate after 0..20 answers.
std::vector<double> run_curve(const World& world, elicit::Selector selector, Learner& learner) {
  PlantedRespondent respondent(world);
  std::vector<double> curve(21, -1);
  run_query_loop(
      config_for(selector), [&](int64_t t) { return world.pools[t]; }, respondent, learner,
      fresh_file("curve.jsonl"),
      [&](int64_t t, const Learner& fitted) { curve[t] = world.accuracy(fitted.estimate()); });
  return curve;
}

std::vector<double> run_curve(const World& world, elicit::Selector selector, uint64_t seed) {
  TwentyQuestionsLearner learner = twenty_questions(selector, seed);
  return run_curve(world, selector, learner);
}

TEST(QueryLoop, LearnsAPlantedUserAndInformationGainBeatsRandomQuestions) {
  const int seeds = 8;
  double info0 = 0, info20 = 0, info5 = 0, random5 = 0, random20 = 0;
  for (int s = 0; s < seeds; ++s) {
    const World world(100 + s);
    const auto info = run_curve(world, elicit::Selector::kInfoGain, s);
    const auto random = run_curve(world, elicit::Selector::kRandom, s);
    info0 += info[0] / seeds, info5 += info[5] / seeds, info20 += info[20] / seeds;
    random5 += random[5] / seeds, random20 += random[20] / seeds;
  }
  std::cout << "held-out accuracy, mean of " << seeds << " planted users: none " << info0
            << "; info_gain K=5 " << info5 << ", K=20 " << info20 << "; random K=5 " << random5
            << ", K=20 " << random20 << "\n";
  EXPECT_LT(std::abs(info0 - 0.5), 0.2) << "no answers, no knowledge";
  EXPECT_GE(info20, 0.85);
  EXPECT_GT(info5, random5);
  EXPECT_GT(info20, random20);
}

// PReF's learner on the same planted users: lambda is w* up to scale, so the fit's sign
// accuracy is the target; the H^-1-norm choice must beat random questions. (Its fit and choice
// are checked against float64 Newton and brute force in test_elicit_pref_user.cpp; here, that
// the loop uses them: a learner fitted to the loop's answers proposes the question asked.)
TEST(QueryLoop, PrefLearnsAPlantedUserAndActiveQuestionsBeatRandomOnes) {
  const int seeds = 8;
  double active0 = 0, active5 = 0, active20 = 0, random5 = 0, random20 = 0;
  for (int s = 0; s < seeds; ++s) {
    const World world(200 + s);
    PrefLearner active_learner(elicit::Selector::kActive, kDim, 1.0, s);
    PrefLearner random_learner(elicit::Selector::kRandom, kDim, 1.0, s);
    const auto active = run_curve(world, elicit::Selector::kActive, active_learner);
    const auto random = run_curve(world, elicit::Selector::kRandom, random_learner);
    active0 += active[0] / seeds, active5 += active[5] / seeds, active20 += active[20] / seeds;
    random5 += random[5] / seeds, random20 += random[20] / seeds;
  }
  std::cout << "PReF held-out accuracy, mean of " << seeds << " planted users: none " << active0
            << "; active K=5 " << active5 << ", K=20 " << active20 << "; random K=5 " << random5
            << ", K=20 " << random20 << "\n";
  EXPECT_LT(std::abs(active0 - 0.5), 0.2) << "lambda = 0 scores every pair 0";
  EXPECT_GE(active20, 0.85);
  EXPECT_GT(active5, random5);
  EXPECT_GT(active20, random20);
}

TEST(QueryLoop, PrefAsksTheFirstQuestionAtRandomThenTheLeastCertainPair) {
  const World world(31, 6);
  PlantedRespondent respondent(world);
  PrefLearner learner(elicit::Selector::kActive, kDim, 1.0, 5);
  const fs::path file = fresh_file("pref.jsonl");
  const auto result = run_query_loop(
      config_for(elicit::Selector::kActive, 6), [&](int64_t t) { return world.pools[t]; },
      respondent, learner, file, nullptr);
  // Replay: for t >= 1 the pair asked is choose_uncertain_pair of the fit to answers < t.
  std::istringstream lines(read_file(file));
  std::string line;
  for (int64_t t = 0; std::getline(lines, line); ++t) {
    const auto fit = elicit::fit_user(
        kDim, std::vector<elicit::Answer>(result.answers.begin(), result.answers.begin() + t), 1.0);
    const auto q = elicit::choose_uncertain_pair(kDim, fit.hessian, world.pools[t].features);
    if (t == 0) continue;  // the first question is random (the paper's; H = beta I favours no pair)
    const auto asked = nlohmann::json::parse(line);
    EXPECT_EQ(asked.at("first_index"), q.first) << "question " << t + 1 << ": " << line;
    EXPECT_EQ(asked.at("second_index"), q.second) << "question " << t + 1 << ": " << line;
  }
  EXPECT_EQ(learner.estimate(), elicit::fit_user(kDim, result.answers, 1.0).lambda);
}

std::string contents(const fs::path& file) {
  return read_file(file);
}

TEST(QueryLoop, AnInterruptedSessionResumesAtTheNextQuestionWithEveryAnswerOnce) {
  const World world(7, 8);
  const auto pool_of = [&](int64_t t) { return world.pools[t]; };
  const auto config = config_for(elicit::Selector::kInfoGain, 8);
  // A fresh learner per session, as a restarted process has.
  const auto learner = [] { return twenty_questions(elicit::Selector::kInfoGain, 3); };

  const fs::path whole = fresh_file("whole.jsonl");
  PlantedRespondent everyone(world);
  auto whole_learner = learner();
  run_query_loop(config, pool_of, everyone, whole_learner, whole, nullptr);
  EXPECT_EQ(everyone.asked, 8);

  const fs::path parts = fresh_file("parts.jsonl");
  PlantedRespondent quits(world, /*stop_at=*/3);
  auto l1 = learner();
  const auto first = run_query_loop(config, pool_of, quits, l1, parts, nullptr);
  EXPECT_TRUE(first.stopped);
  EXPECT_EQ(quits.asked, 2);
  PlantedRespondent again(world, /*stop_at=*/6);
  auto l2 = learner();
  const auto second = run_query_loop(config, pool_of, again, l2, parts, nullptr);
  EXPECT_EQ(second.resumed, 2);
  EXPECT_EQ(again.asked, 3);  // questions 3, 4, 5
  PlantedRespondent last(world);
  auto l3 = learner();
  const auto third = run_query_loop(config, pool_of, last, l3, parts, nullptr);
  EXPECT_EQ(third.resumed, 5);
  EXPECT_EQ(last.asked, 3);  // questions 6, 7, 8
  EXPECT_FALSE(third.stopped);
  EXPECT_EQ(contents(parts), contents(whole));
  EXPECT_EQ(l3.posterior().values, whole_learner.posterior().values);

  // The same for PReF's active questions.
  const fs::path pref_whole = fresh_file("pref_whole.jsonl");
  const fs::path pref_parts = fresh_file("pref_parts.jsonl");
  PlantedRespondent p_everyone(world), p_quits(world, /*stop_at=*/4), p_rest(world);
  PrefLearner p1(elicit::Selector::kActive, kDim, 1.0, 9), p2 = p1, p3 = p1;
  const auto pref_config = config_for(elicit::Selector::kActive, 8);
  run_query_loop(pref_config, pool_of, p_everyone, p1, pref_whole, nullptr);
  EXPECT_TRUE(run_query_loop(pref_config, pool_of, p_quits, p2, pref_parts, nullptr).stopped);
  EXPECT_EQ(run_query_loop(pref_config, pool_of, p_rest, p3, pref_parts, nullptr).resumed, 3);
  EXPECT_EQ(contents(pref_parts), contents(pref_whole));
  EXPECT_EQ(p3.estimate(), p1.estimate());

  // A finished session asks nothing more.
  PlantedRespondent after(world);
  auto l4 = learner();
  run_query_loop(config, pool_of, after, l4, parts, nullptr);
  EXPECT_EQ(after.asked, 0);
  EXPECT_EQ(contents(parts), contents(whole));
}

TEST(QueryLoop, AMalformedAnswersFileIsAnErrorNamingTheLine) {
  const World world(9, 4);
  const auto pool_of = [&](int64_t t) { return world.pools[t]; };
  const auto config = config_for(elicit::Selector::kVolume, 4);
  auto learner = twenty_questions(elicit::Selector::kVolume, 1);
  const fs::path file = fresh_file("bad.jsonl");
  PlantedRespondent respondent(world, /*stop_at=*/3);
  run_query_loop(config, pool_of, respondent, learner, file, nullptr);
  const std::string good = contents(file);
  const std::string line1 = good.substr(0, good.find('\n') + 1);
  const std::string line2 = good.substr(line1.size());

  auto resume_error = [&](const std::string& text) {
    write_file_atomic(file, text);
    PlantedRespondent r(world);
    return test::error_of([&] { run_query_loop(config, pool_of, r, learner, file, nullptr); });
  };
  std::string e = resume_error(line1 + "{\"question\": 2, \"answer\": 7}\n");
  EXPECT_NE(e.find("bad.jsonl:2"), std::string::npos) << e;
  EXPECT_NE(e.find("answer"), std::string::npos) << e;
  e = resume_error(line1 + "not json\n");
  EXPECT_NE(e.find("bad.jsonl:2"), std::string::npos) << e;
  e = resume_error(line1 + line1);  // question 1 twice
  EXPECT_NE(e.find("bad.jsonl:2: question: expected 2"), std::string::npos) << e;
  std::string other = line2;
  other.replace(other.find("candidate 1."), 12, "candidate 9.");
  e = resume_error(line1 + other);
  EXPECT_NE(e.find("not the question this recipe asks"), std::string::npos) << e;
}

// The estimate at the recipe's own size (d = 128, step 0.1, burn-in 1000, thinning 50), against
// the exact posterior mean in float64. Every answer's difference lies in the plane of two random
// orthonormal q1, q2, so the posterior is symmetric in the 126 other directions and its mean is
// a q1 + b q2; under the uniform ball prior, (w.q1, w.q2) has density (1 - a^2 - b^2)^((d-2)/2)
// on the unit disk, so (a, b) is a 2-D integral (midpoint rule below). The mean of the
// questions' M = 100 samples is far off (Monte Carlo noise in the 126 open directions, larger
// than the mean itself); the estimate, over E samples of the same chain projected onto the
// answers' span, must land close.
TEST(TwentyQuestionsEstimate, ContinuesTheQuestionsChainAndMatchesTheExactPosteriorMean) {
  constexpr int64_t d = 128;
  std::mt19937_64 rng(21);
  std::normal_distribution<double> normal;
  std::vector<double> q1(d), q2(d);
  for (int64_t i = 0; i < d; ++i) {
    q1[i] = normal(rng);
    q2[i] = normal(rng);
  }
  auto dot_d = [&](const std::vector<double>& x, const std::vector<double>& y) {
    double s = 0;
    for (int64_t i = 0; i < d; ++i)
      s += x[i] * y[i];
    return s;
  };
  const double n1 = std::sqrt(dot_d(q1, q1));
  for (auto& x : q1)
    x /= n1;
  const double c12 = dot_d(q1, q2);
  for (int64_t i = 0; i < d; ++i)
    q2[i] -= c12 * q1[i];
  const double n2 = std::sqrt(dot_d(q2, q2));
  for (auto& x : q2)
    x /= n2;

  struct Planar {
    double alpha, beta;
    int choice;
  };
  const std::vector<Planar> planar = {
      {3.0, 0.5, 1}, {2.5, -1.0, 1},   {-2.0, 1.5, -1}, {0.5, 3.5, 1}, {1.5, 2.0, 1},
      {2.0, 0.0, 1}, {-1.0, -3.0, -1}, {3.0, 1.0, 1},   {0.0, 2.5, 1}, {2.0, -2.0, 0}};
  std::vector<elicit::Answer> answers;
  for (const auto& p : planar) {
    elicit::Answer answer{std::vector<double>(d), p.choice};
    for (int64_t i = 0; i < d; ++i)
      answer.difference[i] = p.alpha * q1[i] + p.beta * q2[i];
    answers.push_back(answer);
  }
  double z = 0, sa = 0, sb = 0;
  const int n = 2000;
  const double h = 2.0 / n;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const double x = -1 + (i + 0.5) * h, y = -1 + (j + 0.5) * h;
      const double r2 = x * x + y * y;
      if (r2 >= 1) continue;
      double density = std::pow(1 - r2, (d - 2) / 2.0);
      for (const auto& p : planar)
        if (p.choice != 0) density /= 1 + std::exp(-p.choice * (p.alpha * x + p.beta * y));
      z += density;
      sa += density * x;
      sb += density * y;
    }
  std::vector<double> exact(d);
  for (int64_t i = 0; i < d; ++i)
    exact[i] = sa / z * q1[i] + sb / z * q2[i];
  const double exact_norm = std::sqrt(dot_d(exact, exact));
  ASSERT_GT(exact_norm, 0.05);  // the answers do move the mean
  auto error_of_estimate = [&](const std::vector<double>& w) {
    double e = 0;
    for (int64_t i = 0; i < d; ++i)
      e += (w[i] - exact[i]) * (w[i] - exact[i]);
    return std::sqrt(e);
  };

  elicit::MhConfig mh;  // the recipe's defaults
  mh.samples = 100;
  mh.burn_in = 1000;
  mh.thinning = 50;
  mh.proposal_step = 0.1;
  mh.seed = 11;
  TwentyQuestionsLearner questions_only(elicit::Selector::kInfoGain, mh, d, 100);
  TwentyQuestionsLearner longer(elicit::Selector::kInfoGain, mh, d, 1000);
  questions_only.fit(answers);
  longer.fit(answers);
  // The same chain: the questions' samples are the longer run's first M, so no question changes.
  EXPECT_EQ(longer.posterior().values, questions_only.posterior().values);
  ASSERT_EQ(longer.estimate_samples().count(), 1000);
  const std::vector<double> head(longer.estimate_samples().values.begin(),
                                 longer.estimate_samples().values.begin() + 100 * d);
  EXPECT_EQ(head, questions_only.posterior().values);

  const double raw_error = error_of_estimate(questions_only.posterior().mean());
  const double estimate_error = error_of_estimate(longer.estimate());
  std::cout << "exact mean norm " << exact_norm << "; error of the mean of the 100 samples "
            << raw_error << ", of the estimate " << estimate_error << "\n";
  EXPECT_GT(raw_error, exact_norm);  // what the estimate is for
  // The chain's 1000 samples are worth ~160 independent ones here (measured from the raw mean's
  // error), so the in-plane error is ~sqrt(2 x 0.0077 / 160) ~ 0.01 (0.0077: the prior's variance
  // per direction, which bounds the posterior's); the bound is about three times that. Without the
  // projection the error is 0.12 (measured; the 126 open directions).
  EXPECT_LT(estimate_error, 0.5 * exact_norm);
  // The estimate lies in the answers' plane.
  const std::vector<double> w = longer.estimate();
  double off_plane = 0;
  for (int64_t i = 0; i < d; ++i) {
    const double r = w[i] - dot_d(w, q1) * q1[i] - dot_d(w, q2) * q2[i];
    off_plane += r * r;
  }
  EXPECT_LT(std::sqrt(off_plane), 1e-12);

  EXPECT_NE(test::error_of([&] {
              TwentyQuestionsLearner(elicit::Selector::kRandom, mh, d, 99);
            }).find("estimate_samples (99) must be >= samples (100)"),
            std::string::npos);
}

}  // namespace
}  // namespace tailor
