// Mistral against the independent float64 reference (tests/mistral_reference.cpp): forward in
// float32/float64/bfloat16 (GQA, multi-head, sliding window, explicit head_dim, padding,
// position_ids), the KV cache, LoRA with PEFT adapter files, HF checkpoint files, config.json and
// error messages.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "common/atomic_file.h"
#include "common/error.h"
#include "gpt2_reference.h"
#include "mistral_reference.h"
#include "models/core/lora.h"
#include "models/io/hf_checkpoint.h"
#include "models/io/peft.h"
#include "models/io/pretrained.h"
#include "models/io/safetensors.h"
#include "models/mistral/mistral.h"
#include "models/registry.h"
#include "test_support.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;

MistralConfig small_mistral_config(int64_t layers, int64_t heads, int64_t kv_heads, int64_t hidden,
                                   int64_t vocab, int64_t intermediate) {
  MistralConfig config;
  config.vocab_size = vocab;
  config.hidden_size = hidden;
  config.intermediate_size = intermediate;
  config.num_hidden_layers = layers;
  config.num_attention_heads = heads;
  config.num_key_value_heads = kv_heads;
  config.max_position_embeddings = 64;
  config.rms_norm_eps = 1e-5;
  config.sliding_window = std::nullopt;
  return config;
}

// HF generate's position_ids for left padding: cumsum(mask) - 1, clamped at 0.
std::vector<int64_t> positions_from_mask(const std::vector<int64_t>& mask, int64_t B, int64_t T) {
  std::vector<int64_t> positions(B * T);
  for (int64_t b = 0; b < B; ++b) {
    int64_t seen = 0;
    for (int64_t t = 0; t < T; ++t) {
      seen += mask[b * T + t];
      positions[b * T + t] = std::max<int64_t>(seen - 1, 0);
    }
  }
  return positions;
}

// The logits rows [V] of real (mask 1) positions only: padding positions carry no meaning.
std::vector<double> real_rows(const std::vector<double>& logits, const std::vector<int64_t>& mask,
                              int64_t V) {
  if (mask.empty()) return logits;
  std::vector<double> out;
  for (size_t row = 0; row < mask.size(); ++row) {
    if (mask[row] == 0) continue;
    out.insert(out.end(), logits.begin() + static_cast<int64_t>(row) * V,
               logits.begin() + static_cast<int64_t>(row + 1) * V);
  }
  return out;
}

MistralForCausalLM loaded_mistral(const MistralConfig& config, const TensorMap& weights,
                                  at::ScalarType dtype = at::kFloat) {
  MistralForCausalLM model(config, /*init_weights=*/false);
  model->to(dtype);
  model->load_hf_state_dict(weights);  // float64 tensors are converted to the model's dtype
  model->eval();
  return model;
}

// ---- forward against the reference ---------------------------------------------------------

struct MistralForwardCase {
  std::string name;
  MistralConfig config;
  int64_t B, T;
  std::vector<int64_t> mask;       // empty = none
  std::vector<int64_t> positions;  // empty = default
};

std::vector<MistralForwardCase> mistral_forward_cases() {
  std::vector<MistralForwardCase> cases;
  cases.push_back({"MultiHeadOneLayer", small_mistral_config(1, 2, 2, 32, 100, 48), 2, 5, {}, {}});
  cases.push_back(
      {"GroupedQueryTwoLayers", small_mistral_config(2, 4, 2, 32, 150, 64), 2, 6, {}, {}});
  MistralConfig window = small_mistral_config(2, 4, 1, 32, 100, 64);
  window.sliding_window = 3;  // shorter than the sequence: keys 3+ back are hidden
  cases.push_back({"MultiQuerySlidingWindow3", window, 2, 9, {}, {}});
  MistralConfig head_dim = small_mistral_config(2, 4, 2, 32, 100, 40);
  head_dim.head_dim = 12;  // H D = 48 != C = 32
  head_dim.rope_theta = 1e6;
  head_dim.rms_norm_eps = 1e-6;
  cases.push_back({"ExplicitHeadDim12RopeTheta1e6", head_dim, 1, 7, {}, {}});
  const std::vector<int64_t> left_pad = {0, 0, 0, 1, 1, 1, 1,  //
                                         1, 1, 1, 1, 1, 1, 1,  //
                                         0, 1, 1, 1, 1, 1, 1};
  MistralConfig padded = small_mistral_config(2, 4, 2, 32, 120, 64);
  padded.sliding_window = 4;
  cases.push_back({"LeftPaddingPositionIdsWindow4", padded, 3, 7, left_pad,
                   positions_from_mask(left_pad, 3, 7)});
  MistralConfig tied = small_mistral_config(2, 2, 1, 16, 60, 24);
  tied.tie_word_embeddings = true;
  tied.sliding_window = 1;  // each token sees itself only
  cases.push_back({"TiedEmbeddingsWindow1RightPadding", tied, 2, 4, {1, 1, 1, 1, 1, 1, 0, 0}, {}});
  cases.push_back({"ExplicitPositionIds",
                   small_mistral_config(2, 4, 2, 32, 80, 64),
                   2,
                   4,
                   {},
                   {3, 4, 5, 6, 0, 2, 4, 9}});
  return cases;
}

void PrintTo(const MistralForwardCase& c, std::ostream* os) {
  *os << c.name;
}

