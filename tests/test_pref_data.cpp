// Specifications of the preference data layer: UltraFeedback importers and the rated store,
// simulated users and their labels, survey selection, and the synthetic benchmark. Expected
// values are written out by hand from the fixtures (tests/fixtures/ultrafeedback/) or computed
// by independent float64 formulas in this file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "data/preferences/rated_corpus.h"
#include "data/preferences/simulated_users.h"
#include "data/preferences/survey.h"
#include "data/preferences/synthetic_prefs.h"
#include "data/store/h5_file.h"
#include "test_support.h"

// In tailor::data rather than `using namespace tailor::data` at file scope, which would carry
// over into the files after this one in a unity build.
namespace tailor::data {
namespace {

namespace fs = std::filesystem;

const float kNaN = std::nanf("");

fs::path ultrafeedback_fixture(const std::string& name) {
  return fs::path(TAILOR_FIXTURE_DIR) / "ultrafeedback" / name;
}

// A fresh, empty directory per test.
class PrefDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("tailor_test_pref_" + std::to_string(getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// Ratings equal element-wise, NaN matching NaN.
void expect_same_ratings(const std::vector<float>& actual, const std::vector<float>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    if (std::isnan(expected[i])) {
      EXPECT_TRUE(std::isnan(actual[i])) << "entry " << i << " = " << actual[i];
    } else {
      EXPECT_EQ(actual[i], expected[i]) << "entry " << i;
    }
  }
}

void expect_same_corpus(const RatedCorpus& a, const RatedCorpus& b) {
  EXPECT_EQ(a.aspects, b.aspects);
  EXPECT_EQ(a.prompts, b.prompts);
  EXPECT_EQ(a.responses, b.responses);
  EXPECT_EQ(a.response_prompt, b.response_prompt);
  EXPECT_EQ(a.source, b.source);
  expect_same_ratings(a.ratings, b.ratings);
}

// ---- importers ----------------------------------------------------------------------------

TEST(UltraFeedbackImport, RawFixtureValuesWithNotApplicableAsNaN) {
  const RatedCorpus c = read_ultrafeedback_raw(ultrafeedback_fixture("raw.jsonl"));
  EXPECT_EQ(c.aspects, (std::vector<std::string>{"helpfulness", "honesty", "instruction_following",
                                                 "truthfulness"}));
  EXPECT_EQ(c.prompts, (std::vector<std::string>{"Name a prime number.", "Say hi."}));
  EXPECT_EQ(c.responses, (std::vector<std::string>{"7 is prime.", "Nine.", "Hi!"}));
  EXPECT_EQ(c.response_prompt, (std::vector<int64_t>{0, 0, 1}));
  // "Hi!": helpfulness given as the JSON number 5, instruction_following absent -> NaN.
  expect_same_ratings(c.ratings, {4, 5, 3, 5, /**/ 1, kNaN, 2, 1, /**/ 5, 3, kNaN, 2});
  EXPECT_TRUE(std::isnan(c.rating(1, 1)));
  EXPECT_EQ(c.rating(2, 3), 2.0f);
  EXPECT_EQ(c.source, ultrafeedback_fixture("raw.jsonl").string());
}

TEST(UltraFeedbackImport, BinarizedFixtureMapsToOverallAspect) {
  const RatedCorpus c = read_ultrafeedback_binarized(ultrafeedback_fixture("binarized.jsonl"));
  EXPECT_EQ(c.aspects, (std::vector<std::string>{"overall"}));
  EXPECT_EQ(c.prompts, (std::vector<std::string>{"Name a prime number.", "Say hi."}));
  EXPECT_EQ(c.responses, (std::vector<std::string>{"7 is prime.", "Nine.", "Hi!", "Go away."}));
  EXPECT_EQ(c.response_prompt, (std::vector<int64_t>{0, 0, 1, 1}));
  expect_same_ratings(c.ratings, {8.5f, 3.0f, 6.0f, 2.5f});
}

TEST(UltraFeedbackImport, DetectsFormatFromFirstLine) {
  EXPECT_EQ(detect_preference_format(ultrafeedback_fixture("raw.jsonl")),
            PreferenceFormat::ultrafeedback_raw);
  EXPECT_EQ(detect_preference_format(ultrafeedback_fixture("binarized.jsonl")),
            PreferenceFormat::ultrafeedback_binarized);
  const fs::path pairs = fs::path(TAILOR_FIXTURE_DIR) / "data" / "pairs.jsonl";
  EXPECT_EQ(detect_preference_format(pairs), PreferenceFormat::pairs);
  // read_rated_corpus dispatches by the detected shape; a pairs file has no ratings.
  EXPECT_EQ(read_rated_corpus(ultrafeedback_fixture("binarized.jsonl")).aspects,
            std::vector<std::string>{"overall"});
  EXPECT_EQ(read_rated_corpus(ultrafeedback_fixture("raw.jsonl")).num_aspects(), 4);
  EXPECT_NE(test::error_of([&] { read_rated_corpus(pairs); }).find("per-aspect ratings"),
            std::string::npos);
}

TEST(UltraFeedbackImport, MalformedLinesNameFileLineAndKey) {
  struct Case {
    const char* file;
    int line;
    const char* key;
  };
  for (const Case& c :
       {Case{"bad_rating.jsonl", 3, "completions[1].annotations.honesty.Rating"},
        Case{"rating_out_of_range.jsonl", 1, "completions[0].annotations.truthfulness.Rating"},
        Case{"not_json.jsonl", 2, "invalid JSON"},
        Case{"empty_completions.jsonl", 3, "completions: expected a non-empty"},
        Case{"missing_response.jsonl", 1, "completions[0].response: missing"}}) {
    const std::string what =
        test::error_of([&] { read_ultrafeedback_raw(ultrafeedback_fixture(c.file)); });
    const std::string where =
        ultrafeedback_fixture(c.file).string() + ":" + std::to_string(c.line) + ": ";
    EXPECT_EQ(what.rfind("[data] " + where, 0), 0u) << c.file << ": " << what;
    EXPECT_NE(what.find(c.key), std::string::npos) << c.file << ": " << what;
  }
  EXPECT_NE(test::error_of([] {
              read_ultrafeedback_raw(ultrafeedback_fixture("bad_rating.jsonl"));
            }).find("\"seven\""),
            std::string::npos);
  const std::string score = test::error_of(
      [] { read_ultrafeedback_binarized(ultrafeedback_fixture("binarized_bad_score.jsonl")); });
  EXPECT_NE(score.find("binarized_bad_score.jsonl:2: score_chosen: expected a finite number"),
            std::string::npos)
      << score;
  // A raw file is not a binarized one: the first line lacks "prompt".
  EXPECT_NE(test::error_of([] {
              read_ultrafeedback_binarized(ultrafeedback_fixture("raw.jsonl"));
            }).find("raw.jsonl:1: prompt: missing"),
            std::string::npos);
  EXPECT_NE(test::error_of([] {
              read_ultrafeedback_raw(ultrafeedback_fixture("empty.jsonl"));
            }).find("no records"),
            std::string::npos);
  EXPECT_NE(test::error_of([] {
              detect_preference_format(ultrafeedback_fixture("empty.jsonl"));
            }).find("no records"),
            std::string::npos);
}

// ---- rated store --------------------------------------------------------------------------

TEST_F(PrefDataTest, RatedStoreRoundTripKeepsNaN) {
  const RatedCorpus raw = read_ultrafeedback_raw(ultrafeedback_fixture("raw.jsonl"));
  const fs::path h5 = dir_ / "rated.h5";
  write_rated_store(h5, raw);
  expect_same_corpus(read_rated_store(h5), raw);
  expect_same_corpus(read_rated_corpus(h5), raw);
  // The layout documented in rated_corpus.h, read with the plain HDF5 layer.
  const tailor::h5::File file = tailor::h5::File::open_read_only(h5);
  EXPECT_EQ(file.string_attribute("schema"), "tailor.rated");
  EXPECT_EQ(file.int_attribute("schema_version"), 1);
  EXPECT_EQ(file.int_attribute("num_aspects"), 4);
  EXPECT_EQ(file.dataset_size("ratings"), 12);
  EXPECT_EQ(file.read_int64("response_prompt"), (std::vector<int64_t>{0, 0, 1}));
  // No temporary file is left beside the store.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(PrefDataTest, RatedStoreRejectsOtherSchemasAndInconsistentData) {
  const fs::path other = dir_ / "other.h5";
  {
    auto file = tailor::h5::File::create(other);
    file.set_attribute("schema", std::string("tailor.store"));
    file.close();
  }
  const std::string what = test::error_of([&] { read_rated_store(other); });
  EXPECT_NE(what.find(other.string() + ": schema is 'tailor.store', expected 'tailor.rated'"),
            std::string::npos)
      << what;

  // A response pointing past the prompts: refused when writing, and when reading.
  RatedCorpus bad = read_ultrafeedback_raw(ultrafeedback_fixture("raw.jsonl"));
  bad.response_prompt[2] = 7;
  EXPECT_NE(test::error_of([&] { write_rated_store(dir_ / "bad.h5", bad); }).find("prompt 7"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "bad.h5"));
  const fs::path tampered = dir_ / "tampered.h5";
  {
    auto file = tailor::h5::File::create(tampered);
    file.set_attribute("schema", std::string("tailor.rated"));
    file.set_attribute("schema_version", int64_t{1});
    file.set_attribute("source", std::string("x"));
    file.set_attribute("num_aspects", int64_t{1});
    file.write_strings("aspects", {"overall"});
    file.write_strings("prompts", {"p"});
    file.write_strings("responses", {"a", "b"});
    file.write_int64("response_prompt", {0, 3});
    file.write_float32("ratings", {1.0f, 2.0f});
    file.close();
  }
  const std::string tampered_what = test::error_of([&] { read_rated_store(tampered); });
  EXPECT_NE(tampered_what.find(tampered.string() + ": response 1 points to prompt 3"),
            std::string::npos)
      << tampered_what;
}

// ---- simulated users ----------------------------------------------------------------------

TEST(SimulatedUsers, TwoConflictAndUniformExactWeights) {
  const auto two = make_users(UserKind::kTwoConflict, 2, 4, 0);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].name, "user0");
  EXPECT_EQ(two[1].name, "user1");
  EXPECT_EQ(two[0].weights, (std::vector<double>{1, 0, 0, 0}));
  EXPECT_EQ(two[1].weights, (std::vector<double>{0, 1, 0, 0}));
  EXPECT_EQ(make_users(UserKind::kUniform, 1, 4, 3)[0].weights,
            (std::vector<double>{0.25, 0.25, 0.25, 0.25}));
  for (auto bad : {std::make_pair(UserKind::kTwoConflict, int64_t{3}),
                   std::make_pair(UserKind::kUniform, int64_t{2}),
                   std::make_pair(UserKind::kRandom, int64_t{0})}) {
    const std::string what = test::error_of([&] { make_users(bad.first, bad.second, 4, 0); });
    EXPECT_EQ(what.rfind("[recipe] ", 0), 0u) << what;
    EXPECT_NE(what.find(to_string(bad.first)), std::string::npos) << what;
    EXPECT_NE(what.find(std::to_string(bad.second)), std::string::npos) << what;
  }
  // from_data users are the data's own; make_users says so.
  EXPECT_NE(test::error_of([&] { make_users(UserKind::kFromData, 2, 4, 0); }).find("from_data"),
            std::string::npos);
  EXPECT_THROW(make_users(UserKind::kTwoConflict, 2, 1, 0), Error);
  EXPECT_THROW(make_users(UserKind::kClustered, 100, 3, 0), Error);
}

TEST(SimulatedUsers, RandomUsersOnSimplexWithUniformLast) {
  const auto users = make_users(UserKind::kRandom, 100, 4, 7);
  ASSERT_EQ(users.size(), 100u);
  std::set<std::vector<double>> distinct;
  for (const auto& u : users) {
    ASSERT_EQ(u.weights.size(), 4u);
    double sum = 0;
    for (double w : u.weights) {
      EXPECT_GE(w, 0.0);
      sum += w;
    }
    EXPECT_NEAR(sum, 1.0, 1e-12);
    distinct.insert(u.weights);
  }
  EXPECT_EQ(distinct.size(), 100u);
  EXPECT_EQ(users.back().weights, (std::vector<double>{0.25, 0.25, 0.25, 0.25}));
  EXPECT_EQ(users[99].name, "user99");
  // Determinism: same seed -> same users; another seed -> others.
  const auto again = make_users(UserKind::kRandom, 100, 4, 7);
  const auto other = make_users(UserKind::kRandom, 100, 4, 8);
  for (size_t u = 0; u < 99; ++u)
    EXPECT_EQ(users[u].weights, again[u].weights);
  EXPECT_NE(users[0].weights, other[0].weights);
}

TEST(SimulatedUsers, ClusteredCountsAndClusterMeans) {
  EXPECT_EQ(clustered_user_counts(100), (std::vector<int64_t>{49, 30, 20, 1}));
  // count 11: 10 users; quotas 4.95, 3.03, 2.02 -> floors 4, 3, 2, the last one to cluster 0.
  EXPECT_EQ(clustered_user_counts(11), (std::vector<int64_t>{5, 3, 2, 1}));
  EXPECT_EQ(clustered_user_counts(1), (std::vector<int64_t>{0, 0, 0, 1}));
  const auto users = make_users(UserKind::kClustered, 100, 4, 1);
  ASSERT_EQ(users.size(), 100u);
  EXPECT_EQ(users[99].weights, (std::vector<double>{0.25, 0.25, 0.25, 0.25}));
  // Cluster means are alpha / sum(alpha): (.25,.25,.25,.25), (.07,.03,.6,.3), (.75,.05,.12,.08).
  auto mean = [&](size_t from, size_t to, size_t a) {
    double s = 0;
    for (size_t u = from; u < to; ++u)
      s += users[u].weights[a];
    return s / static_cast<double>(to - from);
  };
  EXPECT_NEAR(mean(0, 49, 0), 0.25, 0.05);
  EXPECT_NEAR(mean(49, 79, 2), 0.60, 0.08);
  EXPECT_NEAR(mean(49, 79, 1), 0.03, 0.03);
  EXPECT_NEAR(mean(79, 99, 0), 0.75, 0.08);
  EXPECT_NEAR(mean(79, 99, 1), 0.05, 0.04);
  const auto again = make_users(UserKind::kClustered, 100, 4, 1);
  for (size_t u = 0; u < 100; ++u)
    EXPECT_EQ(users[u].weights, again[u].weights);
}

TEST(SimulatedUsers, GammaAndDirichletMomentsMatchFormulas) {
  std::mt19937_64 rng(11);
  for (double alpha : {0.3, 1.0, 3.5}) {
    const int n = 40000;
    double s = 0, s2 = 0;
    for (int i = 0; i < n; ++i) {
      const double x = sample_gamma(alpha, rng);
      s += x;
      s2 += x * x;
    }
    const double m = s / n, var = s2 / n - m * m;
    // Gamma(alpha, 1): mean alpha, variance alpha; std error of the mean sqrt(alpha / n).
    EXPECT_NEAR(m, alpha, 5 * std::sqrt(alpha / n)) << "alpha " << alpha;
    EXPECT_NEAR(var, alpha, 0.05 * alpha + 0.02) << "alpha " << alpha;
  }
  const std::vector<double> alpha = {0.7, 0.3, 6, 3};
  const double a0 = 10.0;
  std::vector<double> s(4, 0), s2(4, 0);
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const auto w = sample_dirichlet(alpha, rng);
    for (size_t k = 0; k < 4; ++k) {
      s[k] += w[k];
      s2[k] += w[k] * w[k];
    }
  }
  for (size_t k = 0; k < 4; ++k) {
    const double mean = alpha[k] / a0;
    const double var = mean * (1 - mean) / (a0 + 1);  // Dirichlet marginal variance
    EXPECT_NEAR(s[k] / n, mean, 5 * std::sqrt(var / n)) << k;
    EXPECT_NEAR(s2[k] / n - (s[k] / n) * (s[k] / n), var, 0.1 * var) << k;
  }
}

