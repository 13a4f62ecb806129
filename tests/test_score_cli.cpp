// `tailor score` on Hugging Face directories written here, against the independent float64
// GPT-2 of tests/gpt2_reference.h (issue acceptance 3 and 5): several shapes, with and without
// the `transformer.` prefix, single-file and sharded, and a PEFT adapter merged by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "common/atomic_file.h"
#include "gpt2_reference.h"
#include "models/core/lora.h"
#include "models/gpt2/gpt2.h"
#include "models/io/hf_checkpoint.h"
#include "models/io/pretrained.h"
#include "models/io/safetensors.h"
#include "test_support.h"

namespace fs = std::filesystem;
using tailor::GPT2Config;
using tailor::TensorMap;

namespace {

// Summed NLL of ids[1..] under float64 reference logits.
double reference_nll(const GPT2Config& config, const TensorMap& weights,
                     const std::vector<int64_t>& ids) {
  const int64_t T = static_cast<int64_t>(ids.size()), V = config.vocab_size;
  const auto logp = tailor::reference::log_softmax_rows(
      tailor::reference::gpt2_logits(config, weights, ids, 1, T), V);
  double nll = 0;
  for (int64_t t = 0; t + 1 < T; ++t)
    nll -= logp[t * V + ids[t + 1]];
  return nll;
}

// Weights as the files hold them: float32-rounded (the reference then sees exactly the same).
TensorMap as_float32(const TensorMap& weights) {
  TensorMap out;
  for (const auto& [name, t] : weights)
    out[name] = t.to(at::kFloat);
  return out;
}

std::vector<std::vector<int64_t>> random_sequences(int64_t vocab, int64_t max_len, int n,
                                                   uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int64_t>> seqs;
  for (int i = 0; i < n; ++i) {
    std::vector<int64_t> ids(1 + rng() % max_len);
    for (auto& id : ids)
      id = static_cast<int64_t>(rng() % vocab);
    seqs.push_back(ids);
  }
  return seqs;
}

void write_ids_jsonl(const fs::path& path, const std::vector<std::vector<int64_t>>& seqs) {
  std::ostringstream s;
  for (const auto& ids : seqs)
    s << nlohmann::json{{"ids", ids}}.dump() << "\n";
  tailor::write_file_atomic(path, s.str());
}

void expect_scores_match(const std::string& output, const GPT2Config& config,
                         const TensorMap& weights, const std::vector<std::vector<int64_t>>& seqs) {
  const auto lines = tailor::test::parse_lines(output);
  ASSERT_EQ(lines.size(), seqs.size()) << output;
  for (size_t i = 0; i < seqs.size(); ++i) {
    EXPECT_EQ(lines[i]["tokens"].get<int64_t>(), static_cast<int64_t>(seqs[i].size()));
    const double expected = reference_nll(config, weights, seqs[i]);
    const double got = lines[i]["nll"].get<double>();
    EXPECT_LE(std::abs(got - expected), 1e-4 * std::max(1.0, std::abs(expected)))
        << "line " << i << ": tailor " << got << " vs float64 reference " << expected;
  }
}

struct ScoreCase {
  std::string name;
  int64_t n_layer, n_head, n_embd, vocab;
  bool prefix;
  uint64_t shard_cap;  // bytes; small values force several shards
};

class ScoreCli : public ::testing::TestWithParam<ScoreCase> {};

TEST_P(ScoreCli, MatchesFloat64ReferenceOnHfDirectory) {
  const auto& c = GetParam();
  GPT2Config config;
  config.n_layer = c.n_layer;
  config.n_head = c.n_head;
  config.n_embd = c.n_embd;
  config.vocab_size = c.vocab;
  config.n_positions = 32;
  const TensorMap weights = as_float32(tailor::reference::random_hf_weights(config, 7));

  const fs::path dir = tailor::test::fresh_dir("score_cli_" + c.name);
  TensorMap on_disk;
  for (const auto& [name, t] : weights)
    on_disk[(c.prefix ? "transformer." : "") + name] = t;
  tailor::hf::save_state_dict(dir / "model", on_disk, c.shard_cap);
  tailor::write_file_atomic(dir / "model" / "config.json", config.to_json().dump(2));
  if (c.shard_cap < 1000000) {
    ASSERT_TRUE(fs::exists(dir / "model" / "model.safetensors.index.json"));
  }

  const auto seqs = random_sequences(c.vocab, 20, 5, 11);
  write_ids_jsonl(dir / "in.jsonl", seqs);
  const std::string out =
      tailor::test::run_ok(std::string(TAILOR_BINARY) + " score --model " +
                           (dir / "model").string() + " --input " + (dir / "in.jsonl").string());
  expect_scores_match(out, config, weights, seqs);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, ScoreCli,
    ::testing::Values(ScoreCase{"hub_names_single", 2, 2, 16, 97, false, 5'000'000'000ULL},
                      ScoreCase{"prefixed_sharded", 3, 4, 32, 211, true, 20'000},
                      ScoreCase{"one_layer_prefixed", 1, 1, 8, 50, true, 5'000'000'000ULL},
                      ScoreCase{"hub_names_sharded", 2, 4, 24, 300, false, 8'000}),
    [](const auto& info) { return info.param.name; });

// A PEFT adapter applied by hand (W + (B A)^T alpha / r for Conv1D) scores the same as
// `tailor score --adapter`.
TEST(ScoreCliAdapter, PeftAdapterEqualsHandMergedWeights) {
  GPT2Config config;
  config.n_layer = 2;
  config.n_head = 2;
  config.n_embd = 16;
  config.vocab_size = 120;
  config.n_positions = 32;
  const TensorMap base = as_float32(tailor::reference::random_hf_weights(config, 3));
  const fs::path dir = tailor::test::fresh_dir("score_cli_adapter");

  // Base model directory and an adapter with non-zero B, written by tailor.
  tailor::GPT2LMHead model(config, /*init_weights=*/false);
  model->load_hf_state_dict(base);
  tailor::LoraConfig lora{4, 8.0, 0.0, false, {"c_attn", "c_fc"}};
  torch::manual_seed(5);
  tailor::apply_lora(*model, lora);
  {
    at::NoGradGuard no_grad;
    for (auto& item : tailor::lora_parameters(*model))
      item.value().normal_(0, 0.3);
  }
  tailor::save_pretrained(dir / "base", *model);
  tailor::write_file_atomic(dir / "base" / "config.json", config.to_json().dump(2));
  tailor::save_peft_adapter(dir / "adapter", *model, lora, "../base", /*fan_in_fan_out=*/true);

  // Merge by hand in float64 from the adapter file's tensors.
  const TensorMap adapter =
      tailor::safetensors::load(dir / "adapter" / "adapter_model.safetensors");
  TensorMap merged = base;
  const double scale = lora.alpha / lora.rank;
  int merged_modules = 0;
  for (const auto& [name, w] : base) {
    if (name.size() < 7 || name.compare(name.size() - 7, 7, ".weight") != 0) continue;
    const std::string module = name.substr(0, name.size() - 7);
    const std::string a_key = "base_model.model.transformer." + module + ".lora_A.weight";
    if (!adapter.count(a_key)) continue;
    const auto A = tailor::reference::to_doubles(adapter.at(a_key));  // [r, in]
    const auto B = tailor::reference::to_doubles(
        adapter.at("base_model.model.transformer." + module + ".lora_B.weight"));  // [out, r]
    auto W = tailor::reference::to_doubles(w);  // Conv1D [in, out]
    const int64_t in = w.size(0), out = w.size(1), r = lora.rank;
    for (int64_t i = 0; i < in; ++i)
      for (int64_t o = 0; o < out; ++o) {
        double delta = 0;
        for (int64_t k = 0; k < r; ++k)
          delta += B[o * r + k] * A[k * in + i];
        W[i * out + o] += delta * scale;
      }
    merged[name] = at::tensor(W, at::kDouble).reshape({in, out});
    merged_modules += 1;
  }
  ASSERT_EQ(merged_modules, 4);  // 2 layers x (c_attn, c_fc)

  const auto seqs = random_sequences(config.vocab_size, 20, 4, 13);
  write_ids_jsonl(dir / "in.jsonl", seqs);
  const std::string out = tailor::test::run_ok(
      std::string(TAILOR_BINARY) + " score --model " + (dir / "base").string() + " --adapter " +
      (dir / "adapter").string() + " --input " + (dir / "in.jsonl").string());
  expect_scores_match(out, config, merged, seqs);
  fs::remove_all(dir);
}

// --per-token: one log-probability per scored token, equal to the float64 reference's and summing
// to -nll; for prompt/response lines only the response tokens are listed.
TEST(ScoreCliPerToken, LogProbsMatchReferenceAndSumToNll) {
  GPT2Config config;
  config.n_layer = 1;
  config.n_head = 2;
  config.n_embd = 8;
  config.vocab_size = 50257;  // the real GPT-2 tokenizer encodes the text lines
  config.n_positions = 32;
  const TensorMap weights = as_float32(tailor::reference::random_hf_weights(config, 17));
  const fs::path dir = tailor::test::fresh_dir("score_cli_per_token");
  tailor::hf::save_state_dict(dir / "model", weights, 5'000'000'000ULL);
  tailor::write_file_atomic(dir / "model" / "config.json", config.to_json().dump(2));

  const auto seqs = random_sequences(config.vocab_size, 12, 3, 23);
  std::ostringstream in;
  for (const auto& ids : seqs)
    in << nlohmann::json{{"ids", ids}}.dump() << "\n";
  in << "{\"ids\": [42]}\n"
     << "{\"text\": \"The cat sat on\"}\n"
     << "{\"prompt\": \"The cat sat on\", \"response\": \" the mat today.\"}\n";
  tailor::write_file_atomic(dir / "in.jsonl", in.str());
  const std::string out =
      tailor::test::run_ok(std::string(TAILOR_BINARY) + " score --per-token --model " +
                           (dir / "model").string() + " --tokenizer " + TAILOR_SOURCE_DIR +
                           "/assets/tokenizers/gpt2 --input " + (dir / "in.jsonl").string());
  const auto lines = tailor::test::parse_lines(out);
  ASSERT_EQ(lines.size(), seqs.size() + 3) << out;

  for (size_t i = 0; i < lines.size(); ++i) {
    const auto log_probs = lines[i]["log_probs"].get<std::vector<double>>();
    double sum = 0;
    for (double lp : log_probs)
      sum += lp;
    const double nll = lines[i]["nll"].get<double>();
    EXPECT_NEAR(-sum, nll, 1e-9 * std::max(1.0, std::abs(nll))) << "line " << i;
  }
  for (size_t i = 0; i < seqs.size(); ++i) {
    const auto& ids = seqs[i];
    const int64_t T = static_cast<int64_t>(ids.size()), V = config.vocab_size;
    const auto logp = tailor::reference::log_softmax_rows(
        tailor::reference::gpt2_logits(config, weights, ids, 1, T), V);
    const auto got = lines[i]["log_probs"].get<std::vector<double>>();
    ASSERT_EQ(static_cast<int64_t>(got.size()), T - 1) << "line " << i;
    for (int64_t t = 0; t + 1 < T; ++t) {
      const double expected = logp[t * V + ids[t + 1]];
      EXPECT_LE(std::abs(got[t] - expected), 1e-4 * std::max(1.0, std::abs(expected)))
          << "line " << i << " token " << t + 1;
    }
  }
  // One token: nothing scored.
  EXPECT_TRUE(lines[seqs.size()]["log_probs"].empty());
  // Prompt/response: only the response tokens (total minus the prompt's tokens).
  const auto prompt_tokens = lines[seqs.size() + 1]["tokens"].get<int64_t>();
  const auto& pair = lines[seqs.size() + 2];
  EXPECT_EQ(static_cast<int64_t>(pair["log_probs"].size()),
            pair["tokens"].get<int64_t>() - prompt_tokens);
  EXPECT_GT(pair["log_probs"].size(), 0u);
  fs::remove_all(dir);
}

// --per-token is for causal LMs: a reward-model directory is refused.
TEST(ScoreCliPerToken, RefusedForRewardModels) {
  const fs::path dir = tailor::test::fresh_dir("score_cli_per_token_reward");
  tailor::write_file_atomic(
      dir / "config.json",
      R"({"model_type": "gpt2", "architectures": ["GPT2ForSequenceClassification"]})");
  tailor::write_file_atomic(dir / "in.jsonl", "{\"ids\": [1, 2]}\n");
  const std::string command = std::string(TAILOR_BINARY) + " score --per-token --model " +
                              dir.string() + " --input " + (dir / "in.jsonl").string() + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe))
    output.append(buffer, n);
  EXPECT_NE(pclose(pipe), 0) << output;
  EXPECT_NE(output.find("--per-token"), std::string::npos) << output;
  fs::remove_all(dir);
}

}  // namespace
