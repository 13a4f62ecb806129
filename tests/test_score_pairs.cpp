// `tailor score` on preference pairs with a causal LM: {"prompt", "chosen", "rejected"} lines get
// each response's summed log-probability, closing EOS included (the sequences the DPO stage trains
// on), checked against the independent float64 GPT-2 of tests/gpt2_reference.h on ids built here
// from the tokenizer; and --template mistral_instruct wraps prompts as the recipes' data.template.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "gpt2_reference.h"
#include "models/gpt2/gpt2.h"
#include "models/io/hf_checkpoint.h"
#include "models/tokenizer/tokenizer.h"
#include "test_support.h"

namespace fs = std::filesystem;
using tailor::GPT2Config;
using tailor::TensorMap;

namespace {

// A random GPT-2 in Hugging Face layout under dir/model, float32 on disk; returns the weights as
// the file holds them.
TensorMap write_model(const fs::path& dir, const GPT2Config& config, uint64_t seed) {
  TensorMap weights;
  for (const auto& [name, t] : tailor::reference::random_hf_weights(config, seed))
    weights[name] = t.to(at::kFloat);
  tailor::hf::save_state_dict(dir / "model", weights, 5'000'000'000ULL);
  tailor::write_file_atomic(dir / "model" / "config.json", config.to_json().dump(2));
  return weights;
}

std::vector<int64_t> widen(const std::vector<int32_t>& ids) {
  return std::vector<int64_t>(ids.begin(), ids.end());
}

// Summed float64 log-probability of ids[P..] given their prefixes under the reference GPT-2.
double reference_logp(const GPT2Config& config, const TensorMap& weights,
                      const std::vector<int64_t>& prompt, const std::vector<int64_t>& response) {
  std::vector<int64_t> ids = prompt;
  ids.insert(ids.end(), response.begin(), response.end());
  const int64_t T = static_cast<int64_t>(ids.size()), V = config.vocab_size;
  const int64_t P = static_cast<int64_t>(prompt.size());
  const auto logp = tailor::reference::log_softmax_rows(
      tailor::reference::gpt2_logits(config, weights, ids, 1, T), V);
  double sum = 0;
  for (int64_t t = P - 1; t + 1 < T; ++t)  // position t predicts token t + 1
    sum += logp[t * V + ids[t + 1]];
  return sum;
}

struct Pair {
  std::string prompt, chosen, rejected;
};

std::string pairs_jsonl(const std::vector<Pair>& pairs) {
  std::ostringstream s;
  for (const auto& p : pairs)
    s << nlohmann::json{{"prompt", p.prompt}, {"chosen", p.chosen}, {"rejected", p.rejected}}.dump()
      << "\n";
  return s.str();
}

void expect_near_reference(double got, double expected, const std::string& what) {
  EXPECT_LE(std::abs(got - expected), 1e-4 * std::max(1.0, std::abs(expected)))
      << what << ": tailor " << got << " vs float64 reference " << expected;
}

const std::vector<Pair> kPairs = {
    {"The capital of France is", " Paris, of course.", " Berlin, I think."},
    {"Q: What is two plus two?\nA:", " Four.", " Five, or maybe twenty-two."},
    {"Write a greeting.", " Hello there, friend!", " Go away."},
};

}  // namespace

// Each pair's chosen / rejected log-probs equal the float64 reference's on prompt ++ response ++
// EOS, summed over the response and EOS positions; margin is their difference and the token
// counts are len(response) + 1. Results do not depend on the other lines of the file.
TEST(ScorePairsCli, LogProbsMatchFloat64ReferenceWithClosingEos) {
  GPT2Config config;
  config.n_layer = 2;
  config.n_head = 2;
  config.n_embd = 8;
  config.vocab_size = 50257;  // the real GPT-2 tokenizer encodes the texts
  config.n_positions = 48;
  const fs::path dir = tailor::test::fresh_dir("score_pairs_gpt2");
  const TensorMap weights = write_model(dir, config, 31);
  const std::string gpt2_tokenizer = std::string(TAILOR_SOURCE_DIR) + "/assets/tokenizers/gpt2";
  const auto tokenizer = tailor::Tokenizer::from_dir(gpt2_tokenizer);
  const int64_t eos = tokenizer.eos_id();
  ASSERT_EQ(eos, 50256);

  tailor::write_file_atomic(dir / "in.jsonl", pairs_jsonl(kPairs));
  const std::string command = std::string(TAILOR_BINARY) + " score --per-token --model " +
                              (dir / "model").string() + " --tokenizer " + gpt2_tokenizer;
  const auto r = tailor::test::run_command(command + " --input " + (dir / "in.jsonl").string());
  ASSERT_EQ(r.status, 0) << r.output;
  const auto lines = tailor::test::parse_lines(r.output);
  ASSERT_EQ(lines.size(), kPairs.size()) << r.output;

  for (size_t i = 0; i < kPairs.size(); ++i) {
    // GPT-2 with the plain template: the texts' BPE ids as they are, no special tokens.
    const auto prompt = widen(tokenizer.encode(kPairs[i].prompt));
    auto chosen = widen(tokenizer.encode(kPairs[i].chosen));
    auto rejected = widen(tokenizer.encode(kPairs[i].rejected));
    chosen.push_back(eos);
    rejected.push_back(eos);
    const auto& j = lines[i];
    const std::string at = "pair " + std::to_string(i);
    EXPECT_EQ(j.at("tokens_chosen").get<int64_t>(), static_cast<int64_t>(chosen.size())) << at;
    EXPECT_EQ(j.at("tokens_rejected").get<int64_t>(), static_cast<int64_t>(rejected.size())) << at;
    const double lc = j.at("chosen").get<double>(), lr = j.at("rejected").get<double>();
    expect_near_reference(lc, reference_logp(config, weights, prompt, chosen), at + " chosen");
    expect_near_reference(lr, reference_logp(config, weights, prompt, rejected), at + " rejected");
    EXPECT_LT(lc, 0) << at;
    EXPECT_NEAR(j.at("margin").get<double>(), lc - lr, 1e-12 * std::max(1.0, std::abs(lc))) << at;

    // --per-token: one float32 log-prob per scored token, the last being the EOS's, summing to
    // the total.
    for (const auto& [key, ids] :
         {std::pair<std::string, const std::vector<int64_t>*>{"chosen", &chosen},
          {"rejected", &rejected}}) {
      const auto per_token = j.at("log_probs_" + key).get<std::vector<double>>();
      ASSERT_EQ(per_token.size(), ids->size()) << at << " " << key;
      double sum = 0;
      for (double lp : per_token)
        sum += lp;
      EXPECT_NEAR(sum, j.at(key).get<double>(), 1e-9 * std::max(1.0, std::abs(sum)))
          << at << " " << key;
      std::vector<int64_t> without_eos = prompt;
      without_eos.insert(without_eos.end(), ids->begin(), ids->end() - 1);
      const int64_t T = static_cast<int64_t>(without_eos.size()) + 1, V = config.vocab_size;
      const auto logp = tailor::reference::log_softmax_rows(
          tailor::reference::gpt2_logits(config, weights, without_eos, 1, T - 1), V);
      expect_near_reference(per_token.back(), logp[(T - 2) * V + eos], at + " " + key + " EOS");
    }
  }

  // Independent of batching: the pairs in another order, between other lines, score the same.
  std::ostringstream mixed;
  mixed << "{\"text\": \"Some unrelated text.\"}\n"
        << pairs_jsonl({kPairs[2]}) << "{\"ids\": [1, 2, 3]}\n"
        << pairs_jsonl({kPairs[0], kPairs[1]});
  tailor::write_file_atomic(dir / "mixed.jsonl", mixed.str());
  const auto m = tailor::test::run_command(command + " --input " + (dir / "mixed.jsonl").string());
  ASSERT_EQ(m.status, 0) << m.output;
  const auto mixed_lines = tailor::test::parse_lines(m.output);
  ASSERT_EQ(mixed_lines.size(), 5u) << m.output;
  EXPECT_EQ(mixed_lines[1], lines[2]);
  EXPECT_EQ(mixed_lines[3], lines[0]);
  EXPECT_EQ(mixed_lines[4], lines[1]);
  EXPECT_TRUE(mixed_lines[0].contains("nll"));
  fs::remove_all(dir);
}

// --template mistral_instruct scores "<s>[INST] prompt [/INST]" ++ response ++ </s> (Mistral's
// tokenizer, a tiny GPT-2 with its vocabulary); the default plain template scores "<s>prompt".
TEST(ScorePairsCli, MistralInstructTemplateWrapsPrompts) {
  GPT2Config config;
  config.n_layer = 1;
  config.n_head = 2;
  config.n_embd = 8;
  config.vocab_size = 32000;  // Mistral-7B v0.1's vocabulary
  config.n_positions = 64;
  const fs::path dir = tailor::test::fresh_dir("score_pairs_mistral_instruct");
  const TensorMap weights = write_model(dir, config, 41);
  const std::string mistral_tokenizer =
      std::string(TAILOR_SOURCE_DIR) + "/assets/tokenizers/mistral";
  const auto tokenizer = tailor::Tokenizer::from_dir(mistral_tokenizer);
  const int64_t eos = tokenizer.eos_id();
  ASSERT_EQ(eos, 2);

  const Pair pair = kPairs[0];
  std::string input = pairs_jsonl({pair});
  input += nlohmann::json{{"prompt", pair.prompt}, {"response", pair.chosen}}.dump() + "\n";
  tailor::write_file_atomic(dir / "in.jsonl", input);
  const std::string command = std::string(TAILOR_BINARY) + " score --model " +
                              (dir / "model").string() + " --tokenizer " + mistral_tokenizer +
                              " --input " + (dir / "in.jsonl").string();
  const auto instruct = tailor::test::run_command(command + " --template mistral_instruct");
  const auto plain = tailor::test::run_command(command);
  ASSERT_EQ(instruct.status, 0) << instruct.output;
  ASSERT_EQ(plain.status, 0) << plain.output;
  const auto instruct_lines = tailor::test::parse_lines(instruct.output);
  const auto plain_lines = tailor::test::parse_lines(plain.output);
  ASSERT_EQ(instruct_lines.size(), 2u) << instruct.output;
  ASSERT_EQ(plain_lines.size(), 2u) << plain.output;

  // Ids built here: Mistral-7B-Instruct's one-turn chat template, <s> from the post-processor;
  // each response encoded on its own (its leading space is the "▁" word marker) then </s>.
  const auto instruct_prompt =
      widen(tokenizer.encode_hf("[INST] " + pair.prompt + " [/INST]", true));
  const auto plain_prompt = widen(tokenizer.encode_hf(pair.prompt, true));
  ASSERT_EQ(instruct_prompt.front(), 1);
  ASSERT_EQ(plain_prompt.front(), 1);
  ASSERT_GT(instruct_prompt.size(), plain_prompt.size());
  auto chosen = widen(tokenizer.encode(pair.chosen.substr(1)));
  auto rejected = widen(tokenizer.encode(pair.rejected.substr(1)));
  const auto response_only = chosen;
  chosen.push_back(eos);
  rejected.push_back(eos);

  for (const auto& [name, lines, prompt] :
       {std::tuple<std::string, const std::vector<nlohmann::json>*, const std::vector<int64_t>*>{
            "mistral_instruct", &instruct_lines, &instruct_prompt},
        {"plain", &plain_lines, &plain_prompt}}) {
    const auto& j = (*lines)[0];
    EXPECT_EQ(j.at("tokens_chosen").get<int64_t>(), static_cast<int64_t>(chosen.size())) << name;
    EXPECT_EQ(j.at("tokens_rejected").get<int64_t>(), static_cast<int64_t>(rejected.size()))
        << name;
    expect_near_reference(j.at("chosen").get<double>(),
                          reference_logp(config, weights, *prompt, chosen), name + " chosen");
    expect_near_reference(j.at("rejected").get<double>(),
                          reference_logp(config, weights, *prompt, rejected), name + " rejected");
    // prompt/response lines: the same prompt ids, the response without EOS.
    const auto& pr = (*lines)[1];
    EXPECT_EQ(pr.at("tokens").get<int64_t>(),
              static_cast<int64_t>(prompt->size() + response_only.size()))
        << name;
    expect_near_reference(-pr.at("nll").get<double>(),
                          reference_logp(config, weights, *prompt, response_only),
                          name + " response");
  }
  EXPECT_NE(instruct_lines[0].at("chosen").get<double>(),
            plain_lines[0].at("chosen").get<double>());
  fs::remove_all(dir);
}

// Usage errors: an unknown --template, --template on a reward model, a bad pair line (file:line).
TEST(ScorePairsCli, ClearErrors) {
  const fs::path dir = tailor::test::fresh_dir("score_pairs_errors");
  GPT2Config config;
  config.n_layer = 1;
  config.n_head = 1;
  config.n_embd = 8;
  config.vocab_size = 50257;
  config.n_positions = 32;
  write_model(dir, config, 5);
  const std::string gpt2_tokenizer = std::string(TAILOR_SOURCE_DIR) + "/assets/tokenizers/gpt2";
  tailor::write_file_atomic(dir / "in.jsonl", pairs_jsonl({kPairs[0]}) +
                                                  "{\"prompt\": \"a\", \"chosen\": 3, "
                                                  "\"rejected\": \"b\"}\n");
  const std::string base = std::string(TAILOR_BINARY) + " score --model " +
                           (dir / "model").string() + " --tokenizer " + gpt2_tokenizer +
                           " --input " + (dir / "in.jsonl").string();

  const auto unknown = tailor::test::run_command(base + " --template chatml");
  EXPECT_NE(unknown.status, 0) << unknown.output;
  EXPECT_NE(unknown.output.find("--template"), std::string::npos) << unknown.output;
  EXPECT_NE(unknown.output.find("chatml"), std::string::npos) << unknown.output;

  const auto bad_line = tailor::test::run_command(base);
  EXPECT_NE(bad_line.status, 0) << bad_line.output;
  EXPECT_NE(bad_line.output.find((dir / "in.jsonl").string() + ":2"), std::string::npos)
      << bad_line.output;
  EXPECT_NE(bad_line.output.find("\"chosen\" must be a string"), std::string::npos)
      << bad_line.output;

  fs::create_directories(dir / "reward");
  tailor::write_file_atomic(
      dir / "reward" / "config.json",
      R"({"model_type": "gpt2", "architectures": ["GPT2ForSequenceClassification"]})");
  const auto reward = tailor::test::run_command(
      std::string(TAILOR_BINARY) + " score --model " + (dir / "reward").string() + " --input " +
      (dir / "in.jsonl").string() + " --template mistral_instruct");
  EXPECT_NE(reward.status, 0) << reward.output;
  EXPECT_NE(reward.output.find("--template mistral_instruct needs a causal LM"), std::string::npos)
      << reward.output;
  fs::remove_all(dir);
}