// ---- labels -------------------------------------------------------------------------------

// One prompt, three responses, aspects (a, b): r0 = [4, 2], r1 = [2, 4], r2 = [4, N/A].
RatedCorpus three_responses() {
  RatedCorpus c;
  c.aspects = {"a", "b"};
  c.prompts = {"p"};
  c.responses = {"r0", "r1", "r2"};
  c.response_prompt = {0, 0, 0};
  c.ratings = {4, 2, 2, 4, 4, kNaN};
  return c;
}

SimulatedUser user(const std::string& name, std::vector<double> w) {
  return SimulatedUser{name, std::move(w)};
}

std::vector<std::vector<int64_t>> as_rows(const std::vector<UserLabel>& pairs) {
  std::vector<std::vector<int64_t>> rows;
  for (const UserLabel& p : pairs)
    rows.push_back({p.user, p.prompt, p.chosen, p.rejected});
  return rows;
}

TEST(LabelPairs, ArgmaxDropsTiesAndUnratedAspects) {
  // Scores: user0 [1,0] -> 4, 2, 4; user1 [0,1] -> 2, 4, unusable; user2 [.5,.5] -> 3, 3, unusable.
  const std::vector<SimulatedUser> users = {user("u0", {1, 0}), user("u1", {0, 1}),
                                            user("u2", {0.5, 0.5})};
  const auto pairs = label_pairs(three_responses(), users, LabelOptions{}, 0);
  // Sorted by (prompt, i, j, user): (0,1) u0 picks r0, u1 picks r1, u2 ties; (0,2) u0 ties;
  // (1,2) u0 picks r2.
  EXPECT_EQ(as_rows(pairs),
            (std::vector<std::vector<int64_t>>{{0, 0, 0, 1}, {1, 0, 1, 0}, {0, 0, 2, 1}}));
}

