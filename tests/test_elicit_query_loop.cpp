// The 20 Questions query loop (stages/elicit/query_loop.h) on a planted user: candidates with
// random features in d = 6, a respondent who answers by the sign of a known unit embedding w*,
// and held-out pairs scored by the posterior mean. The loop must learn w* (the stated target:
// >= 85% held-out accuracy after 20 answers, from ~50% with none), information gain must beat
// random questions, and an interrupted session must resume to exactly the uninterrupted file.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "stages/elicit/query_loop.h"

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
      right += dot(v.data(), d.data()) > 0 ? 1 : 0;
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

QueryLoopConfig config_for(elicit::Selector selector, uint64_t seed, int64_t questions = 20) {
  QueryLoopConfig c;
  c.selector = selector;
  c.mh.samples = 100;
  c.mh.burn_in = 1000;
  c.mh.thinning = 20;
  c.mh.proposal_step = 0.3;
  c.mh.seed = seed;
  c.questions = questions;
  c.dim = kDim;
  return c;
}

fs::path fresh_file(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / "tailor_query_loop";
  fs::create_directories(dir);
  fs::remove(dir / name);
  return dir / name;
}

// Held-out accuracy of the posterior mean after 0, 5, 10 and 20 answers.
std::vector<double> run_curve(const World& world, elicit::Selector selector, uint64_t seed) {
  PlantedRespondent respondent(world);
  std::vector<double> curve(21, -1);
  run_query_loop(
      config_for(selector, seed), [&](int64_t t) { return world.pools[t]; }, respondent,
      fresh_file("curve.jsonl"),
      [&](int64_t t, const elicit::PosteriorSamples& s) { curve[t] = world.accuracy(s.mean()); });
  return curve;
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

std::string contents(const fs::path& file) {
  return read_file(file);
}

TEST(QueryLoop, AnInterruptedSessionResumesAtTheNextQuestionWithEveryAnswerOnce) {
  const World world(7, 8);
  const auto pool_of = [&](int64_t t) { return world.pools[t]; };
  const auto config = config_for(elicit::Selector::kInfoGain, 3, 8);

  const fs::path whole = fresh_file("whole.jsonl");
  PlantedRespondent everyone(world);
  const auto uninterrupted = run_query_loop(config, pool_of, everyone, whole, nullptr);
  EXPECT_EQ(everyone.asked, 8);

  const fs::path parts = fresh_file("parts.jsonl");
  PlantedRespondent quits(world, /*stop_at=*/3);
  const auto first = run_query_loop(config, pool_of, quits, parts, nullptr);
  EXPECT_TRUE(first.stopped);
  EXPECT_EQ(quits.asked, 2);
  PlantedRespondent again(world, /*stop_at=*/6);
  const auto second = run_query_loop(config, pool_of, again, parts, nullptr);
  EXPECT_EQ(second.resumed, 2);
  EXPECT_EQ(again.asked, 3);  // questions 3, 4, 5
  PlantedRespondent last(world);
  const auto third = run_query_loop(config, pool_of, last, parts, nullptr);
  EXPECT_EQ(third.resumed, 5);
  EXPECT_EQ(last.asked, 3);  // questions 6, 7, 8
  EXPECT_FALSE(third.stopped);
  EXPECT_EQ(contents(parts), contents(whole));
  EXPECT_EQ(third.posterior.values, uninterrupted.posterior.values);

  // A finished session asks nothing more.
  PlantedRespondent after(world);
  run_query_loop(config, pool_of, after, parts, nullptr);
  EXPECT_EQ(after.asked, 0);
  EXPECT_EQ(contents(parts), contents(whole));
}

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

TEST(QueryLoop, AMalformedAnswersFileIsAnErrorNamingTheLine) {
  const World world(9, 4);
  const auto pool_of = [&](int64_t t) { return world.pools[t]; };
  const auto config = config_for(elicit::Selector::kVolume, 1, 4);
  const fs::path file = fresh_file("bad.jsonl");
  PlantedRespondent respondent(world, /*stop_at=*/3);
  run_query_loop(config, pool_of, respondent, file, nullptr);
  const std::string good = contents(file);
  const std::string line1 = good.substr(0, good.find('\n') + 1);
  const std::string line2 = good.substr(line1.size());

  auto resume_error = [&](const std::string& text) {
    write_file_atomic(file, text);
    PlantedRespondent r(world);
    return error_of([&] { run_query_loop(config, pool_of, r, file, nullptr); });
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

}  // namespace
}  // namespace tailor