class MistralForward : public ::testing::TestWithParam<MistralForwardCase> {
 protected:
  // Logits of tailor's model in `dtype` for this case, as doubles, and the reference's.
  void run(at::ScalarType dtype, uint64_t seed, std::vector<double>& actual,
           std::vector<double>& expected) {
    const MistralForwardCase& c = GetParam();
    const TensorMap weights = reference::random_mistral_weights(c.config, seed);
    MistralForCausalLM model = loaded_mistral(c.config, weights, dtype);
    const auto ids = test::random_ids(c.B * c.T, c.config.vocab_size, seed + 1);
    const at::Tensor mask = c.mask.empty() ? at::Tensor() : test::as_tensor(c.mask, c.B, c.T);
    const at::Tensor positions =
        c.positions.empty() ? at::Tensor() : test::as_tensor(c.positions, c.B, c.T);
    torch::NoGradGuard no_grad;
    const at::Tensor logits = model->forward(test::as_tensor(ids, c.B, c.T), mask, positions);
    ASSERT_EQ(logits.scalar_type(), dtype);
    ASSERT_EQ(logits.sizes(), (at::IntArrayRef{c.B, c.T, c.config.vocab_size}));
    // The reference sees the weights as the model holds them (rounded for bfloat16).
    TensorMap rounded;
    for (const auto& [name, tensor] : weights)
      rounded[name] = tensor.to(dtype);
    const int64_t V = c.config.vocab_size;
    actual = real_rows(reference::to_doubles(logits), c.mask, V);
    expected =
        real_rows(reference::mistral_logits(c.config, rounded, ids, c.B, c.T, c.mask, c.positions),
                  c.mask, V);
  }
};

TEST_P(MistralForward, Float32MatchesFloat64Reference) {
  std::vector<double> actual, expected;
  run(at::kFloat, 21, actual, expected);
  EXPECT_LT(reference::relative_error(actual, expected), 1e-5);
  const int64_t V = GetParam().config.vocab_size;
  EXPECT_LT(reference::max_abs_diff(reference::log_softmax_rows(actual, V),
                                    reference::log_softmax_rows(expected, V)),
            1e-4);
}

TEST_P(MistralForward, Float64MatchesFloat64Reference) {
  std::vector<double> actual, expected;
  run(at::kDouble, 22, actual, expected);
  EXPECT_LT(reference::relative_error(actual, expected), 1e-12);
}

TEST_P(MistralForward, BFloat16CloseToFloat64Reference) {
  std::vector<double> actual, expected;
  run(at::kBFloat16, 23, actual, expected);
  EXPECT_LT(reference::relative_error(actual, expected), 3e-2);
}

INSTANTIATE_TEST_SUITE_P(Shapes, MistralForward, ::testing::ValuesIn(mistral_forward_cases()),
                         [](const auto& info) { return info.param.name; });

// ---- KV cache -------------------------------------------------------------------------------

// Prefill and decode in chunks (`chunks` sum to T), each call passing the mask so far [B, S] and
// the new tokens' positions; the concatenated logits must equal one full forward.
void expect_cache_matches_full_forward(at::ScalarType dtype, double tolerance) {
  MistralConfig config = small_mistral_config(2, 4, 2, 32, 90, 64);
  config.sliding_window = 3;  // the window slides during decoding
  const int64_t B = 2, T = 9;
  const std::vector<int64_t> mask = {0, 0, 1, 1, 1, 1, 1, 1, 1,  //
                                     1, 1, 1, 1, 1, 1, 1, 1, 1};
  const auto positions = positions_from_mask(mask, B, T);
  const TensorMap weights = reference::random_mistral_weights(config, 31);
  MistralForCausalLM model = loaded_mistral(config, weights, dtype);
  const auto ids = test::random_ids(B * T, config.vocab_size, 32);
  const at::Tensor ids_t = test::as_tensor(ids, B, T), mask_t = test::as_tensor(mask, B, T),
                   positions_t = test::as_tensor(positions, B, T);
  torch::NoGradGuard no_grad;
  const at::Tensor full = model->forward(ids_t, mask_t, positions_t);

  KvCache cache(config.num_hidden_layers);
  std::vector<at::Tensor> pieces;
  int64_t start = 0;
  for (int64_t chunk : {4, 2, 1, 1, 1}) {
    EXPECT_EQ(cache.length(), start);
    pieces.push_back(model->forward(ids_t.narrow(1, start, chunk),
                                    mask_t.narrow(1, 0, start + chunk),
                                    positions_t.narrow(1, start, chunk), &cache));
    start += chunk;
  }
  ASSERT_EQ(start, T);
  EXPECT_EQ(cache.length(), T);
  const int64_t V = config.vocab_size;
  const auto stepped = real_rows(reference::to_doubles(at::cat(pieces, 1)), mask, V);
  EXPECT_LT(reference::max_abs_diff(stepped, real_rows(reference::to_doubles(full), mask, V)),
            tolerance);
  // And both agree with the reference.
  const auto expected =
      real_rows(reference::mistral_logits(config, weights, ids, B, T, mask, positions), mask, V);
  EXPECT_LT(reference::relative_error(stepped, expected), dtype == at::kDouble ? 1e-12 : 1e-5);
}

TEST(MistralKvCache, ChunkedPrefillAndStepsMatchFullForwardFloat32) {
  expect_cache_matches_full_forward(at::kFloat, 1e-4);
}

TEST(MistralKvCache, ChunkedPrefillAndStepsMatchFullForwardFloat64) {
  expect_cache_matches_full_forward(at::kDouble, 1e-12);
}

TEST(MistralKvCache, DefaultPositionsContinueFromTheCache) {
  // Without position_ids or a mask, a cached call uses positions P .. S-1.
  const MistralConfig config = small_mistral_config(1, 2, 1, 16, 50, 32);
  MistralForCausalLM model = loaded_mistral(config, reference::random_mistral_weights(config, 33));
  const at::Tensor ids = test::as_tensor(test::random_ids(6, 50, 34), 1, 6);
  torch::NoGradGuard no_grad;
  const at::Tensor full = model->forward(ids);
  KvCache cache(1);
  model->forward(ids.narrow(1, 0, 5), {}, {}, &cache);
  const at::Tensor last = model->forward(ids.narrow(1, 5, 1), {}, {}, &cache);
  EXPECT_LT((last[0][0] - full[0][5]).abs().max().item<double>(), 1e-5);
}