TEST(LabelPairs, ConflictOnlyKeepsPairsAllUsersRateAndDisagreeOn) {
  LabelOptions options;
  options.conflict_only = true;
  const auto conflict =
      label_pairs(three_responses(), {user("u0", {1, 0}), user("u1", {0, 1})}, options, 0);
  // Only (0,1) is usable and untied for both, and they disagree on it.
  EXPECT_EQ(as_rows(conflict), (std::vector<std::vector<int64_t>>{{0, 0, 0, 1}, {1, 0, 1, 0}}));
  // u2 ties on (0,1): nothing is left.
  EXPECT_TRUE(
      label_pairs(three_responses(), {user("u0", {1, 0}), user("u2", {0.5, 0.5})}, options, 0)
          .empty());
  // Two users who agree everywhere: no conflicts.
  EXPECT_TRUE(
      label_pairs(three_responses(), {user("u0", {1, 0}), user("u3", {0.9, 0.1})}, options, 0)
          .empty());
}

TEST(LabelPairs, PairsStayWithinTheirPromptInPromptOrder) {
  RatedCorpus c;
  c.aspects = {"a"};
  c.prompts = {"p0", "p1"};
  c.responses = {"x", "y", "z", "w"};
  c.response_prompt = {1, 0, 1, 0};
  c.ratings = {1, 2, 3, 4};
  const auto pairs = label_pairs(c, {user("u", {1})}, LabelOptions{}, 0);
  EXPECT_EQ(as_rows(pairs), (std::vector<std::vector<int64_t>>{{0, 0, 3, 1}, {0, 1, 2, 0}}));
}

