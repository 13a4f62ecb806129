// `tailor score` on Mistral checkpoints in Hugging Face layout, written here, against the
// independent float64 MistralForCausalLM of tests/mistral_reference.h: grouped-query and plain
// multi-head attention, a sliding window shorter than the sequence, an explicit head_dim, a
// sharded index, BF16 tensors on disk, and a PEFT adapter (rsLoRA too). These run `tailor score
// --dtype float32`, which computes in float32 whatever the file's dtype, so the reference sees
// the weights as the file holds them. Without --dtype (auto), a checkpoint whose config.json
// says bfloat16 is scored in bfloat16: the last test.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "mistral_reference.h"
#include "models/core/lora.h"
#include "models/io/hf_checkpoint.h"
#include "models/io/peft.h"
#include "models/io/safetensors.h"
#include "models/mistral/mistral_config.h"
#include "test_support.h"

namespace fs = std::filesystem;
using tailor::MistralConfig;
using tailor::TensorMap;

namespace {

struct MistralScoreCase {
  std::string name;
  int64_t layers, heads, kv_heads, hidden, vocab;
  std::optional<int64_t> head_dim, sliding_window;
  at::ScalarType file_dtype;
  uint64_t shard_cap;  // bytes; small values force several shards
  int64_t lora_rank;   // 0 = no adapter
  bool rslora;
};

void PrintTo(const MistralScoreCase& c, std::ostream* os) {
  *os << c.name;
}

class MistralScoreCli : public ::testing::TestWithParam<MistralScoreCase> {};

TEST_P(MistralScoreCli, MatchesFloat64Reference) {
  const auto& c = GetParam();
  MistralConfig config;
  config.num_hidden_layers = c.layers;
  config.num_attention_heads = c.heads;
  config.num_key_value_heads = c.kv_heads;
  config.hidden_size = c.hidden;
  config.intermediate_size = 2 * c.hidden + 8;
  config.vocab_size = c.vocab;
  config.head_dim = c.head_dim;
  config.sliding_window = c.sliding_window;
  config.max_position_embeddings = 64;
  config.rope_theta = 1000.0;
  config.rms_norm_eps = 1e-5;

  // The weights as the file holds them (float32 or bf16-rounded); the reference gets those.
  TensorMap weights;
  for (const auto& [name, t] : tailor::reference::random_mistral_weights(config, 17))
    weights[name] = t.to(c.file_dtype);
  const fs::path dir = fs::temp_directory_path() / ("tailor_score_mistral_" + c.name);
  fs::remove_all(dir);
  tailor::hf::save_state_dict(dir / "model", weights, c.shard_cap);
  nlohmann::json json = config.to_json();
  json["torch_dtype"] = c.file_dtype == at::kBFloat16 ? "bfloat16" : "float32";
  tailor::write_file_atomic(dir / "model" / "config.json", json.dump(2));
  if (c.shard_cap < 1'000'000) {
    ASSERT_TRUE(fs::exists(dir / "model" / "model.safetensors.index.json"));
  }

  std::string adapter_flag;
  tailor::reference::MistralLoraAdapter adapter;
  if (c.lora_rank > 0) {
    // An adapter with non-zero B on every projection, written under PEFT's names.
    tailor::LoraConfig lora{
        c.lora_rank,
        3.0,
        0.0,
        c.rslora,
        {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}};
    adapter.scaling = lora.scaling();
    std::mt19937_64 rng(23);
    std::normal_distribution<double> normal(0.0, 0.2);
    for (const auto& [name, w] : weights) {
      const std::string module = name.substr(0, name.size() - std::string(".weight").size());
      const std::string leaf = module.substr(module.rfind('.') + 1);
      if (std::find(lora.targets.begin(), lora.targets.end(), leaf) == lora.targets.end()) continue;
      const int64_t out = w.size(0), in = w.size(1);
      std::vector<float> a(c.lora_rank * in), b(out * c.lora_rank);
      for (auto& v : a)
        v = static_cast<float>(normal(rng));
      for (auto& v : b)
        v = static_cast<float>(normal(rng));
      const std::string key = std::string(tailor::kPeftPrefix) + module;
      adapter.tensors[key + ".lora_A.weight"] = at::tensor(a).view({c.lora_rank, in});
      adapter.tensors[key + ".lora_B.weight"] = at::tensor(b).view({out, c.lora_rank});
    }
    fs::create_directories(dir / "adapter");
    tailor::write_file_atomic(
        dir / "adapter" / "adapter_config.json",
        tailor::peft_adapter_config(lora, "../model", /*fan_in_fan_out=*/false).dump(2));
    tailor::safetensors::save(dir / "adapter" / "adapter_model.safetensors", adapter.tensors);
    adapter_flag = " --adapter " + (dir / "adapter").string();
  }

  // Sequences up to 20 tokens: longer than the sliding windows below.
  std::mt19937_64 rng(5);
  std::vector<std::vector<int64_t>> seqs;
  std::ostringstream input;
  for (int i = 0; i < 4; ++i) {
    std::vector<int64_t> ids(8 + rng() % 13);
    for (auto& id : ids)
      id = static_cast<int64_t>(rng() % c.vocab);
    input << nlohmann::json{{"ids", ids}}.dump() << "\n";
    seqs.push_back(ids);
  }
  tailor::write_file_atomic(dir / "in.jsonl", input.str());
  const std::string out = tailor::test::run_ok(
      std::string(TAILOR_BINARY) + " score --dtype float32 --model " + (dir / "model").string() +
      adapter_flag + " --input " + (dir / "in.jsonl").string());

  std::istringstream lines(out);
  std::string line;
  for (const auto& ids : seqs) {
    ASSERT_TRUE(std::getline(lines, line)) << out;
    const auto j = nlohmann::json::parse(line);
    const int64_t T = static_cast<int64_t>(ids.size()), V = c.vocab;
    const auto logits = tailor::reference::mistral_logits(config, weights, ids, 1, T, {}, {},
                                                          c.lora_rank > 0 ? &adapter : nullptr);
    double expected = 0;
    for (int64_t t = 0; t + 1 < T; ++t) {
      double max = -INFINITY, sum = 0;
      for (int64_t v = 0; v < V; ++v)
        max = std::max(max, logits[t * V + v]);
      for (int64_t v = 0; v < V; ++v)
        sum += std::exp(logits[t * V + v] - max);
      expected -= logits[t * V + ids[t + 1]] - max - std::log(sum);
    }
    const double got = j.at("nll").get<double>();
    EXPECT_EQ(j.at("tokens").get<int64_t>(), T);
    EXPECT_LE(std::abs(got - expected), 1e-4 * std::max(1.0, std::abs(expected)))
        << c.name << ": tailor " << got << " vs float64 reference " << expected;
  }
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Checkpoints, MistralScoreCli,
    ::testing::Values(MistralScoreCase{"gqa_single_file", 2, 4, 2, 32, 97, std::nullopt,
                                       std::nullopt, at::kFloat, 5'000'000'000ULL, 0, false},
                      MistralScoreCase{"multi_head_window_sharded", 2, 2, 2, 24, 150, std::nullopt,
                                       5, at::kFloat, 6'000, 0, false},
                      MistralScoreCase{"head_dim_bf16_window", 1, 4, 1, 32, 120, 12, 7,
                                       at::kBFloat16, 5'000'000'000ULL, 0, false},
                      MistralScoreCase{"gqa_peft_adapter", 2, 4, 2, 32, 97, std::nullopt, 6,
                                       at::kFloat, 5'000'000'000ULL, 4, false},
                      MistralScoreCase{"bf16_sharded_rslora_adapter", 2, 4, 1, 32, 97, 16,
                                       std::nullopt, at::kBFloat16, 8'000, 8, true}),
    [](const auto& info) { return info.param.name; });

// --dtype auto (the default) reads config.json: torch_dtype (or transformers 5's dtype) bfloat16
// loads and computes in bfloat16, exactly as --dtype bfloat16 does, and differently from
// float32; float16, float32 or no dtype at all compute in float32.
TEST(MistralScoreCliDtype, AutoUsesTheDtypeConfigJsonNames) {
  MistralConfig config;
  config.num_hidden_layers = 1;
  config.num_attention_heads = 2;
  config.num_key_value_heads = 2;
  config.hidden_size = 32;
  config.intermediate_size = 72;
  config.vocab_size = 101;
  config.max_position_embeddings = 64;
  TensorMap weights;
  for (const auto& [name, t] : tailor::reference::random_mistral_weights(config, 3))
    weights[name] = t.to(at::kBFloat16);
  const fs::path dir = tailor::test::fresh_dir("score_mistral_dtype_auto");
  tailor::hf::save_state_dict(dir / "model", weights, 5'000'000'000ULL);
  tailor::write_file_atomic(dir / "in.jsonl", "{\"ids\": [1, 5, 9, 13, 17, 21, 25, 29]}\n");
  const auto score = [&](const std::string& dtype_key, const std::string& value,
                         const std::string& flag) {
    nlohmann::json json = config.to_json();
    json.erase("torch_dtype");
    if (!dtype_key.empty()) json[dtype_key] = value;
    tailor::write_file_atomic(dir / "model" / "config.json", json.dump(2));
    return tailor::test::run_ok(std::string(TAILOR_BINARY) + " score " + flag + " --model " +
                                (dir / "model").string() + " --input " +
                                (dir / "in.jsonl").string());
  };
  const std::string bf16 = score("torch_dtype", "bfloat16", "--dtype bfloat16");
  const std::string fp32 = score("torch_dtype", "bfloat16", "--dtype float32");
  ASSERT_NE(bf16, fp32) << "the two dtypes must give different scores for this test to mean much";
  EXPECT_EQ(score("torch_dtype", "bfloat16", ""), bf16);
  EXPECT_EQ(score("dtype", "bfloat16", ""), bf16);
  EXPECT_EQ(score("torch_dtype", "float16", ""), fp32);
  EXPECT_EQ(score("torch_dtype", "float32", ""), fp32);
  EXPECT_EQ(score("", "", ""), fp32);
  fs::remove_all(dir);
}

}  // namespace