// ---- model structure ------------------------------------------------------------------------

TEST(MistralModel, ParameterNamesAndShapesAreHuggingFaces) {
  MistralConfig config = small_mistral_config(2, 4, 2, 32, 50, 40);
  config.head_dim = 6;
  MistralForCausalLM model(config);
  std::vector<std::string> expected = {"model.embed_tokens.weight"};
  for (const char* layer : {"0", "1"}) {
    const std::string p = std::string("model.layers.") + layer + ".";
    for (const char* name :
         {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
          "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
          "mlp.down_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight"}) {
      expected.push_back(p + name);
    }
  }
  expected.push_back("model.norm.weight");
  expected.push_back("lm_head.weight");
  std::vector<std::string> actual;
  for (const auto& item : model->named_parameters())
    actual.push_back(item.key());
  EXPECT_EQ(actual, expected);
  const auto p = model->named_parameters();
  EXPECT_EQ(p["model.embed_tokens.weight"].sizes(), (at::IntArrayRef{50, 32}));
  EXPECT_EQ(p["model.layers.1.self_attn.q_proj.weight"].sizes(), (at::IntArrayRef{24, 32}));
  EXPECT_EQ(p["model.layers.1.self_attn.k_proj.weight"].sizes(), (at::IntArrayRef{12, 32}));
  EXPECT_EQ(p["model.layers.1.self_attn.v_proj.weight"].sizes(), (at::IntArrayRef{12, 32}));
  EXPECT_EQ(p["model.layers.1.self_attn.o_proj.weight"].sizes(), (at::IntArrayRef{32, 24}));
  EXPECT_EQ(p["model.layers.0.mlp.gate_proj.weight"].sizes(), (at::IntArrayRef{40, 32}));
  EXPECT_EQ(p["model.layers.0.mlp.down_proj.weight"].sizes(), (at::IntArrayRef{32, 40}));
  EXPECT_EQ(p["lm_head.weight"].sizes(), (at::IntArrayRef{50, 32}));
}

TEST(MistralModel, CausalLMInterfaceReportsTheConfig) {
  MistralConfig config = small_mistral_config(3, 4, 2, 32, 70, 40);
  config.pad_token_id = 0;
  config.bos_token_id = std::nullopt;
  const CausalLM model = std::make_shared<MistralForCausalLMImpl>(config);
  EXPECT_EQ(model->model_type(), "mistral");
  EXPECT_EQ(model->vocab_size(), 70);
  EXPECT_EQ(model->hidden_size(), 32);
  EXPECT_EQ(model->num_layers(), 3);
  EXPECT_EQ(model->max_positions(), 64);
  EXPECT_FALSE(model->bos_token_id().has_value());
  EXPECT_EQ(model->eos_token_id(), std::optional<int64_t>(2));
  EXPECT_EQ(model->pad_token_id(), std::optional<int64_t>(0));
  EXPECT_EQ(model->dtype(), at::kFloat);
  EXPECT_EQ(model->blocks()->size(), 3u);
  EXPECT_EQ(model->linear_layout(), WeightLayout::kLinear);
  EXPECT_EQ(model->lora_target_names(),
            (std::vector<std::string>{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                      "up_proj", "down_proj", "lm_head"}));
  EXPECT_EQ(model->token_embedding_weight().sizes(), (at::IntArrayRef{70, 32}));
}

TEST(MistralModel, TiedEmbeddingsHaveNoLmHead) {
  MistralConfig config = small_mistral_config(1, 2, 2, 16, 40, 24);
  config.tie_word_embeddings = true;
  TensorMap weights = reference::random_mistral_weights(config, 41);
  weights["lm_head.weight"] = torch::zeros({40, 16}, torch::kDouble);  // ignored, as HF does
  MistralForCausalLM model = loaded_mistral(config, weights);
  EXPECT_FALSE(model->named_parameters().contains("lm_head.weight"));
  EXPECT_EQ(model->hf_parameter_name("lm_head.weight"), "");
  EXPECT_FALSE(model->hf_state_dict().count("lm_head.weight"));
  const auto targets = model->lora_target_names();
  EXPECT_EQ(std::find(targets.begin(), targets.end(), "lm_head"), targets.end());
  torch::NoGradGuard no_grad;
  const at::Tensor ids = test::as_tensor(test::random_ids(4, 40, 42), 1, 4);
  const at::Tensor hidden = model->hidden_states(ids);
  const at::Tensor logits = model->lm_logits(hidden);
  double dot = 0;
  for (int64_t c = 0; c < 16; ++c) {
    dot += hidden[0][2][c].item<double>() *
           weights.at("model.embed_tokens.weight")[9][c].item<double>();
  }
  EXPECT_NEAR(logits[0][2][9].item<double>(), dot, 1e-5);
}

TEST(MistralModel, HiddenStatesAreTheFinalRmsNormOutput) {
  const MistralConfig config = small_mistral_config(1, 2, 2, 16, 40, 24);
  const TensorMap weights = reference::random_mistral_weights(config, 43);
  MistralForCausalLM model = loaded_mistral(config, weights);
  torch::NoGradGuard no_grad;
  const at::Tensor hidden =
      model->hidden_states(test::as_tensor(test::random_ids(10, 40, 44), 2, 5));
  ASSERT_EQ(hidden.sizes(), (at::IntArrayRef{2, 5, 16}));
  // hidden / weight has unit root-mean-square (up to eps = 1e-5).
  const at::Tensor normalized = hidden / weights.at("model.norm.weight").to(at::kFloat);
  const at::Tensor rms = normalized.pow(2).mean(-1).sqrt();
  EXPECT_LT((rms - 1).abs().max().item<double>(), 1e-3);
}