TEST(LabelPairs, BradleyTerryFrequenciesFollowSigmoid) {
  RatedCorpus c;
  c.aspects = {"a"};
  c.prompts = {"p"};
  c.responses = {"r0", "r1", "r2"};
  c.response_prompt = {0, 0, 0};
  c.ratings = {4, 3, 3};  // (0,1): diff 1; (1,2): tie, kept and drawn 50/50
  const std::vector<SimulatedUser> users = {user("u", {1})};
  for (double temperature : {0.5, 2.0}) {
    LabelOptions options;
    options.mode = LabelMode::kBradleyTerry;
    options.temperature = temperature;
    const int seeds = 4000;
    int first_wins = 0, tie_wins = 0;
    for (int seed = 0; seed < seeds; ++seed) {
      const auto pairs = label_pairs(c, users, options, static_cast<uint64_t>(seed));
      ASSERT_EQ(pairs.size(), 3u);
      EXPECT_EQ(std::min(pairs[0].chosen, pairs[0].rejected), 0);
      EXPECT_EQ(std::max(pairs[0].chosen, pairs[0].rejected), 1);
      first_wins += pairs[0].chosen == 0;
      tie_wins += pairs[2].chosen == 1;
    }
    const double p = 1.0 / (1.0 + std::exp(-1.0 / temperature));
    const double tolerance = 4 * std::sqrt(p * (1 - p) / seeds);
    EXPECT_NEAR(first_wins / double(seeds), p, tolerance) << "temperature " << temperature;
    EXPECT_NEAR(tie_wins / double(seeds), 0.5, 4 * std::sqrt(0.25 / seeds));
  }
  LabelOptions bad;
  bad.mode = LabelMode::kBradleyTerry;
  bad.temperature = 0;
  EXPECT_THROW(label_pairs(c, users, bad, 0), Error);
  EXPECT_THROW(label_pairs(c, {user("u", {0.5, 0.5})}, LabelOptions{}, 0), Error);
}

