// The elicit stage end to end (stages/elicit/): `tailor run` on a tiny random GPT-2 backbone and
// a pool of candidates built so that the user's oracle is easy to recompute here (shorter_length:
// fewer words). Checked against values computed in this test, not by the stage:
//   - every answer in answers.jsonl is the one the user's preference gives (word counts here);
//   - the profile's posterior mean is the mean of the samples in posterior.safetensors projected
//     onto the span of the answered pairs' hidden-feature differences (recomputed here in
//     float64 from the exported backbone and layer; projected by a pseudo-inverse), and its
//     reward model id is the export's, which loads and scores;
//   - the same seed gives the same answers; summary.json holds every user, selector and K;
//   - bad recipes are errors naming the key, with nothing written.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "judges/reward_judge.h"
#include "models/io/multi_reward_export.h"
#include "models/io/safetensors.h"
#include "models/tokenizer/tokenizer.h"
#include "reward_test_support.h"
#include "stages/elicit/elicit_session.h"
#include "test_support.h"
#include "train/features/response_features.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace tailor {
namespace {

int64_t words(const std::string& s) {
  std::istringstream in(s);
  int64_t n = 0;
  for (std::string w; in >> w;)
    ++n;
  return n;
}

// 12 prompts, each with 6 candidates of 1..6 words ("cats are small and very soft"), so the
// shorter_length user never ties.
fs::path write_pool(const fs::path& dir) {
  const std::vector<std::string> words_of = {"cats", "are", "small", "and", "very", "soft"};
  std::string text;
  for (int p = 0; p < 12; ++p) {
    json line = {{"prompt", "Tell me about animal " + std::to_string(p) + "."},
                 {"completions", json::array()}};
    for (int n = 1; n <= 6; ++n) {
      std::string c;
      for (int i = 0; i < n; ++i)
        c += " " + words_of[(i + p) % 6];
      line["completions"].push_back(c);
    }
    text += line.dump() + "\n";
  }
  write_file_atomic(dir / "pool.jsonl", text);
  return dir / "pool.jsonl";
}

std::string recipe_text(const fs::path& dir, const std::string& extra = "") {
  return "stage: elicit\n"
         "seed: 3\n"
         "output_dir: " +
         (dir / "run").string() +
         "\n"
         "tokenizer: assets/tokenizers/gpt2\n"
         "model: {init: random, preset: gpt2-tiny, n_layer: 1, n_embd: 32, n_head: 2}\n"
         "users:\n"
         "  brief: {shorter_length: 1.0}\n"
         "  wordy: {shorter_length: -1.0}\n"
         "data: {source: pool, path: " +
         (dir / "pool.jsonl").string() +
         ", max_length: 32, eval_fraction: 0.25}\n"
         "reward: {oracles: [new_lines, short_words, readability], hidden_dim: 16, "
         "pairs_per_prompt: 15}\n"
         "optimizer: {lr: 1.0e-2}\n"
         "train: {max_steps: 30, batch_size: 16, log_every: 10}\n"
         "elicit: {selector: [info_gain, random], questions: [3, 6], samples: 20, "
         "estimate_samples: 50, burn_in: 100, thinning: 5}\n" +
         extra;
}

json read_json(const fs::path& file) {
  return json::parse(read_file(file));
}

TEST(ElicitStage, AsksEachUserAndRecordsAnswersTheUserWouldGive) {
  testing::InRepo in_repo;
  const fs::path dir = fs::temp_directory_path() / "tailor_elicit_stage";
  fs::remove_all(dir);
  fs::create_directories(dir);
  write_pool(dir);
  write_file_atomic(dir / "recipe.yaml", recipe_text(dir));
  ASSERT_EQ(cli::run_command({"tailor run", (dir / "recipe.yaml").string()}), 0);

  const json summary = read_json(dir / "run" / "summary.json");
  EXPECT_EQ(summary.at("questions"), json({3, 6}));
  const std::string id = multi_reward_export_id(dir / "run" / "export");
  EXPECT_EQ(summary.at("reward_model").at("id"), id);
  // h(x, y), the exported hidden layer on the standardised backbone features, in float64 loops.
  MultiRewardExport loaded = load_multi_reward_export(dir / "run" / "export");
  const auto& m = *loaded.model;
  const at::Tensor W = m.hidden_layer->weight.to(at::kDouble),
                   b = m.hidden_layer->bias.to(at::kDouble);
  const at::Tensor feature_mean = m.feature_mean.to(at::kDouble),
                   feature_scale = m.feature_scale.to(at::kDouble);
  auto hidden_of = [&](const std::vector<std::string>& prompts,
                       const std::vector<std::string>& texts) {
    std::ostringstream quiet;
    const at::Tensor f =
        response_features(*loaded.backbone, Tokenizer::from_dir("assets/tokenizers/gpt2"),
                          PromptTemplate::kPlain, 32, prompts, texts, {}, quiet)
            .to(at::kDouble);
    at::Tensor h = at::zeros({f.size(0), W.size(0)}, at::kDouble);
    for (int64_t n = 0; n < f.size(0); ++n)
      for (int64_t j = 0; j < W.size(0); ++j) {
        double v = b[j].item<double>();
        for (int64_t i = 0; i < W.size(1); ++i)
          v += W[j][i].item<double>() * (f[n][i].item<double>() - feature_mean[i].item<double>()) /
               feature_scale[i].item<double>();
        h[n][j] = v;
      }
    return h;
  };
  for (const std::string user : {"brief", "wordy"}) {
    SCOPED_TRACE(user);
    const auto& u = summary.at("users").at(user);
    EXPECT_TRUE(u.at("default_accuracy").is_number());
    for (const std::string selector : {"info_gain", "random"}) {
      SCOPED_TRACE(selector);
      const fs::path at = dir / "run" / "users" / user / selector;
      const auto& s = u.at("selectors").at(selector);
      EXPECT_EQ(s.at("curve").size(), 7u);  // after 0..6 answers
      EXPECT_EQ(s.at("accuracy").at("3"), s.at("curve").at(3));
      EXPECT_EQ(s.at("accuracy").at("6"), s.at("curve").at(6));

      // Each answer is the user's: brief prefers fewer words (answer 1 = the first), wordy more.
      std::istringstream lines(read_file(at / "answers.jsonl"));
      int64_t n = 0;
      std::vector<std::string> prompts, firsts, seconds;
      for (std::string line; std::getline(lines, line);) {
        const json a = json::parse(line);
        EXPECT_EQ(a.at("question"), ++n);
        prompts.push_back(a.at("prompt"));
        firsts.push_back(a.at("first"));
        seconds.push_back(a.at("second"));
        const int64_t first = words(a.at("first")), second = words(a.at("second"));
        ASSERT_NE(first, second);
        const bool first_shorter = first < second;
        EXPECT_EQ(a.at("answer"), (first_shorter == (user == "brief")) ? 1 : 2) << line;
      }
      EXPECT_EQ(n, 6);

      // The profile: its mean is the E = 50 samples' mean projected onto the span of the six
      // answered pairs' differences (P = pinv(D) D), and it names this reward model.
      const json profile = read_json(at / "profile.json");
      EXPECT_EQ(profile.at("reward_model_id"), id);
      EXPECT_EQ(profile.at("answers"), 6);
      const at::Tensor samples =
          safetensors::load(at / "posterior.safetensors").at("samples").to(at::kDouble);
      ASSERT_EQ(samples.size(0), 50);
      ASSERT_EQ(samples.size(1), 16);
      const at::Tensor D = hidden_of(prompts, firsts) - hidden_of(prompts, seconds);
      const at::Tensor projected =
          at::matmul(at::pinverse(D), at::matmul(D, samples.mean(0))).contiguous();
      const auto mean = profile.at("posterior_mean").get<std::vector<double>>();
      // The tool's differences come from float32 features and layer: 1e-5 relative to |mean|.
      const double tolerance = 1e-5 * (projected.norm().item<double>() + 1e-3);
      for (int64_t j = 0; j < 16; ++j)
        EXPECT_NEAR(mean[j], projected[j].item<double>(), tolerance) << j;
      // Six answers leave ten directions open: the projection does drop the samples' mean there.
      EXPECT_GT((samples.mean(0) - projected).norm().item<double>(), 100 * tolerance);
    }
  }
  // The exported model loads, and `tailor score --profile` scores with the user's embedding:
  // w . h(x, y), h recomputed here in float64 loops from the backbone's features and the
  // exported weights.
  EXPECT_EQ(loaded.model->config().heads,
            (std::vector<std::string>{"new_lines", "short_words", "readability"}));
  const fs::path profile = dir / "run/users/brief/info_gain/profile.json";
  const std::vector<double> w = read_json(profile).at("posterior_mean").get<std::vector<double>>();
  const std::vector<std::string> prompts = {"Tell me about animal 1.", "Tell me about animal 1."};
  const std::vector<std::string> texts = {" are", " are small and very soft cats"};
  write_file_atomic(
      dir / "score.jsonl",
      json({{"prompt", prompts[0]}, {"response", texts[0]}}).dump() + "\n" +
          json({{"prompt", prompts[0]}, {"chosen", texts[0]}, {"rejected", texts[1]}}).dump() +
          "\n");
  ASSERT_EQ(
      cli::score_command({"tailor score", "--model", (dir / "run/export").string(), "--profile",
                          profile.string(), "--input", (dir / "score.jsonl").string(), "--output",
                          (dir / "scored.jsonl").string()}),
      0);
  const at::Tensor h = hidden_of(prompts, texts);
  std::vector<double> expected;
  for (int64_t n = 0; n < 2; ++n) {
    double r = 0;
    for (int64_t j = 0; j < h.size(1); ++j)
      r += w[j] * h[n][j].item<double>();
    expected.push_back(r);
  }
  std::istringstream scored(read_file(dir / "scored.jsonl"));
  std::string first, second;
  std::getline(scored, first);
  std::getline(scored, second);
  // float32 features and hidden layer in the tool against float64 here: |r| is O(1), so 1e-4.
  EXPECT_NEAR(json::parse(first).at("reward").get<double>(), expected[0], 1e-4);
  EXPECT_NEAR(json::parse(second).at("margin").get<double>(), expected[0] - expected[1], 1e-4);
  // A profile whose reward model id is not this export's is refused, naming the profile.
  json other = read_json(profile);
  other["reward_model_id"] = "0123456789abcdef";
  write_file_atomic(dir / "other_profile.json", other.dump());
  const std::string e = test::error_of([&] {
    cli::score_command({"tailor score", "--model", (dir / "run/export").string(), "--profile",
                        (dir / "other_profile.json").string(), "--input",
                        (dir / "score.jsonl").string()});
  });
  EXPECT_NE(e.find("other_profile.json: this profile was made with reward model 0123456789abcdef"),
            std::string::npos)
      << e;

  // The profile as a dpo judge (reward_users: {brief: {profile: FILE}}): the export comes from
  // the profile, and its rewards are the float64 ones above.
  {
    const std::string key = "reward_users.brief";
    const auto spec = judges::reward_judge_spec({{"profile", profile.string()}}, key);
    EXPECT_EQ(judges::check_reward_judge_inputs(spec, key), judges::RewardExportKind::kProfile);
    auto judges = judges::make_reward_judges({spec}, {key});
    const std::vector<double> r =
        judges[0]->rewards({{prompts[0], texts[0]}, {prompts[1], texts[1]}});
    EXPECT_NEAR(r[0], expected[0], 1e-4);
    EXPECT_NEAR(r[1], expected[1], 1e-4);
    EXPECT_EQ(judges[0]->compare({{prompts[0], texts[0], texts[1]}}),
              std::vector<int>{expected[0] > expected[1] ? 1 : -1});
    EXPECT_NE(judges[0]->description().find("profile.json (twenty_questions, 6 answers)"),
              std::string::npos)
        << judges[0]->description();
    // Another model's profile, and a context with a profile, are refused naming the key.
    const std::string other_error = test::error_of([&] {
      judges::make_reward_judges(
          {judges::reward_judge_spec({{"profile", (dir / "other_profile.json").string()}}, key)},
          {key});
    });
    EXPECT_NE(other_error.find("reward_users.brief.profile: "), std::string::npos) << other_error;
    EXPECT_NE(other_error.find("0123456789abcdef"), std::string::npos) << other_error;
    const std::string context_error = test::error_of([&] {
      judges::check_reward_judge_inputs(
          judges::reward_judge_spec({{"profile", profile.string()}, {"context", "x.jsonl"}}, key),
          key);
    });
    EXPECT_NE(context_error.find("reward_users.brief.context: a profile is the user's whole"),
              std::string::npos)
        << context_error;
  }

  // The same seed asks the same questions and gets the same answers.
  const std::string answers = read_file(dir / "run/users/brief/info_gain/answers.jsonl");
  write_file_atomic(dir / "again.yaml",
                    recipe_text(dir) + "cache_dir: " + (dir / "run" / "cache").string() + "\n");
  ASSERT_EQ(cli::run_command({"tailor run", (dir / "again.yaml").string(),
                              "output_dir=" + (dir / "run2").string()}),
            0);
  EXPECT_EQ(read_file(dir / "run2/users/brief/info_gain/answers.jsonl"), answers);
  fs::remove_all(dir);
}

// PReF on the same pool: 40 simulated training users over the three oracles, a rank-3
// factorisation, then brief, wordy and two simulated new users, active vs random.
TEST(ElicitStage, PrefFactorisesTrainingUsersAndFitsEachNewUser) {
  testing::InRepo in_repo;
  const fs::path dir = fs::temp_directory_path() / "tailor_elicit_pref";
  fs::remove_all(dir);
  fs::create_directories(dir);
  write_pool(dir);
  write_file_atomic(dir / "recipe.yaml",
                    recipe_text(dir) +
                        "pref: {rank: 3, training_users: 40, answers_per_user: 60, "
                        "dev_answers_per_user: 20, new_users: 2}\n");
  ASSERT_EQ(cli::run_command({"tailor run", (dir / "recipe.yaml").string(), "elicit.method=pref",
                              "elicit.selector=[active, random]"}),
            0);
  const json summary = read_json(dir / "run" / "summary.json");
  EXPECT_EQ(summary.at("method"), "pref");
  EXPECT_EQ(summary.at("metric"), "auc");
  const auto& factorisation = summary.at("reward_model").at("factorisation");
  EXPECT_EQ(factorisation.at("training_users"), 40);
  EXPECT_EQ(factorisation.at("singular_values").size(), 3u);
  // Each new user, each selector: the AUC at every K is the curve's, and in [0, 1] by
  // construction, so what is checked is the answers and the profile.
  for (const std::string user : {"brief", "wordy", "simulated_01", "simulated_02"}) {
    SCOPED_TRACE(user);
    const auto& u = summary.at("users").at(user);
    EXPECT_TRUE(u.at("default_auc").is_number());
    for (const std::string selector : {"active", "random"}) {
      const auto& s = u.at("selectors").at(selector);
      EXPECT_EQ(s.at("auc").at("6"), s.at("curve").at(6));
      EXPECT_EQ(s.at("curve").at(0), 0.5) << "lambda = 0 before any answer scores every pair 0";
      const json profile = read_json(dir / "run/users" / user / selector / "profile.json");
      EXPECT_EQ(profile.at("method"), "pref");
      EXPECT_EQ(profile.at("lambda").size(), 3u);
      EXPECT_EQ(profile.at("hessian").size(), 9u);
      EXPECT_FALSE(fs::exists(dir / "run/users" / user / selector / "posterior.safetensors"));
    }
  }
  for (const std::string user : {"brief", "wordy"}) {
    std::istringstream lines(read_file(dir / "run/users" / user / "active/answers.jsonl"));
    int64_t n = 0;
    for (std::string line; std::getline(lines, line); ++n) {
      const json a = json::parse(line);
      EXPECT_EQ(a.at("selector"), "active");
      const bool first_shorter = words(a.at("first")) < words(a.at("second"));
      EXPECT_EQ(a.at("answer"), (first_shorter == (user == "brief")) ? 1 : 2) << line;
    }
    EXPECT_EQ(n, 6);
  }
  const auto& means = summary.at("selector_means");
  EXPECT_EQ(means.at("users"), 4);
  EXPECT_EQ(means.at("mean_curve").at("active").size(), 7u);
  EXPECT_EQ(means.at("random_answers_to_match").at("selector"), "active");

  // score --profile with a PReF profile: lambda . phi(x, y), phi = W^T standardised features
  // recomputed here in float64 from the export.
  const fs::path profile = dir / "run/users/brief/active/profile.json";
  const std::vector<double> lambda = read_json(profile).at("lambda").get<std::vector<double>>();
  write_file_atomic(
      dir / "score.jsonl",
      json({{"prompt", "Tell me about animal 1."}, {"response", " are small"}}).dump() + "\n");
  ASSERT_EQ(
      cli::score_command({"tailor score", "--model", (dir / "run/export").string(), "--profile",
                          profile.string(), "--input", (dir / "score.jsonl").string(), "--output",
                          (dir / "scored.jsonl").string()}),
      0);
  MultiRewardExport loaded = load_multi_reward_export(dir / "run" / "export");
  ASSERT_EQ(loaded.model->config().hidden_dim, 3);
  std::ostringstream quiet;
  const at::Tensor f =
      response_features(*loaded.backbone, Tokenizer::from_dir("assets/tokenizers/gpt2"),
                        PromptTemplate::kPlain, 32, {"Tell me about animal 1."}, {" are small"}, {},
                        quiet)
          .to(at::kDouble);
  const auto& m = *loaded.model;
  double expected = 0;
  for (int64_t j = 0; j < 3; ++j) {
    double phi = m.hidden_layer->bias[j].item<double>();
    for (int64_t i = 0; i < f.size(1); ++i)
      phi += m.hidden_layer->weight[j][i].item<double>() *
             (f[0][i].item<double>() - m.feature_mean[i].item<double>()) /
             m.feature_scale[i].item<double>();
    expected += lambda[j] * phi;
  }
  EXPECT_NEAR(json::parse(read_file(dir / "scored.jsonl")).at("reward").get<double>(), expected,
              1e-4);

  // `tailor elicit` on the finished run: brief's answers are all there, so nothing is asked, and
  // the profile it writes from them holds the same lambda.
  const std::string stage_profile = read_file(profile);
  fs::remove(profile);
  ASSERT_EQ(cli::elicit_command({"tailor elicit", "--recipe", (dir / "recipe.yaml").string(),
                                 "--user", "brief", "--selector", "active", "elicit.method=pref",
                                 "elicit.selector=[active, random]"}),
            0);
  EXPECT_EQ(read_json(profile).at("lambda"), json::parse(stage_profile).at("lambda"));
  EXPECT_NE(test::error_of([&] {
              cli::elicit_command({"tailor elicit", "--recipe", (dir / "recipe.yaml").string(),
                                   "--user", "brief", "--selector", "info_gain",
                                   "elicit.method=pref", "elicit.selector=[active, random]"});
            }).find("--selector: unknown selector 'info_gain' for method pref"),
            std::string::npos);

  // PReF's selectors only: info_gain is 20 Questions'.
  const std::string e = test::error_of([&] {
    cli::run_command({"tailor run", (dir / "recipe.yaml").string(), "elicit.method=pref",
                      "output_dir=" + (dir / "bad").string()});
  });
  EXPECT_NE(e.find("elicit.selector: unknown selector 'info_gain' for method pref; expected "
                   "active | random"),
            std::string::npos)
      << e;
  EXPECT_FALSE(fs::exists(dir / "bad"));
  fs::remove_all(dir);
}

// recipes/elicit_20q_uf.yaml as shipped, on an UltraFeedback-shaped pool (raw lines:
// "instruction", completions as {"response", "annotations"} objects), with only the model and
// the sizes overridden: every question's pair is two of that instruction's responses.
TEST(ElicitStage, TheUltraFeedbackRecipeReadsRawUltraFeedbackLines) {
  testing::InRepo in_repo;
  const fs::path dir = fs::temp_directory_path() / "tailor_elicit_uf";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string text;
  std::map<std::string, std::vector<std::string>> responses;
  for (int p = 0; p < 12; ++p) {
    const std::string instruction = "Describe bird number " + std::to_string(p) + ".";
    json line = {{"source", "test"}, {"instruction", instruction}, {"completions", json::array()}};
    for (int n = 1; n <= 4; ++n) {
      // Distinct lengths and adverb shares, so none of the three test oracles ties.
      std::string r = " It flies";
      for (int i = 1; i < n; ++i)
        r += " very quickly";
      r += p % 2 ? "." : "!";
      responses[instruction].push_back(r);
      line["completions"].push_back(
          {{"model", "m" + std::to_string(n)}, {"response", r}, {"annotations", json::object()}});
    }
    text += line.dump() + "\n";
  }
  write_file_atomic(dir / "uf.jsonl", text);
  ASSERT_EQ(
      cli::run_command(
          {"tailor run", "recipes/elicit_20q_uf.yaml", "output_dir=" + (dir / "run").string(),
           "data.path=" + (dir / "uf.jsonl").string(), "tokenizer=assets/tokenizers/gpt2",
           "model.init=random", "model.preset=gpt2-tiny", "model.n_layer=1", "model.n_embd=32",
           "model.n_head=2", "data.max_length=32", "train.max_steps=5", "train.eval_every=0",
           "train.checkpoint_every=0", "elicit.questions=[3]", "elicit.samples=10",
           "elicit.burn_in=20", "elicit.thinning=2", "elicit.selector=[info_gain]"}),
      0);
  for (const std::string user : {"length", "lowercase", "adjectives"}) {
    std::istringstream lines(read_file(dir / "run/users" / user / "info_gain/answers.jsonl"));
    int64_t n = 0;
    for (std::string line; std::getline(lines, line); ++n) {
      const json a = json::parse(line);
      ASSERT_TRUE(responses.count(a.at("prompt"))) << line;
      const auto& r = responses.at(a.at("prompt"));
      EXPECT_NE(std::find(r.begin(), r.end(), a.at("first").get<std::string>()), r.end());
      EXPECT_NE(std::find(r.begin(), r.end(), a.at("second").get<std::string>()), r.end());
    }
    EXPECT_EQ(n, 3) << user;
  }
  fs::remove_all(dir);
}

// PReF's AUC, by hand: signed margins {2, 1, -1, 0} are positives {2, 1, -1, 0} and negatives
// {-2, -1, 1, 0}; of the 16 (positive, negative) pairs the positive wins 4 + 3 + 1 + 2 = 10 and
// ties 0 + 1 + 1 + 1 = 3, so AUC = (10 + 3 / 2) / 16.
TEST(ElicitAuc, SignedMarginsByHandAndPairsInEitherOrder) {
  EXPECT_DOUBLE_EQ(signed_margin_auc({2, 1, -1, 0}), 11.5 / 16);
  EXPECT_DOUBLE_EQ(signed_margin_auc({0, 0, 0}), 0.5);
  EXPECT_DOUBLE_EQ(signed_margin_auc({0.1, 3}), 1.0);
  // h rows 0..3 in d = 1, w = 1: margins h_a - h_b; a pair listed the other way round with the
  // opposite label is the same question and gives the same AUC.
  const Embeddings h{1, {0.0, 1.0, 3.0, 2.0}};
  const std::vector<RowPair> pairs = {{1, 0, 1}, {2, 1, -1}, {3, 2, 1}};  // margins 1, 2, -1
  EXPECT_DOUBLE_EQ(pair_auc(h, {1.0}, pairs), signed_margin_auc({1, -2, -1}));
  const std::vector<RowPair> swapped = {{0, 1, -1}, {1, 2, 1}, {2, 3, -1}};
  EXPECT_DOUBLE_EQ(pair_auc(h, {1.0}, swapped), pair_auc(h, {1.0}, pairs));
}

TEST(ElicitStage, BadRecipesNameTheKeyAndWriteNothing) {
  testing::InRepo in_repo;
  const fs::path dir = fs::temp_directory_path() / "tailor_elicit_stage_errors";
  fs::remove_all(dir);
  fs::create_directories(dir);
  write_pool(dir);
  write_file_atomic(dir / "recipe.yaml", recipe_text(dir));
  auto run_error = [&](const std::string& override_) {
    return test::error_of([&] {
      cli::run_command({"tailor run", (dir / "recipe.yaml").string(), override_});
    });
  };
  std::string e = run_error("elicit.method=twenty_answers");
  EXPECT_NE(e.find("elicit.method"), std::string::npos) << e;
  EXPECT_NE(e.find("twenty_questions"), std::string::npos) << e;
  e = run_error("elicit.selector=[info_gain, best]");
  EXPECT_NE(e.find("elicit.selector: unknown selector 'best'"), std::string::npos) << e;
  // 12 prompts, 3 held out: 9 questions at most.
  e = run_error("elicit.questions=[5, 10]");
  EXPECT_NE(e.find("elicit.questions: 10 questions need as many prompts"), std::string::npos) << e;
  EXPECT_NE(e.find("has 12 prompts, 9 of them outside the held-out share"), std::string::npos) << e;
  e = run_error("users={}");
  EXPECT_NE(e.find("users"), std::string::npos) << e;
  e = run_error("reward.oracles=[new_lines, lowercaps]");
  EXPECT_NE(e.find("reward.oracles"), std::string::npos) << e;
  e = run_error("elicit.estimate_samples=10");  // the recipe's samples: 20
  EXPECT_NE(e.find("elicit.estimate_samples: must be >= elicit.samples (20), got 10"),
            std::string::npos)
      << e;
  EXPECT_FALSE(fs::exists(dir / "run")) << "nothing may be written for a bad recipe";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tailor