TEST(MistralModel, Mistral7bShapesGiveTheReleasedParameterCount) {
  // HF's MistralForCausalLM(Mistral-7B-v0.1).num_parameters() = 7,241,732,096. Built with one
  // layer (weights left unset, so the pages are never touched): outer + 32 x layer.
  MistralConfig config = mistral_7b();
  config.num_hidden_layers = 1;
  MistralForCausalLM model(config, /*init_weights=*/false);
  int64_t total = 0, layer = 0;
  for (const auto& item : model->named_parameters()) {
    total += item.value().numel();
    if (item.key().rfind("model.layers.0.", 0) == 0) layer += item.value().numel();
  }
  EXPECT_EQ(layer, 218112000);
  EXPECT_EQ(total + 31 * layer, 7241732096LL);
}

TEST(MistralModel, InitWeightsFollowsHuggingFace) {
  MistralConfig config = small_mistral_config(2, 4, 2, 64, 400, 128);
  config.pad_token_id = 3;
  torch::manual_seed(0);
  MistralForCausalLM model(config);
  const auto p = model->named_parameters();
  for (const char* name : {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                           "model.layers.1.mlp.down_proj.weight", "lm_head.weight"}) {
    EXPECT_NEAR(p[name].std().item<double>(), 0.02, 0.0015) << name;
    EXPECT_NEAR(p[name].mean().item<double>(), 0.0, 0.002) << name;
  }
  EXPECT_TRUE(p["model.embed_tokens.weight"][3].eq(0).all().item<bool>());  // padding_idx row
  EXPECT_FALSE(p["model.embed_tokens.weight"][4].eq(0).all().item<bool>());
  EXPECT_TRUE(p["model.norm.weight"].eq(1).all().item<bool>());
  EXPECT_TRUE(p["model.layers.1.post_attention_layernorm.weight"].eq(1).all().item<bool>());
  torch::manual_seed(0);
  MistralForCausalLM again(config);
  EXPECT_TRUE(again->named_parameters()["model.layers.1.self_attn.v_proj.weight"].equal(
      p["model.layers.1.self_attn.v_proj.weight"]));
}

TEST(MistralModel, AttentionDropoutOnlyInTrainMode) {
  MistralConfig config = small_mistral_config(2, 2, 1, 16, 40, 24);
  const TensorMap weights = reference::random_mistral_weights(config, 45);
  MistralConfig dropping = config;
  dropping.attention_dropout = 0.3;
  MistralForCausalLM model = loaded_mistral(dropping, weights);
  const auto ids = test::random_ids(6, 40, 46);
  const at::Tensor x = test::as_tensor(ids, 1, 6);
  torch::NoGradGuard no_grad;
  model->train();
  EXPECT_FALSE(model->forward(x).equal(model->forward(x)));
  model->eval();
  EXPECT_LT(reference::relative_error(reference::to_doubles(model->forward(x)),
                                      reference::mistral_logits(config, weights, ids, 1, 6)),
            1e-5);
}

class HookRecorder : public ForwardHooks {
 public:
  void enter(int group, const at::Tensor&) override {
    calls.push_back("enter " + std::to_string(group));
  }
  void exit(int group, const at::Tensor&) override {
    calls.push_back("exit " + std::to_string(group));
  }
  std::vector<std::string> calls;
};

TEST(MistralModel, HookGroupsCoverEveryParameterAndWrapEachLayer) {
  const MistralConfig config = small_mistral_config(2, 2, 1, 16, 40, 24);
  MistralForCausalLM model(config);
  apply_lora(*model, LoraConfig{2, 4, 0.0, false, {"q_proj", "down_proj"}});
  const auto groups = model->hook_groups();
  ASSERT_EQ(groups.size(), 3u);
  std::set<std::string> seen;
  for (size_t g = 0; g < groups.size(); ++g) {
    for (const auto& name : groups[g]) {
      EXPECT_TRUE(seen.insert(name).second) << name << " in two groups";
      if (g == 0) {
        EXPECT_EQ(name.find("model.layers."), std::string::npos) << name;
      } else {
        EXPECT_EQ(name.rfind("model.layers." + std::to_string(g - 1) + ".", 0), 0u) << name;
      }
    }
  }
  EXPECT_EQ(seen.size(), model->named_parameters().size());
  EXPECT_TRUE(seen.count("model.layers.1.self_attn.q_proj.lora_B.weight"));
  model->eval();
  auto recorder = std::make_shared<HookRecorder>();
  model->set_forward_hooks(recorder);
  const at::Tensor ids = test::as_tensor(test::random_ids(6, 40, 47), 2, 3);
  const std::vector<std::string> order = {"enter 0", "enter 1", "exit 1",
                                          "enter 2", "exit 2",  "exit 0"};
  const at::Tensor hidden_with_hooks = model->hidden_states(ids);
  EXPECT_EQ(recorder->calls, order);
  recorder->calls.clear();
  const at::Tensor logits_with_hooks = model->forward(ids);  // lm_head inside group 0
  EXPECT_EQ(recorder->calls, order);
  model->set_forward_hooks(nullptr);
  recorder->calls.clear();
  EXPECT_TRUE(model->hidden_states(ids).equal(hidden_with_hooks));  // hooks observe only
  EXPECT_TRUE(model->forward(ids).equal(logits_with_hooks));
  EXPECT_TRUE(recorder->calls.empty());
}