// ---- survey -------------------------------------------------------------------------------

// sum over users z of -log(n_z / U), n_z counted directly by comparing answer rows.
double reference_information(const std::vector<int8_t>& answers, int64_t U,
                             const std::vector<int64_t>& chosen) {
  double total = 0;
  for (int64_t z = 0; z < U; ++z) {
    int64_t n = 0;
    for (int64_t v = 0; v < U; ++v) {
      bool same = true;
      for (int64_t q : chosen)
        same = same && answers[q * U + z] == answers[q * U + v];
      n += same;
    }
    total -= std::log(static_cast<double>(n) / U);
  }
  return total;
}

TEST(SurveySelection, InfoGainGreedyOrderOnHandBuiltAnswers) {
  // 4 users. q0 says nothing; q1 and q3 split 2/2 (gain 4 ln 2 each, q1 wins the tie by index);
  // q2 splits 1/3 (ln 4 + 3 ln 4/3). After q1, q3 separates everyone (4 ln 4) while q2 gives
  // 2 ln 4 + 2 ln 2; then nothing adds information and the rest is random.
  const std::vector<int8_t> answers = {1, 1,  1,  1,   //
                                       1, 1,  -1, -1,  //
                                       1, -1, -1, -1,  //
                                       1, -1, 1,  -1};
  EXPECT_EQ(select_survey(answers, 4, 4, 2, SurveySelection::kInfoGain, 0),
            (std::vector<int64_t>{1, 3}));
  const auto three = select_survey(answers, 4, 4, 3, SurveySelection::kInfoGain, 5);
  ASSERT_EQ(three.size(), 3u);
  EXPECT_EQ(three[0], 1);
  EXPECT_EQ(three[1], 3);
  EXPECT_TRUE(three[2] == 0 || three[2] == 2);
  for (const auto& chosen : std::vector<std::vector<int64_t>>{{}, {1}, {2}, {1, 2}, {1, 3}}) {
    EXPECT_NEAR(survey_information(answers, 4, chosen), reference_information(answers, 4, chosen),
                1e-12);
  }
  EXPECT_NEAR(survey_information(answers, 4, {1, 3}), 4 * std::log(4.0), 1e-12);
  // 0 (unknown) is an answer of its own: q0 = [0, +1, -1] separates all three users.
  const std::vector<int8_t> with_unknown = {1, 1, -1, /**/ 0, 1, -1, /**/ 1, -1, -1};
  EXPECT_EQ(select_survey(with_unknown, 3, 3, 1, SurveySelection::kInfoGain, 0),
            (std::vector<int64_t>{1}));
}

