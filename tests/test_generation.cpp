// Text generation (models/generation): the logits warpers on hand-made vectors, the seeded
// categorical draw, and generate() on small random models of every family: the KV-cache path
// against recomputing the whole sequence at every step, batched (left padding) against one
// prompt at a time, seeds, top-k 1 against greedy, EOS and num_return_sequences. `tailor
// generate` is checked against the library on a model directory written here.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "gpt2_reference.h"
#include "models/generation/generate.h"
#include "models/generation/sampling.h"
#include "models/gpt2/gpt2.h"
#include "models/io/pretrained.h"
#include "models/registry.h"
#include "models/tokenizer/tokenizer.h"
#include "test_support.h"

namespace fs = std::filesystem;
using tailor::CausalLM;
using tailor::FinishReason;
using tailor::GeneratedSequence;
using tailor::GenerationConfig;

namespace {

// ---- Warpers and the draw ---------------------------------------------------------------------

// The indices of a row that are not -inf.
std::vector<int64_t> kept(const at::Tensor& row) {
  std::vector<int64_t> out;
  const auto values = row.to(at::kFloat).contiguous();
  for (int64_t i = 0; i < values.numel(); ++i)
    if (values[i].item<float>() > -std::numeric_limits<float>::infinity()) out.push_back(i);
  return out;
}

at::Tensor log_of(const std::vector<float>& probs) {
  return at::tensor(probs, at::kFloat).log().unsqueeze(0);
}

// Probabilities 0.1, 0.5, 0.15, 0.25: ascending cumulative mass 0.1, 0.25, 0.5, 1.0; HF removes
// the entries whose cumulative mass is <= 1 - top_p.
TEST(GenerationSampling, TopPKeepsTheSmallestTopSetReachingP) {
  const at::Tensor logits = log_of({0.1f, 0.5f, 0.15f, 0.25f});
  EXPECT_EQ(kept(tailor::apply_top_p(logits, 0.7)[0]), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(kept(tailor::apply_top_p(logits, 0.8)[0]), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(kept(tailor::apply_top_p(logits, 0.95)[0]), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(kept(tailor::apply_top_p(logits, 0.3)[0]), (std::vector<int64_t>{1}));
  // The largest entry survives even when it alone is below top_p... and p tiny keeps only it.
  EXPECT_EQ(kept(tailor::apply_top_p(logits, 1e-6)[0]), (std::vector<int64_t>{1}));
  EXPECT_TRUE(tailor::apply_top_p(logits, 1.0).equal(logits));
  // Rows are filtered independently; kept entries keep their values.
  const at::Tensor two = at::cat({logits, log_of({0.4f, 0.05f, 0.3f, 0.25f})}, 0);
  const at::Tensor out = tailor::apply_top_p(two, 0.7);
  EXPECT_EQ(kept(out[0]), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(kept(out[1]), (std::vector<int64_t>{0, 2}));
  EXPECT_FLOAT_EQ(out[1][0].item<float>(), std::log(0.4f));
  EXPECT_THROW(tailor::apply_top_p(logits, 0.0), tailor::Error);
  EXPECT_THROW(tailor::apply_top_p(logits, 1.5), tailor::Error);
}

// Temperature comes first: at T = 2 the probabilities become ~0.370, 0.262, 0.203, 0.166
// (sorted), so top_p 0.7 keeps three entries instead of two.
TEST(GenerationSampling, TemperatureThenTopKThenTopP) {
  const at::Tensor logits = log_of({0.1f, 0.5f, 0.15f, 0.25f});
  tailor::SamplingParams params{2.0, 0, 0.7};
  EXPECT_EQ(kept(tailor::warp_logits(logits, params)[0]), (std::vector<int64_t>{1, 2, 3}));
  params.temperature = 1.0;
  EXPECT_EQ(kept(tailor::warp_logits(logits, params)[0]), (std::vector<int64_t>{1, 3}));
  // top_k before top_p: k = 2 leaves {0.5, 0.25} -> renormalised 2/3, 1/3; top_p 0.6 keeps 1.
  params = {1.0, 2, 0.6};
  EXPECT_EQ(kept(tailor::warp_logits(logits, params)[0]), (std::vector<int64_t>{1}));
  const at::Tensor scaled = tailor::apply_temperature(logits, 0.5);
  EXPECT_TRUE(scaled.allclose(logits * 2));
  EXPECT_THROW(tailor::apply_temperature(logits, 0.0), tailor::Error);
}

TEST(GenerationSampling, TopKKeepsTiesWithTheKth) {
  const at::Tensor logits = at::tensor({1.0f, 3.0f, 2.0f, 3.0f, 0.0f}).unsqueeze(0);
  EXPECT_EQ(kept(tailor::apply_top_k(logits, 1)[0]), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(kept(tailor::apply_top_k(logits, 2)[0]), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(kept(tailor::apply_top_k(logits, 3)[0]), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(kept(tailor::apply_top_k(logits, 0)[0]), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(kept(tailor::apply_top_k(logits, 50)[0]), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_THROW(tailor::apply_top_k(logits, -1), tailor::Error);
}

TEST(GenerationSampling, CategoricalDrawInvertsTheCumulativeSum) {
  const std::vector<double> probs = {0.0, 0.2, 0.0, 0.8};
  EXPECT_EQ(tailor::sample_categorical(probs.data(), 4, 0.0), 1);
  EXPECT_EQ(tailor::sample_categorical(probs.data(), 4, 0.19), 1);
  EXPECT_EQ(tailor::sample_categorical(probs.data(), 4, 0.21), 3);
  EXPECT_EQ(tailor::sample_categorical(probs.data(), 4, 0.999999), 3);
  // Unnormalised weights: 1 : 3.
  const std::vector<double> weights = {1.0, 3.0};
  EXPECT_EQ(tailor::sample_categorical(weights.data(), 2, 0.24), 0);
  EXPECT_EQ(tailor::sample_categorical(weights.data(), 2, 0.26), 1);
  const std::vector<double> zeros = {0.0, 0.0};
  EXPECT_THROW(tailor::sample_categorical(zeros.data(), 2, 0.5), tailor::Error);

  // sample_rows: a row with one finite logit always yields it; frequencies follow softmax.
  std::mt19937_64 a(1), b(2);
  const float inf = std::numeric_limits<float>::infinity();
  const at::Tensor rows = at::tensor({-inf, 0.0f, -inf, std::log(3.0f), 0.0f, -inf}).view({2, 3});
  int ones = 0;
  for (int i = 0; i < 4000; ++i) {
    const auto drawn = tailor::sample_rows(rows, {&a, &b});
    ASSERT_EQ(drawn[0], 1);
    ASSERT_TRUE(drawn[1] == 0 || drawn[1] == 1);
    ones += drawn[1] == 1;
  }
  EXPECT_NEAR(ones / 4000.0, 0.25, 0.03);  // 1 / (3 + 1); 0.03 is > 4 standard deviations
}

// Greedy decoding against the float64 reference GPT-2 (tests/gpt2_reference.h), not against
// another generate() path: every new token of every row of a left-padded batch is the argmax of
// the reference's last-position logits on that row's prompt plus the tokens before it.
TEST(GenerationGreedy, EveryTokenIsTheFloat64ReferencesArgmax) {
  tailor::GPT2Config config;
  config.vocab_size = 41;
  config.n_positions = 32;
  config.n_embd = 16;
  config.n_layer = 2;
  config.n_head = 2;
  config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = 0.0;
  const tailor::TensorMap weights = tailor::reference::random_hf_weights(config, 8);
  tailor::GPT2LMHead model(config);
  model->load_hf_state_dict(weights);
  model->to(at::kDouble);
  model->eval();
  const std::vector<std::vector<int32_t>> prompts = {{3, 17, 5}, {40}, {1, 2, 3, 4, 5, 6, 7}};
  tailor::GenerationConfig greedy_config;
  greedy_config.max_new_tokens = 10;
  greedy_config.temperature = 0;
  const auto out = tailor::generate(*model, prompts, greedy_config);
  ASSERT_EQ(out.size(), prompts.size());
  for (size_t row = 0; row < prompts.size(); ++row) {
    ASSERT_EQ(out[row].ids.size(), 10u) << "row " << row;  // eos 50256 is outside the vocabulary
    std::vector<int64_t> sequence(prompts[row].begin(), prompts[row].end());
    for (size_t k = 0; k < out[row].ids.size(); ++k) {
      const int64_t T = static_cast<int64_t>(sequence.size()), V = config.vocab_size;
      const auto logits = tailor::reference::gpt2_logits(config, weights, sequence, 1, T);
      const auto last = logits.begin() + (T - 1) * V;
      const int64_t want = std::max_element(last, last + V) - last;
      EXPECT_EQ(out[row].ids[k], want) << "row " << row << " token " << k;
      sequence.push_back(out[row].ids[k]);  // follow tailor's choice so one miss stays one
    }
  }
}

// ---- generate() on random models --------------------------------------------------------------

struct GenerationFamily {
  std::string name;
  nlohmann::json config;
};
void PrintTo(const GenerationFamily& family, std::ostream* os) {
  *os << family.name;
}

// Small configs: vocabulary 97, 64 positions. Mistral's sliding window (6) is shorter than the
// sequences, so the cache path must apply it too.
std::vector<GenerationFamily> generation_families() {
  std::vector<GenerationFamily> out;
  out.push_back({"gpt2",
                 {{"model_type", "gpt2"},
                  {"vocab_size", 97},
                  {"n_positions", 64},
                  {"n_embd", 32},
                  {"n_layer", 2},
                  {"n_head", 4}}});
  out.push_back({"mistral",
                 {{"model_type", "mistral"},
                  {"vocab_size", 97},
                  {"hidden_size", 32},
                  {"intermediate_size", 64},
                  {"num_hidden_layers", 2},
                  {"num_attention_heads", 4},
                  {"num_key_value_heads", 2},
                  {"max_position_embeddings", 64},
                  {"sliding_window", 6},
                  {"tie_word_embeddings", false}}});
  return out;
}

// A random model whose logits spread over several units (HF's 0.02 init gives near-uniform
// next-token distributions): matrices N(0, 1/C), norm weights 1 + N(0, 0.1^2), other vectors
// N(0, 0.1^2).
CausalLM spread_model(const nlohmann::json& config, uint64_t seed,
                      at::ScalarType dtype = at::kFloat) {
  torch::manual_seed(seed);
  CausalLM model = tailor::causal_lm_from_config(config, "test config", /*init_weights=*/true);
  at::NoGradGuard no_grad;
  const double scale = 1.0 / std::sqrt(static_cast<double>(model->hidden_size()));
  for (auto& item : model->named_parameters()) {
    at::Tensor p = item.value();
    const std::string& name = item.key();
    if (p.dim() >= 2) {
      p.normal_(0, scale);
    } else if (name.find("ln_") != std::string::npos || name.find("norm") != std::string::npos) {
      p.normal_(1, 0.1);
    } else {
      p.normal_(0, 0.1);
    }
  }
  model->to(dtype);
  return model;
}

std::vector<std::vector<int32_t>> random_prompts(const std::vector<int>& lengths, int64_t vocab,
                                                 uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int32_t>> prompts;
  for (int n : lengths) {
    std::vector<int32_t> p(n);
    for (auto& id : p)
      id = static_cast<int32_t>(rng() % vocab);
    prompts.push_back(p);
  }
  return prompts;
}

std::vector<std::vector<int32_t>> ids_of(const std::vector<GeneratedSequence>& seqs) {
  std::vector<std::vector<int32_t>> out;
  for (const auto& s : seqs)
    out.push_back(s.ids);
  return out;
}

// Prompts of lengths 5, 1, 9, 3: four rows with up to 8 columns of left padding.
const std::vector<int> kLengths = {5, 1, 9, 3};

GenerationConfig greedy(int64_t max_new_tokens) {
  GenerationConfig c;
  c.max_new_tokens = max_new_tokens;
  c.temperature = 0;
  return c;
}

GenerationConfig sampled(int64_t max_new_tokens, uint64_t seed, double temperature = 1.0) {
  GenerationConfig c;
  c.max_new_tokens = max_new_tokens;
  c.temperature = temperature;
  c.top_k = 0;
  c.seed = seed;
  return c;
}

class Generation : public ::testing::TestWithParam<GenerationFamily> {};

// The KV cache (one prefill, then one token per step) gives what recomputing the whole
// left-padded sequence at every step gives, greedy and sampled; and the batch gives what each
// prompt alone gives.
TEST_P(Generation, CachedEqualsRecomputedAndBatchedEqualsAlone) {
  CausalLM model = spread_model(GetParam().config, 11);
  const auto prompts = random_prompts(kLengths, model->vocab_size(), 3);
  for (GenerationConfig config : {greedy(14), sampled(14, 5)}) {
    SCOPED_TRACE(config.temperature == 0 ? "greedy" : "sampled");
    const auto cached = tailor::generate(*model, prompts, config);
    config.use_cache = false;
    const auto recomputed = tailor::generate(*model, prompts, config);
    ASSERT_EQ(cached.size(), prompts.size());
    EXPECT_EQ(ids_of(cached), ids_of(recomputed));
    config.use_cache = true;
    for (size_t i = 0; i < prompts.size(); ++i) {
      config.first_prompt_index = static_cast<int64_t>(i);
      const auto alone = tailor::generate(*model, {prompts[i]}, config);
      ASSERT_EQ(alone.size(), 1u);
      EXPECT_EQ(alone[0].ids, cached[i].ids) << "prompt " << i;
      EXPECT_EQ(alone[0].finish_reason, cached[i].finish_reason) << "prompt " << i;
      EXPECT_EQ(cached[i].prompt_index, static_cast<int64_t>(i));
      EXPECT_LE(cached[i].ids.size(), 14u);
    }
  }
}

// A fixed seed replays; another seed (high temperature, no filtering) draws differently.
TEST_P(Generation, SeedsReplayAndDiffer) {
  CausalLM model = spread_model(GetParam().config, 12);
  const auto prompts = random_prompts(kLengths, model->vocab_size(), 4);
  const auto a = ids_of(tailor::generate(*model, prompts, sampled(12, 1, 2.0)));
  const auto b = ids_of(tailor::generate(*model, prompts, sampled(12, 1, 2.0)));
  const auto c = ids_of(tailor::generate(*model, prompts, sampled(12, 2, 2.0)));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // Sampling is not greedy decoding.
  EXPECT_NE(a, ids_of(tailor::generate(*model, prompts, greedy(12))));
}

// top_k = 1 leaves one token to draw: greedy, at any temperature.
TEST_P(Generation, TopKOneIsGreedy) {
  CausalLM model = spread_model(GetParam().config, 13);
  const auto prompts = random_prompts(kLengths, model->vocab_size(), 5);
  GenerationConfig config = sampled(12, 9, 1.7);
  config.top_k = 1;
  EXPECT_EQ(ids_of(tailor::generate(*model, prompts, config)),
            ids_of(tailor::generate(*model, prompts, greedy(12))));
}

// With eos = a token that greedy decoding produces, each row stops right after its first
// occurrence (EOS included, reason "eos") and the other rows go on exactly as before (finished
// rows leave the batch and the cache).
TEST_P(Generation, EosStopsItsRowOnly) {
  CausalLM model = spread_model(GetParam().config, 14);
  const auto prompts = random_prompts(kLengths, model->vocab_size(), 6);
  GenerationConfig config = greedy(20);
  config.eos_token_id = model->vocab_size() + 5;  // never produced
  const auto full = tailor::generate(*model, prompts, config);
  for (const auto& s : full) {
    ASSERT_EQ(s.ids.size(), 20u);
    EXPECT_EQ(s.finish_reason, FinishReason::kLength);
  }
  // The token generated at step 3 of prompt 2.
  const int32_t eos = full[2].ids[3];
  config.eos_token_id = eos;
  for (bool use_cache : {true, false}) {
    config.use_cache = use_cache;
    const auto stopped = tailor::generate(*model, prompts, config);
    int eos_rows = 0;
    for (size_t i = 0; i < prompts.size(); ++i) {
      const auto& ids = full[i].ids;
      const auto first = std::find(ids.begin(), ids.end(), eos);
      const std::vector<int32_t> expected(ids.begin(), first == ids.end() ? ids.end() : first + 1);
      EXPECT_EQ(stopped[i].ids, expected) << "prompt " << i;
      EXPECT_EQ(stopped[i].finish_reason,
                first == ids.end() ? FinishReason::kLength : FinishReason::kEos);
      eos_rows += first != ids.end();
    }
    EXPECT_GE(eos_rows, 1);
    EXPECT_LE(stopped[2].ids.size(), 4u);
    EXPECT_EQ(stopped[2].ids.back(), eos);
  }
  EXPECT_STREQ(tailor::finish_reason_name(FinishReason::kEos), "eos");
  EXPECT_STREQ(tailor::finish_reason_name(FinishReason::kLength), "length");
}

// R sequences per prompt, prompt-major; sequence r of a prompt does not depend on R or on the
// other prompts; greedy copies are identical.
TEST_P(Generation, NumReturnSequences) {
  CausalLM model = spread_model(GetParam().config, 15);
  const auto prompts = random_prompts({4, 2, 6}, model->vocab_size(), 7);
  GenerationConfig config = sampled(10, 3, 1.5);
  config.num_return_sequences = 3;
  const auto three = tailor::generate(*model, prompts, config);
  ASSERT_EQ(three.size(), 9u);
  for (size_t j = 0; j < three.size(); ++j) {
    EXPECT_EQ(three[j].prompt_index, static_cast<int64_t>(j / 3));
    EXPECT_EQ(three[j].sequence_index, static_cast<int64_t>(j % 3));
  }
  EXPECT_NE(three[0].ids, three[1].ids);
  config.num_return_sequences = 1;
  const auto one = tailor::generate(*model, prompts, config);
  for (size_t i = 0; i < prompts.size(); ++i)
    EXPECT_EQ(one[i].ids, three[3 * i].ids) << "prompt " << i;
  // Without the cache (prompts repeated before the forward) the same.
  config.num_return_sequences = 3;
  config.use_cache = false;
  EXPECT_EQ(ids_of(tailor::generate(*model, prompts, config)), ids_of(three));

  GenerationConfig g = greedy(8);
  g.num_return_sequences = 2;
  const auto copies = tailor::generate(*model, prompts, g);
  ASSERT_EQ(copies.size(), 6u);
  const auto single = tailor::generate(*model, prompts, greedy(8));
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(copies[2 * i].ids, single[i].ids);
    EXPECT_EQ(copies[2 * i + 1].ids, single[i].ids);
  }
}

// bfloat16 weights: generation runs in bf16 (the model stays bf16), replays, and fills
// max_new_tokens with in-vocabulary ids. Training mode is restored.
TEST_P(Generation, Bfloat16ModelAndTrainModeRestored) {
  CausalLM model = spread_model(GetParam().config, 16, at::kBFloat16);
  const auto prompts = random_prompts(kLengths, model->vocab_size(), 8);
  GenerationConfig config = greedy(6);
  config.eos_token_id = model->vocab_size();  // never produced
  model->train();
  const auto a = tailor::generate(*model, prompts, config);
  EXPECT_TRUE(model->is_training());
  EXPECT_EQ(model->dtype(), at::kBFloat16);
  model->eval();
  const auto b = tailor::generate(*model, prompts, config);
  EXPECT_FALSE(model->is_training());
  EXPECT_EQ(ids_of(a), ids_of(b));
  for (const auto& s : a) {
    ASSERT_EQ(s.ids.size(), 6u);
    for (int32_t id : s.ids)
      EXPECT_TRUE(id >= 0 && id < model->vocab_size());
  }
}

TEST_P(Generation, ErrorsNameThePrompt) {
  CausalLM model = spread_model(GetParam().config, 17);
  auto message = [&](const std::vector<std::vector<int32_t>>& prompts,
                     const GenerationConfig& config) -> std::string {
    try {
      tailor::generate(*model, prompts, config);
    } catch (const tailor::Error& e) {
      return e.what();
    }
    return "no error";
  };
  // 64 positions - 10 new tokens = at most 54 prompt tokens.
  const auto ok = random_prompts({54}, model->vocab_size(), 1)[0];
  const auto long_prompt = random_prompts({55}, model->vocab_size(), 1)[0];
  EXPECT_EQ(tailor::generate(*model, {ok}, greedy(10))[0].ids.size() > 0, true);
  EXPECT_NE(message({ok, long_prompt}, greedy(10)).find("prompt 1: 55 tokens"), std::string::npos)
      << message({ok, long_prompt}, greedy(10));
  EXPECT_NE(message({ok, {}}, greedy(10)).find("prompt 1 is empty"), std::string::npos);
  EXPECT_NE(message({{1, 2, 97}}, greedy(10)).find("prompt 0: token id 97"), std::string::npos);
  GenerationConfig bad = greedy(10);
  bad.top_p = 0;
  EXPECT_NE(message({ok}, bad).find("top_p"), std::string::npos);
  bad = greedy(0);
  EXPECT_NE(message({ok}, bad).find("max_new_tokens"), std::string::npos);
  bad = greedy(10);
  bad.temperature = -1;
  EXPECT_NE(message({ok}, bad).find("temperature"), std::string::npos);
  bad = greedy(10);
  bad.num_return_sequences = 0;
  EXPECT_NE(message({ok}, bad).find("num_return_sequences"), std::string::npos);
  EXPECT_TRUE(tailor::generate(*model, {}, greedy(10)).empty());
}

INSTANTIATE_TEST_SUITE_P(Families, Generation, ::testing::ValuesIn(generation_families()),
                         [](const auto& info) { return info.param.name; });

// ---- tailor generate ---------------------------------------------------------------------------

std::vector<nlohmann::json> json_lines(const fs::path& file) {
  std::ifstream in(file);
  std::vector<nlohmann::json> lines;
  std::string line;
  while (std::getline(in, line))
    lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// The CLI on a GPT-2 directory written here, with {"ids"} prompts and --batch-size 2, gives what
// the library gives for the whole input in one batch: greedy, and sampled with a seed and two
// return sequences. Bad lines are errors naming the file and line.
TEST(GenerateCli, MatchesTheLibraryAndNamesBadLines) {
  const fs::path dir = fs::temp_directory_path() / "tailor_generate_cli";
  fs::remove_all(dir);
  fs::create_directories(dir);
  CausalLM model = spread_model(generation_families()[0].config, 21);
  tailor::save_pretrained(dir / "model", *model);
  const auto prompts = random_prompts({3, 7, 1, 4, 2}, model->vocab_size(), 9);
  {
    std::ofstream in(dir / "in.jsonl");
    for (const auto& p : prompts)
      in << nlohmann::json{{"ids", p}}.dump() << "\n";
  }
  const std::string base = std::string(TAILOR_BINARY) + " generate --model " +
                           (dir / "model").string() + " --input " + (dir / "in.jsonl").string() +
                           " --batch-size 2 --max-new-tokens 9";

  auto check = [&](const std::string& flags, const GenerationConfig& config) {
    SCOPED_TRACE(flags);
    const auto [status, output] =
        tailor::test::run_command(base + " " + flags + " --output " + (dir / "out.jsonl").string());
    ASSERT_EQ(status, 0) << output;
    const auto lines = json_lines(dir / "out.jsonl");
    const auto expected = tailor::generate(*model, prompts, config);
    ASSERT_EQ(lines.size(), expected.size());
    for (size_t j = 0; j < lines.size(); ++j) {
      const auto& prompt = prompts[expected[j].prompt_index];
      EXPECT_EQ(lines[j].at("prompt").get<std::vector<int32_t>>(), prompt) << "line " << j;
      EXPECT_EQ(lines[j].at("ids").get<std::vector<int32_t>>(), expected[j].ids) << "line " << j;
      EXPECT_EQ(lines[j].at("finish_reason").get<std::string>(),
                tailor::finish_reason_name(expected[j].finish_reason));
      EXPECT_FALSE(lines[j].contains("completion"));  // no tokenizer in the directory
    }
  };
  check("", greedy(9));
  GenerationConfig config = sampled(9, 4, 1.3);
  config.top_k = 20;
  config.top_p = 0.9;
  config.num_return_sequences = 2;
  check("--temperature 1.3 --top-k 20 --top-p 0.9 --seed 4 --num-return-sequences 2", config);

  auto error_of = [&](const std::string& content) {
    tailor::write_file_atomic(dir / "bad.jsonl", content);
    const auto [status, output] = tailor::test::run_command(
        std::string(TAILOR_BINARY) + " generate --model " + (dir / "model").string() + " --input " +
        (dir / "bad.jsonl").string() + " --max-new-tokens 4");
    EXPECT_NE(status, 0) << output;
    return output;
  };
  const std::string where = (dir / "bad.jsonl").string();
  EXPECT_NE(error_of("{\"ids\": [1]}\n{\"ids\": [1, 2\n").find(where + ":2"), std::string::npos);
  EXPECT_NE(error_of("{\"ids\": [1]}\n\n{\"text\": \"a\"}\n").find(where + ":3"),
            std::string::npos);
  const std::string too_long = nlohmann::json{{"ids", std::vector<int>(61, 1)}}.dump();
  const std::string out = error_of("{\"ids\": [1]}\n" + too_long + "\n");
  EXPECT_NE(out.find(where + ":2"), std::string::npos) << out;
  EXPECT_NE(out.find("61 prompt tokens"), std::string::npos) << out;
  EXPECT_NE(error_of("{\"prompt\": \"hi\"}\n").find("tokenizer"), std::string::npos);
  fs::remove_all(dir);
}

// A text prompt goes through the tokenizer as HF's tokenizer(text) does: for Mistral, <s> first.
// The completion is the generated ids decoded with special tokens skipped.
TEST(GenerateCli, TextPromptsGetTheTokenizersBos) {
  const fs::path dir = fs::temp_directory_path() / "tailor_generate_cli_mistral";
  fs::remove_all(dir);
  fs::create_directories(dir / "model");
  nlohmann::json config = generation_families()[1].config;
  config["vocab_size"] = 32000;
  CausalLM model = spread_model(config, 22);
  tailor::save_pretrained(dir / "model", *model);
  const fs::path tokenizer_dir = fs::path(TAILOR_SOURCE_DIR) / "assets" / "tokenizers" / "mistral";
  for (const char* file : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(tokenizer_dir / file, dir / "model" / file);
  const tailor::Tokenizer tokenizer = tailor::Tokenizer::from_dir(dir / "model");

  const std::string text = "The capital of France is";
  const std::vector<int32_t> plain = tokenizer.encode(text);
  std::vector<int32_t> with_bos = {1};
  with_bos.insert(with_bos.end(), plain.begin(), plain.end());
  ASSERT_EQ(tokenizer.encode_hf(text), with_bos);
  const auto expected = tailor::generate(*model, {with_bos}, greedy(6));
  // The BOS matters to this model, so the comparison below tells the two apart.
  ASSERT_NE(tailor::generate(*model, {plain}, greedy(6))[0].ids, expected[0].ids);

  tailor::write_file_atomic(dir / "in.jsonl", nlohmann::json{{"prompt", text}}.dump() + "\n");
  const auto [status, output] = tailor::test::run_command(
      std::string(TAILOR_BINARY) + " generate --model " + (dir / "model").string() + " --input " +
      (dir / "in.jsonl").string() + " --max-new-tokens 6 --output " + (dir / "out.jsonl").string());
  ASSERT_EQ(status, 0) << output;
  const auto lines = json_lines(dir / "out.jsonl");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].at("prompt").get<std::string>(), text);
  EXPECT_EQ(lines[0].at("ids").get<std::vector<int32_t>>(), expected[0].ids);
  EXPECT_EQ(lines[0].at("completion").get<std::string>(),
            tokenizer.decode(expected[0].ids, /*skip_special_tokens=*/true));
  EXPECT_EQ(lines[0].at("finish_reason").get<std::string>(),
            tailor::finish_reason_name(expected[0].finish_reason));
  fs::remove_all(dir);
}

}  // namespace