TEST(MistralModel, BadInputsAreErrorsSayingWhatIsWrong) {
  const MistralConfig config = small_mistral_config(2, 2, 1, 16, 40, 24);  // max positions 64
  MistralForCausalLM model(config);
  torch::NoGradGuard no_grad;
  EXPECT_NE(test::error_of([&] {
              model->forward(torch::zeros({1, 65}, torch::kLong));
            }).find("[mistral] sequence length 65 exceeds max_position_embeddings 64"),
            std::string::npos);
  KvCache cache(2);
  model->forward(torch::zeros({1, 60}, torch::kLong), {}, {}, &cache);
  EXPECT_NE(test::error_of([&] {
              model->forward(torch::zeros({1, 5}, torch::kLong), {}, {}, &cache);
            }).find("sequence length 65 (60 cached + 5 new) exceeds max_position_embeddings 64"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              model->forward(torch::tensor({3, 40}, torch::kLong).view({1, 2}));
            }).find("token id 40 is outside the vocabulary [0, 40)"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              model->forward(torch::zeros({2, 3}, torch::kLong), torch::ones({2, 4}, torch::kLong));
            }).find("attention_mask shape [2, 4] does not match [B, P + T] = [2, 3]"),
            std::string::npos);
  EXPECT_NE(
      test::error_of([&] {
        model->forward(torch::zeros({2, 3}, torch::kLong), {}, torch::zeros({2, 2}, torch::kLong));
      }).find("position_ids shape [2, 2] does not match input_ids [2, 3]"),
      std::string::npos);
  KvCache wrong(3);
  EXPECT_NE(test::error_of([&] {
              model->forward(torch::zeros({1, 2}, torch::kLong), {}, {}, &wrong);
            }).find("the KV cache has 3 layers, the model 2"),
            std::string::npos);
}

// ---- state dicts ----------------------------------------------------------------------------

TEST(MistralStateDict, LoadsKeysWithAndWithoutModelPrefixIgnoringRotaryBuffers) {
  const MistralConfig config = small_mistral_config(2, 2, 1, 16, 30, 24);
  const TensorMap weights = reference::random_mistral_weights(config, 51);
  TensorMap old_style;  // a MistralModel-style checkpoint plus old inv_freq buffers
  for (const auto& [name, tensor] : weights) {
    old_style[name.rfind("model.", 0) == 0 ? name.substr(6) : name] = tensor;
  }
  old_style["layers.0.self_attn.rotary_emb.inv_freq"] = torch::ones({4});
  old_style["model.layers.1.self_attn.rotary_emb.inv_freq"] = torch::ones({4});
  old_style["model.rotary_emb.inv_freq"] = torch::ones({4});
  MistralForCausalLM model(config);
  model->load_hf_state_dict(old_style);
  const auto params = model->named_parameters();
  for (const auto& [name, tensor] : weights)
    EXPECT_TRUE(params[name].equal(tensor.to(at::kFloat))) << name;
  EXPECT_EQ(model->hf_parameter_name("layers.3.mlp.up_proj.weight"),
            "model.layers.3.mlp.up_proj.weight");
}

TEST(MistralStateDict, MissingTensorErrorNamesSourceAndKey) {
  const MistralConfig config = small_mistral_config(2, 2, 1, 16, 30, 24);
  TensorMap weights = reference::random_mistral_weights(config, 52);
  weights.erase("model.layers.1.mlp.up_proj.weight");
  MistralForCausalLM model(config);
  EXPECT_NE(test::error_of([&] { model->load_hf_state_dict(weights, "ckpt/model.safetensors"); })
                .find("[mistral] ckpt/model.safetensors: missing key(s) "
                      "model.layers.1.mlp.up_proj.weight"),
            std::string::npos);
}

TEST(MistralStateDict, WrongShapeNamesKeyAndBothShapesAndLeavesModelUntouched) {
  const MistralConfig config = small_mistral_config(1, 4, 2, 16, 30, 24);
  TensorMap weights = reference::random_mistral_weights(config, 53);
  weights["model.layers.0.self_attn.k_proj.weight"] = torch::zeros({16, 16});  // MHA-sized
  MistralForCausalLM model(config);
  const at::Tensor before = model->model->embed_tokens->weight.clone();
  EXPECT_NE(test::error_of([&] { model->load_hf_state_dict(weights, "dir"); })
                .find("[mistral] dir: model.layers.0.self_attn.k_proj.weight has shape [16, 16], "
                      "the model expects [8, 16]"),
            std::string::npos);
  EXPECT_TRUE(model->model->embed_tokens->weight.equal(before));
}

TEST(MistralStateDict, UnexpectedKeyIsAnErrorNamingIt) {
  const MistralConfig config = small_mistral_config(1, 2, 1, 16, 30, 24);
  TensorMap weights = reference::random_mistral_weights(config, 54);
  weights["model.layers.0.self_attn.q_proj.bias"] = torch::zeros({16});
  MistralForCausalLM model(config);
  EXPECT_NE(test::error_of([&] {
              model->load_hf_state_dict(weights, "x");
            }).find("x: unexpected key(s) model.layers.0.self_attn.q_proj.bias"),
            std::string::npos);
}

TEST(MistralStateDict, HfStateDictHoldsExactlyTheBaseWeights) {
  const MistralConfig config = small_mistral_config(2, 2, 1, 16, 30, 24);
  const TensorMap weights = reference::random_mistral_weights(config, 55);
  MistralForCausalLM model = loaded_mistral(config, weights);
  apply_lora(*model, LoraConfig{2, 4, 0.0, false, {"v_proj"}});
  const TensorMap out = model->hf_state_dict();
  ASSERT_EQ(out.size(), weights.size());
  for (const auto& [name, tensor] : weights) {
    ASSERT_TRUE(out.count(name)) << name;
    EXPECT_TRUE(out.at(name).equal(tensor.to(at::kFloat))) << name;
  }
}

// ---- checkpoint files -----------------------------------------------------------------------