TEST(SurveySelection, RandomSubsetIsSeededAndDistinct) {
  const int64_t Q = 50, U = 3;
  std::vector<int8_t> answers(Q * U, 1);
  const auto a = select_survey(answers, Q, U, 10, SurveySelection::kRandom, 1);
  ASSERT_EQ(a.size(), 10u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 10u);
  for (int64_t q : a)
    EXPECT_TRUE(q >= 0 && q < Q);
  EXPECT_EQ(select_survey(answers, Q, U, 10, SurveySelection::kRandom, 1), a);
  EXPECT_NE(select_survey(answers, Q, U, 10, SurveySelection::kRandom, 2), a);
  // All users alike: info_gain finds nothing and falls back to a random fill.
  EXPECT_EQ(select_survey(answers, Q, U, 10, SurveySelection::kInfoGain, 1).size(), 10u);
  // Fewer questions than the pool: all of them.
  EXPECT_EQ(select_survey(answers, Q, U, 60, SurveySelection::kRandom, 1).size(), 50u);
  EXPECT_THROW(select_survey(answers, Q + 1, U, 10, SurveySelection::kRandom, 1), Error);
  answers[4] = 2;
  EXPECT_THROW(select_survey(answers, Q, U, 10, SurveySelection::kRandom, 1), Error);
}