// config.json + weights as an HF directory (what save_pretrained writes), then back through the
// registry: causal_lm_from_config + hf::load_state_dict.
void save_dir(const fs::path& dir, const CausalLMImpl& model, at::ScalarType file_dtype,
              uint64_t max_shard_bytes) {
  write_file_atomic(dir / "config.json", model.hf_config(file_dtype).dump(2) + "\n");
  TensorMap tensors;
  for (const auto& [name, tensor] : model.hf_state_dict())
    tensors[name] = tensor.to(file_dtype);
  hf::save_state_dict(dir, tensors, max_shard_bytes);
}

CausalLM load_dir(const fs::path& dir) {
  const fs::path config_path = dir / "config.json";
  const auto json = nlohmann::json::parse(read_file(config_path));
  CausalLM model = causal_lm_from_config(json, config_path.string(), /*init_weights=*/false);
  model->load_hf_state_dict(hf::load_state_dict(dir), dir.string());
  model->eval();
  return model;
}

TEST(MistralCheckpoint, RoundTripsSingleFileAndShardedF32) {
  MistralConfig config = small_mistral_config(2, 4, 2, 32, 100, 48);
  config.sliding_window = 5;
  config.head_dim = 10;
  const TensorMap weights = reference::random_mistral_weights(config, 61);
  MistralForCausalLM model = loaded_mistral(config, weights);
  const at::Tensor ids = test::as_tensor(test::random_ids(12, 100, 62), 2, 6);
  torch::NoGradGuard no_grad;
  const at::Tensor logits = model->forward(ids);
  for (uint64_t max_shard : {uint64_t{5'000'000'000ULL}, uint64_t{20'000}}) {
    const fs::path dir = test::fresh_process_dir("mistral_f32_" + std::to_string(max_shard));
    save_dir(dir, *model, at::kFloat, max_shard);
    const bool sharded = max_shard < 1'000'000;
    EXPECT_EQ(fs::exists(dir / "model.safetensors.index.json"), sharded);
    EXPECT_EQ(fs::exists(dir / "model.safetensors"), !sharded);
    const CausalLM back = load_dir(dir);
    EXPECT_EQ(back->model_type(), "mistral");
    const auto params = back->named_parameters();
    for (const auto& [name, tensor] : weights)
      EXPECT_TRUE(params[name].equal(tensor.to(at::kFloat))) << name;
    EXPECT_TRUE(back->forward(ids).equal(logits));
    fs::remove_all(dir);
  }
}

TEST(MistralCheckpoint, BFloat16FileLoadsIntoFloat32AsRoundedWeights) {
  const MistralConfig config = small_mistral_config(2, 2, 1, 16, 60, 24);
  const TensorMap weights = reference::random_mistral_weights(config, 63);
  MistralForCausalLM model = loaded_mistral(config, weights);
  const fs::path dir = test::fresh_process_dir("mistral_bf16");
  save_dir(dir, *model, at::kBFloat16, 5'000'000'000ULL);
  const auto json = nlohmann::json::parse(read_file(dir / "config.json"));
  EXPECT_EQ(json.at("torch_dtype"), "bfloat16");
  EXPECT_EQ(safetensors::Reader(dir / "model.safetensors").info("lm_head.weight").dtype, "BF16");
  const CausalLM back = load_dir(dir);  // a float32 model
  EXPECT_EQ(back->dtype(), at::kFloat);
  const auto params = back->named_parameters();
  for (const auto& [name, tensor] : weights) {
    EXPECT_TRUE(params[name].equal(tensor.to(at::kFloat).to(at::kBFloat16).to(at::kFloat))) << name;
  }
  fs::remove_all(dir);
}

// ---- config.json ----------------------------------------------------------------------------

// mistralai/Mistral-7B-v0.1/config.json as published.
const char* kMistral7bV01Config = R"({
  "architectures": ["MistralForCausalLM"],
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 32768,
  "model_type": "mistral",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "sliding_window": 4096,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.34.0.dev0",
  "use_cache": true,
  "vocab_size": 32000
})";

TEST(MistralConfigJson, ReadsTheReleasedV01ConfigAsThePreset) {
  const MistralConfig config =
      MistralConfig::from_json(nlohmann::json::parse(kMistral7bV01Config), "config.json");
  EXPECT_EQ(config.attention_head_dim(), 128);
  EXPECT_EQ(config.sliding_window, std::optional<int64_t>(4096));
  EXPECT_EQ(config.to_json(), mistral_7b().to_json());
  EXPECT_EQ(preset_config("mistral-7b"), mistral_7b().to_json());
}

TEST(MistralConfigJson, ReadsNullWindowNestedRopeThetaAndNullKvHeads) {
  auto json = nlohmann::json::parse(kMistral7bV01Config);
  json["sliding_window"] = nullptr;  // v0.2 and later
  json.erase("rope_theta");
  json["rope_parameters"] = {{"rope_theta", 1000000.0}, {"rope_type", "default"}};
  json.erase("torch_dtype");
  json["dtype"] = "float16";
  MistralConfig config = MistralConfig::from_json(json, "c.json");
  EXPECT_FALSE(config.sliding_window.has_value());
  EXPECT_EQ(config.rope_theta, 1e6);
  EXPECT_EQ(config.torch_dtype, "float16");
  EXPECT_TRUE(config.to_json().at("sliding_window").is_null());
  // num_key_value_heads: null means one per query head; absent means HF's default 8.
  json["num_key_value_heads"] = nullptr;
  EXPECT_EQ(MistralConfig::from_json(json, "c.json").num_key_value_heads, 32);
  json.erase("num_key_value_heads");
  EXPECT_EQ(MistralConfig::from_json(json, "c.json").num_key_value_heads, 8);
  // rope_scaling of the default type (or null) is plain RoPE.
  json["rope_scaling"] = nullptr;
  EXPECT_EQ(MistralConfig::from_json(json, "c.json").rope_theta, 1e6);
}

TEST(MistralConfigJson, ToJsonRoundTripsAndHasTransformersFields) {
  MistralConfig config = mistral_tiny();
  config.head_dim = 8;
  config.sliding_window = 128;
  config.pad_token_id = 0;
  config.eos_token_id = std::nullopt;
  config.tie_word_embeddings = true;
  const auto json = config.to_json();
  EXPECT_EQ(json.at("model_type"), "mistral");
  EXPECT_EQ(json.at("architectures"), nlohmann::json::array({"MistralForCausalLM"}));
  EXPECT_EQ(json.at("head_dim"), 8);
  EXPECT_EQ(json.at("sliding_window"), 128);
  EXPECT_EQ(json.at("pad_token_id"), 0);
  EXPECT_TRUE(json.at("eos_token_id").is_null());
  EXPECT_EQ(json.at("hidden_act"), "silu");
  EXPECT_EQ(MistralConfig::from_json(json, "roundtrip").to_json(), json);
  // The model writes its weights' dtype.
  MistralForCausalLM model(config);
  EXPECT_EQ(model->hf_config(at::kBFloat16).at("torch_dtype"), "bfloat16");
  EXPECT_EQ(model->hf_config(at::kFloat).at("torch_dtype"), "float32");
}

TEST(MistralConfigJson, BadKeysAreErrorsNamingSourceAndKey) {
  const auto base = nlohmann::json::parse(kMistral7bV01Config);
  auto with = [&](const char* key, const nlohmann::json& value) {
    auto json = base;
    json[key] = value;
    return test::error_of([&] { MistralConfig::from_json(json, "run/config.json"); });
  };
  EXPECT_EQ(with("num_hidden_layers", "two"),
            "[config] run/config.json: num_hidden_layers: expected an integer, got \"two\"");
  EXPECT_EQ(with("hidden_act", "gelu"),
            "[config] run/config.json: hidden_act: unsupported \"gelu\" (tailor implements "
            "\"silu\")");
  EXPECT_EQ(with("num_key_value_heads", 5),
            "[config] run/config.json: num_attention_heads (32) must be divisible by "
            "num_key_value_heads (5)");
  EXPECT_EQ(with("head_dim", 7),
            "[config] run/config.json: head_dim (7) must be a positive even number for RoPE");
  EXPECT_EQ(with("sliding_window", 0), "[config] run/config.json: sliding_window (0) must be > 0");
  EXPECT_EQ(with("rope_theta", "big"),
            "[config] run/config.json: rope_theta: expected a number, got \"big\"");
  EXPECT_NE(with("rope_scaling", {{"type", "linear"}, {"factor", 2.0}})
                .find("run/config.json: rope_scaling.type: unsupported RoPE type \"linear\""),
            std::string::npos);
  EXPECT_NE(with("rope_parameters", {{"rope_type", "yarn"}, {"rope_theta", 1e6}})
                .find("run/config.json: rope_parameters.rope_type: unsupported RoPE type \"yarn\""),
            std::string::npos);
  EXPECT_EQ(with("rope_parameters", {{"rope_theta", 1e6}}),
            "[config] run/config.json: rope_theta (10000) disagrees with "
            "rope_parameters.rope_theta (1e+06)");
  EXPECT_EQ(with("model_type", "llama"),
            "[config] run/config.json: model_type: expected \"mistral\", got \"llama\"");
}

TEST(MistralRegistry, BuildsMistralFromConfigAndPresets) {
  const auto names = preset_names();
  for (const char* name : {"gpt2", "mistral-7b", "mistral-tiny"})
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
  const nlohmann::json tiny = preset_config("mistral-tiny");
  EXPECT_EQ(tiny.at("vocab_size"), 32000);
  EXPECT_EQ(tiny.at("hidden_size"), 64);
  EXPECT_EQ(tiny.at("num_key_value_heads"), 2);
  torch::manual_seed(1);
  const CausalLM model = causal_lm_from_config(tiny, "preset mistral-tiny", true);
  EXPECT_EQ(model->model_type(), "mistral");
  EXPECT_EQ(model->num_layers(), 2);
  EXPECT_EQ(model->max_positions(), 512);
  EXPECT_NE(std::dynamic_pointer_cast<MistralForCausalLMImpl>(model), nullptr);
  torch::NoGradGuard no_grad;
  EXPECT_EQ(model->forward(torch::tensor({1, 422, 31999}, torch::kLong).view({1, 3})).sizes(),
            (at::IntArrayRef{1, 3, 32000}));
}

TEST(MistralRegistry, UnknownModelTypeNamesSourceAndKey) {
  EXPECT_EQ(test::error_of([&] {
              causal_lm_from_config({{"model_type", "falcon"}}, "models/f/config.json", false);
            }),
            "[model] models/f/config.json: model_type: unsupported \"falcon\" (tailor has gpt2 "
            "and mistral)");
  auto json = nlohmann::json::parse(kMistral7bV01Config);
  json["rms_norm_eps"] = -1.0;
  EXPECT_EQ(test::error_of([&] { causal_lm_from_config(json, "m/config.json", false); }),
            "[config] m/config.json: rms_norm_eps (-1) must be a positive number");
}

// ---- LoRA and PEFT adapters -----------------------------------------------------------------

class MistralLora : public ::testing::TestWithParam<bool> {};  // param: rslora