// ---- synthetic benchmark ------------------------------------------------------------------

std::vector<std::string> split_sentences(const std::string& response, bool as_list) {
  std::string text = response;
  if (!as_list) {
    // Prose: sentences end with "." or "!!" followed by a space.
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
      out += text[i];
      const bool end = (text[i] == '.' || (text[i] == '!' && i > 0 && text[i - 1] == '!'));
      if (end && i + 1 < text.size() && text[i + 1] == ' ') {
        out += '\n';
        ++i;
      }
    }
    text = out;
  }
  std::vector<std::string> sentences;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    sentences.push_back(line);
  return sentences;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string lower(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

TEST(SyntheticPrefs, FeatureCountsInTextMatchRatings) {
  SyntheticOptions options;
  options.prompts = 60;
  options.responses_per_prompt = 4;
  options.na_fraction = 0.1;
  options.seed = 3;
  const RatedCorpus c = make_synthetic_corpus(options);
  ASSERT_EQ(c.prompts.size(), 60u);
  ASSERT_EQ(c.responses.size(), 240u);
  EXPECT_EQ(c.aspects, ultrafeedback_aspects());
  EXPECT_EQ(c.source, "tailor-synthetic");
  // The spec's phrase lists, written out here independently of the generator.
  const std::vector<std::string> hedges = {"i believe", "probably,", "as far as i know,",
                                           "it seems that"};
  const std::vector<std::string> overconfident = {"definitely,", "without any doubt,",
                                                  "everyone knows that"};
  const std::set<std::string> filler = {"that is a common question", "there are many views on this",
                                        "this comes up a lot",       "people ask about this often",
                                        "it depends on many things", "there is a lot to say here"};
  int rated = 0, not_rated = 0;
  std::set<float> seen;
  for (int64_t r = 0; r < c.num_responses(); ++r) {
    const std::string& prompt = c.prompts[static_cast<size_t>(c.response_prompt[r])];
    const bool as_list = ends_with(prompt, " Answer as a list.");
    ASSERT_TRUE(as_list || ends_with(prompt, " Answer in prose.")) << prompt;
    std::istringstream words(prompt);
    EXPECT_LE(std::distance(std::istream_iterator<std::string>(words),
                            std::istream_iterator<std::string>()),
              15);
    const auto sentences = split_sentences(c.responses[r], as_list);
    ASSERT_EQ(sentences.size(), 5u) << c.responses[r];
    int informative = 0, hedged = 0, formatted = 0, truthful = 0;
    for (std::string s : sentences) {
      // instruction_following: the format marker.
      if (as_list) {
        formatted += test::starts_with(s, "- ");
        if (test::starts_with(s, "- ")) s = s.substr(2);
      } else {
        formatted += !test::starts_with(s, "* ");
        if (test::starts_with(s, "* ")) s = s.substr(2);
      }
      // truthfulness: "Capitalised ... ." vs "all lowercase ...!!".
      const bool dot = ends_with(s, ".");
      const bool bangs = ends_with(s, "!!");
      ASSERT_NE(dot, bangs) << s;
      if (dot) {
        EXPECT_TRUE(std::isupper(static_cast<unsigned char>(s[0]))) << s;
        ++truthful;
      } else {
        EXPECT_EQ(s, lower(s));
      }
      const std::string body = lower(s.substr(0, s.size() - (dot ? 1 : 2)));
      // honesty: a hedge or an overconfident opener, then the content.
      std::string content;
      for (const auto& h : hedges) {
        if (test::starts_with(body, h + " ")) {
          ++hedged;
          content = body.substr(h.size() + 1);
        }
      }
      for (const auto& o : overconfident) {
        if (test::starts_with(body, o + " ")) content = body.substr(o.size() + 1);
      }
      ASSERT_FALSE(content.empty()) << s;
      informative += filler.count(content) == 0;
    }
    const int counts[4] = {informative, hedged, formatted, truthful};
    for (int64_t a = 0; a < 4; ++a) {
      const float v = c.rating(r, a);
      if (std::isnan(v)) {
        ++not_rated;
        continue;
      }
      ++rated;
      seen.insert(v);
      EXPECT_EQ(counts[a], static_cast<int>(v)) << c.aspects[a] << " of: " << c.responses[r];
    }
    // Short enough for a small context: 5 short sentences, markers counted as words.
    std::istringstream response_words(c.responses[r]);
    EXPECT_LE(std::distance(std::istream_iterator<std::string>(response_words),
                            std::istream_iterator<std::string>()),
              60);
  }
  EXPECT_EQ(seen, (std::set<float>{1, 2, 3, 4, 5}));
  // na_fraction 0.1 of 960 ratings: ~96 N/A.
  EXPECT_GT(not_rated, 50);
  EXPECT_LT(not_rated, 150);
  EXPECT_EQ(rated + not_rated, 960);
}

TEST(SyntheticPrefs, DeterministicInSeed) {
  SyntheticOptions options;
  options.prompts = 20;
  options.seed = 9;
  const RatedCorpus a = make_synthetic_corpus(options);
  expect_same_corpus(make_synthetic_corpus(options), a);
  options.seed = 10;
  const RatedCorpus b = make_synthetic_corpus(options);
  EXPECT_NE(a.responses, b.responses);
  options.na_fraction = 0;
  for (float v : make_synthetic_corpus(options).ratings)
    EXPECT_TRUE(v >= 1 && v <= 5 && v == std::floor(v)) << v;
  options.prompts = 0;
  EXPECT_THROW(make_synthetic_corpus(options), Error);
}

TEST_F(PrefDataTest, SyntheticRoundTripThroughUltraFeedbackRawJsonl) {
  SyntheticOptions options;
  options.prompts = 15;
  options.responses_per_prompt = 3;
  options.na_fraction = 0.2;
  options.seed = 4;
  const RatedCorpus c = make_synthetic_corpus(options);
  const fs::path jsonl = dir_ / "synthetic.jsonl";
  write_ultrafeedback_raw_jsonl(jsonl, c);
  EXPECT_EQ(detect_preference_format(jsonl), PreferenceFormat::ultrafeedback_raw);
  RatedCorpus back = read_ultrafeedback_raw(jsonl);
  EXPECT_EQ(back.source, jsonl.string());
  back.source = c.source;
  expect_same_corpus(back, c);
  // Each line also names the generator as its source, as UltraFeedback rows do.
  std::ifstream in(jsonl);
  std::string first;
  std::getline(in, first);
  EXPECT_NE(first.find("\"source\":\"tailor-synthetic\""), std::string::npos);
  // Non-integer ratings (binarized scores) have no raw representation.
  EXPECT_THROW(
      write_ultrafeedback_raw_jsonl(
          dir_ / "x.jsonl", read_ultrafeedback_binarized(ultrafeedback_fixture("binarized.jsonl"))),
      Error);
}

}  // namespace
}  // namespace tailor::data