TEST_P(MistralLora, PeftAdapterRoundTripMatchesReference) {
  const bool rslora = GetParam();
  MistralConfig config = small_mistral_config(2, 4, 2, 32, 80, 48);
  config.sliding_window = 4;
  const TensorMap weights = reference::random_mistral_weights(config, 71);
  MistralForCausalLM model = loaded_mistral(config, weights);
  LoraConfig lora;
  lora.rank = 4;
  lora.alpha = 6;
  lora.rslora = rslora;
  lora.targets = model->lora_target_names();  // the seven projections and lm_head
  const auto wrapped = apply_lora(*model, lora);
  EXPECT_EQ(wrapped.size(), 15u);
  EXPECT_EQ(wrapped.front(), "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(wrapped.back(), "lm_head");
  test::randomize_lora(*model, 72);
  const double scaling = rslora ? 6.0 / 2.0 : 6.0 / 4.0;

  const auto ids = test::random_ids(14, 80, 73);
  const at::Tensor ids_t = test::as_tensor(ids, 2, 7);
  torch::NoGradGuard no_grad;
  const at::Tensor logits = model->forward(ids_t);
  reference::MistralLoraAdapter adapter{peft_adapter_tensors(*model), scaling};
  const auto expected = reference::mistral_logits(config, weights, ids, 2, 7, {}, {}, &adapter);
  EXPECT_LT(reference::relative_error(reference::to_doubles(logits), expected), 1e-5);
  // The adapter matters: the base alone is far off.
  EXPECT_GT(reference::relative_error(reference::to_doubles(logits),
                                      reference::mistral_logits(config, weights, ids, 2, 7)),
            1e-2);

  const fs::path dir = test::fresh_process_dir(rslora ? "mistral_peft_rslora" : "mistral_peft");
  save_peft_adapter(dir, *model, lora, "mistral-test",
                    /*fan_in_fan_out=*/model->linear_layout() == WeightLayout::kConv1D);
  const auto adapter_config = nlohmann::json::parse(read_file(dir / "adapter_config.json"));
  EXPECT_EQ(adapter_config.at("fan_in_fan_out"), false);
  EXPECT_EQ(adapter_config.at("use_rslora"), rslora);
  EXPECT_EQ(adapter_config.at("r"), 4);
  EXPECT_EQ(adapter_config.at("target_modules"), nlohmann::json(lora.targets));
  const safetensors::Reader file(dir / "adapter_model.safetensors");
  std::vector<std::string> expected_keys = {"base_model.model.lm_head.lora_A.weight",
                                            "base_model.model.lm_head.lora_B.weight"};
  for (const char* layer : {"0", "1"}) {
    for (const char* module : {"mlp.down_proj", "mlp.gate_proj", "mlp.up_proj", "self_attn.k_proj",
                               "self_attn.o_proj", "self_attn.q_proj", "self_attn.v_proj"}) {
      for (const char* factor : {"lora_A", "lora_B"}) {
        expected_keys.push_back(std::string("base_model.model.model.layers.") + layer + "." +
                                module + "." + factor + ".weight");
      }
    }
  }
  EXPECT_EQ(file.names(), expected_keys);
  EXPECT_EQ(file.info("base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight").shape,
            (std::vector<int64_t>{4, 32}));
  EXPECT_EQ(file.info("base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight").shape,
            (std::vector<int64_t>{16, 4}));  // K D = 2 * 8

  MistralForCausalLM fresh = loaded_mistral(config, weights);
  const LoraConfig loaded = load_peft_adapter(dir, *fresh);
  EXPECT_EQ(loaded.rslora, rslora);
  EXPECT_DOUBLE_EQ(loaded.scaling(), scaling);
  EXPECT_TRUE(fresh->forward(ids_t).equal(logits));
  // Merged: W + s B A in the weights, same function.
  merge_lora(*fresh);
  EXPECT_LT(reference::relative_error(reference::to_doubles(fresh->forward(ids_t)), expected),
            1e-5);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Scaling, MistralLora, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "RsLora" : "AlphaOverRank"; });

TEST(MistralLoraGradient, MatchesFiniteDifferencesInFloat64) {
  // Backward through RoPE, GQA, the sliding window and SwiGLU: d(sum(logits * R))/d(lora factor).
  MistralConfig config = small_mistral_config(2, 4, 2, 16, 30, 24);
  config.sliding_window = 3;
  MistralForCausalLM model =
      loaded_mistral(config, reference::random_mistral_weights(config, 81), at::kDouble);
  apply_lora(*model, LoraConfig{2, 4, 0.0, false, {"q_proj", "k_proj", "up_proj"}});
  test::randomize_lora(*model, 82);
  const at::Tensor ids = test::as_tensor(test::random_ids(10, 30, 83), 2, 5);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(84);
  const at::Tensor R = at::normal(0.0, 1.0, {2, 5, 30}, gen, at::TensorOptions(at::kDouble));
  auto loss = [&] { return (model->forward(ids) * R).sum(); };
  loss().backward();
  auto params = model->named_parameters();
  for (const char* name : {"model.layers.0.self_attn.q_proj.lora_B.weight",
                           "model.layers.1.self_attn.k_proj.lora_A.weight",
                           "model.layers.0.mlp.up_proj.lora_A.weight"}) {
    at::Tensor p = params[name];
    ASSERT_TRUE(p.grad().defined()) << name;
    const double analytic = p.grad()[1][1].item<double>();
    const double h = 1e-6;
    double numeric = 0;
    {
      torch::NoGradGuard no_grad;
      p[1][1] += h;
      const double up = loss().item<double>();
      p[1][1] -= 2 * h;
      const double down = loss().item<double>();
      p[1][1] += h;
      numeric = (up - down) / (2 * h);
    }
    EXPECT_NEAR(analytic, numeric, 1e-6 * std::max(1.0, std::fabs(numeric))) << name;
  }
  EXPECT_FALSE(params["model.layers.0.self_attn.q_proj.weight"].requires_grad());
  EXPECT_FALSE(params["model.norm.weight"].requires_grad());
}

}  // namespace
}  // namespace tailor
