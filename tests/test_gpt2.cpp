// GPT-2 against the independent float64 reference (tests/gpt2_reference.cpp), plus config and
// state-dict behaviour.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "common/error.h"
#include "gpt2_reference.h"
#include "models/gpt2/gpt2.h"
#include "models/gpt2/gpt2_config.h"
#include "test_support.h"

namespace tailor {
namespace {

GPT2Config small_gpt2_config(int64_t n_layer, int64_t n_head, int64_t n_embd, int64_t vocab,
                             std::optional<int64_t> n_inner = std::nullopt,
                             const std::string& activation = "gelu_new") {
  GPT2Config config;
  config.vocab_size = vocab;
  config.n_positions = 16;
  config.n_embd = n_embd;
  config.n_layer = n_layer;
  config.n_head = n_head;
  config.n_inner = n_inner;
  config.activation_function = activation;
  config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = 0.0;
  return config;
}

struct Gpt2ForwardCase {
  std::string name;
  GPT2Config config;
  int64_t B, T;
  std::vector<int64_t> mask;       // empty = none
  std::vector<int64_t> positions;  // empty = default
};

std::vector<Gpt2ForwardCase> gpt2_forward_cases() {
  std::vector<Gpt2ForwardCase> cases;
  cases.push_back({"OneLayerOneHead", small_gpt2_config(1, 1, 8, 50), 2, 5, {}, {}});
  cases.push_back({"TwoHeadsInnerSetGeluRightPad",
                   small_gpt2_config(2, 2, 16, 97, 24, "gelu"),
                   2,
                   6,
                   {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0},
                   {}});
  cases.push_back({"ThreeLayersFourHeadsLeftPad",
                   small_gpt2_config(3, 4, 48, 300),
                   3,
                   7,
                   {0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0},
                   {}});
  GPT2Config untied = small_gpt2_config(2, 4, 32, 64, std::nullopt, "relu");
  untied.tie_word_embeddings = false;
  untied.scale_attn_by_inverse_layer_idx = true;
  untied.layer_norm_epsilon = 1e-3;
  cases.push_back({"UntiedReluInverseLayerScalePositions",
                   untied,
                   2,
                   4,
                   {0, 1, 1, 1, 1, 1, 1, 1},
                   {1, 0, 1, 2, 5, 6, 7, 8}});
  return cases;
}

// Readable failure output instead of gtest's byte dump.
void PrintTo(const Gpt2ForwardCase& c, std::ostream* os) {
  *os << c.name;
}

class GPT2Forward : public ::testing::TestWithParam<Gpt2ForwardCase> {};

TEST_P(GPT2Forward, Float32MatchesFloat64Reference) {
  const Gpt2ForwardCase& c = GetParam();
  const TensorMap weights = reference::random_hf_weights(c.config, 11);
  GPT2LMHead model(c.config);
  model->load_hf_state_dict(weights);  // float64 tensors are converted to float32
  model->eval();
  const auto ids = test::random_ids(c.B * c.T, c.config.vocab_size, 3);
  const at::Tensor mask = c.mask.empty() ? at::Tensor() : test::as_tensor(c.mask, c.B, c.T);
  const at::Tensor positions =
      c.positions.empty() ? at::Tensor() : test::as_tensor(c.positions, c.B, c.T);
  torch::NoGradGuard no_grad;
  const at::Tensor logits = model(test::as_tensor(ids, c.B, c.T), mask, positions);
  ASSERT_EQ(logits.scalar_type(), at::kFloat);
  ASSERT_EQ(logits.sizes(), (at::IntArrayRef{c.B, c.T, c.config.vocab_size}));

  const auto expected =
      reference::gpt2_logits(c.config, weights, ids, c.B, c.T, c.mask, c.positions);
  const auto actual = reference::to_doubles(logits);
  EXPECT_LT(reference::relative_error(actual, expected), 1e-5);  // observed ~3e-7
  const auto V = c.config.vocab_size;
  EXPECT_LT(reference::max_abs_diff(reference::log_softmax_rows(actual, V),
                                    reference::log_softmax_rows(expected, V)),
            1e-4);
}

TEST_P(GPT2Forward, BFloat16CloseToFloat64Reference) {
  const Gpt2ForwardCase& c = GetParam();
  const TensorMap weights = reference::random_hf_weights(c.config, 12);
  GPT2LMHead model(c.config);
  model->to(at::kBFloat16);
  model->load_hf_state_dict(weights);
  model->eval();
  const auto ids = test::random_ids(c.B * c.T, c.config.vocab_size, 4);
  const at::Tensor mask = c.mask.empty() ? at::Tensor() : test::as_tensor(c.mask, c.B, c.T);
  const at::Tensor positions =
      c.positions.empty() ? at::Tensor() : test::as_tensor(c.positions, c.B, c.T);
  torch::NoGradGuard no_grad;
  const at::Tensor logits = model(test::as_tensor(ids, c.B, c.T), mask, positions);
  ASSERT_EQ(logits.scalar_type(), at::kBFloat16);
  // The reference sees the same bfloat16-rounded weights, so only activation rounding differs.
  TensorMap rounded;
  for (const auto& [name, tensor] : weights)
    rounded[name] = tensor.to(at::kBFloat16);
  const auto expected =
      reference::gpt2_logits(c.config, rounded, ids, c.B, c.T, c.mask, c.positions);
  EXPECT_LT(reference::relative_error(reference::to_doubles(logits), expected), 3e-2);
}

INSTANTIATE_TEST_SUITE_P(Shapes, GPT2Forward, ::testing::ValuesIn(gpt2_forward_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(GPT2Model, ParameterNamesAreHuggingFaceNames) {
  GPT2LMHead model(small_gpt2_config(2, 2, 8, 20));
  std::vector<std::string> expected = {"transformer.wte.weight", "transformer.wpe.weight"};
  for (const char* layer : {"0", "1"}) {
    const std::string p = std::string("transformer.h.") + layer + ".";
    for (const char* name :
         {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
          "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight",
          "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"}) {
      expected.push_back(p + name);
    }
  }
  expected.push_back("transformer.ln_f.weight");
  expected.push_back("transformer.ln_f.bias");
  std::vector<std::string> actual;
  for (const auto& item : model->named_parameters())
    actual.push_back(item.key());
  EXPECT_EQ(actual, expected);
  // Conv1D layout: c_attn weight is [in, out] = [8, 24]; c_fc [8, 32].
  const auto params = model->named_parameters();
  EXPECT_EQ(params["transformer.h.0.attn.c_attn.weight"].sizes(), (at::IntArrayRef{8, 24}));
  EXPECT_EQ(params["transformer.h.1.mlp.c_fc.weight"].sizes(), (at::IntArrayRef{8, 32}));
  EXPECT_EQ(params["transformer.h.1.mlp.c_proj.weight"].sizes(), (at::IntArrayRef{32, 8}));
}

TEST(GPT2Model, Gpt2SmallHas124439808Parameters) {
  // HF's GPT2LMHeadModel("gpt2").num_parameters() with the tied head counted once.
  GPT2LMHead model(gpt2_124m(), /*init_weights=*/false);
  int64_t total = 0;
  for (const auto& p : model->parameters())
    total += p.numel();
  EXPECT_EQ(total, 124439808);
}

TEST(GPT2Model, InitWeightsFollowsHuggingFace) {
  torch::manual_seed(0);
  GPT2Config config = small_gpt2_config(4, 2, 64, 400);
  GPT2LMHead model(config);
  const auto p = model->named_parameters();
  EXPECT_NEAR(p["transformer.wte.weight"].std().item<double>(), 0.02, 0.001);
  EXPECT_NEAR(p["transformer.h.0.mlp.c_fc.weight"].std().item<double>(), 0.02, 0.001);
  // Residual projections: 0.02 / sqrt(2 n_layer) (GPT-2 paper §2.3).
  EXPECT_NEAR(p["transformer.h.0.mlp.c_proj.weight"].std().item<double>(), 0.02 / std::sqrt(8.0),
              0.0007);
  EXPECT_NEAR(p["transformer.h.3.attn.c_proj.weight"].std().item<double>(), 0.02 / std::sqrt(8.0),
              0.0007);
  EXPECT_TRUE(p["transformer.ln_f.weight"].eq(1).all().item<bool>());
  EXPECT_TRUE(p["transformer.h.1.ln_2.bias"].eq(0).all().item<bool>());
  EXPECT_TRUE(p["transformer.h.1.attn.c_attn.bias"].eq(0).all().item<bool>());
  // Seeded construction is reproducible.
  torch::manual_seed(0);
  GPT2LMHead again(config);
  EXPECT_TRUE(again->named_parameters()["transformer.h.2.attn.c_attn.weight"].equal(
      p["transformer.h.2.attn.c_attn.weight"]));
}

TEST(GPT2Model, DropoutOnlyInTrainMode) {
  GPT2Config config = small_gpt2_config(2, 2, 16, 40);
  const TensorMap weights = reference::random_hf_weights(config, 5);
  GPT2Config dropping = config;
  dropping.resid_pdrop = dropping.embd_pdrop = dropping.attn_pdrop = 0.3;
  GPT2LMHead model(dropping);
  model->load_hf_state_dict(weights);
  const auto ids = test::random_ids(8, config.vocab_size, 1);
  const at::Tensor x = test::as_tensor(ids, 1, 8);
  torch::NoGradGuard no_grad;
  model->train();
  EXPECT_FALSE(model(x).equal(model(x)));
  model->eval();
  const auto expected = reference::gpt2_logits(config, weights, ids, 1, 8);
  EXPECT_LT(reference::relative_error(reference::to_doubles(model(x)), expected), 1e-5);
}

TEST(GPT2Model, HiddenStatesAreFinalLayerNormOutput) {
  GPT2Config config = small_gpt2_config(1, 2, 8, 30);
  const TensorMap weights = reference::random_hf_weights(config, 6);
  GPT2LMHead model(config);
  model->load_hf_state_dict(weights);
  const at::Tensor x = test::as_tensor(test::random_ids(10, 30, 2), 2, 5);
  torch::NoGradGuard no_grad;
  const at::Tensor hidden = model->hidden_states(x);
  ASSERT_EQ(hidden.sizes(), (at::IntArrayRef{2, 5, 8}));
  // LayerNorm output: per-token mean of (h - bias) / weight is 0.
  const at::Tensor normalized =
      (hidden - weights.at("ln_f.bias").to(at::kFloat)) / weights.at("ln_f.weight").to(at::kFloat);
  EXPECT_LT(normalized.mean(-1).abs().max().item<double>(), 1e-5);
  // Logits are the tied projection of these states: compare one entry by hand.
  const at::Tensor logits = model(x);
  double dot = 0;
  for (int64_t c = 0; c < 8; ++c) {
    dot += hidden[1][3][c].item<double>() * weights.at("wte.weight")[7][c].item<double>();
  }
  EXPECT_NEAR(logits[1][3][7].item<double>(), dot, 1e-5);
}

TEST(GPT2Model, RejectsTooLongSequence) {
  GPT2LMHead model(small_gpt2_config(1, 1, 8, 20));
  const std::string message = test::error_of([&] { model(torch::zeros({1, 17}, torch::kLong)); });
  EXPECT_NE(message.find("sequence length 17 exceeds n_positions 16"), std::string::npos)
      << message;
}

TEST(GPT2Model, RejectsTokenIdOutsideVocabulary) {
  GPT2LMHead model(small_gpt2_config(1, 1, 8, 20));
  const std::string message = test::error_of([&] {
    model(torch::tensor({3, 20}, torch::kLong).view({1, 2}));
  });
  EXPECT_NE(message.find("token id 20 is outside the vocabulary [0, 20)"), std::string::npos)
      << message;
}

// ---- state dicts ----------------------------------------------------------------------------

TEST(GPT2StateDict, LoadsKeysWithAndWithoutPrefixIgnoringBuffers) {
  GPT2Config config = small_gpt2_config(2, 2, 8, 20);
  const TensorMap plain = reference::random_hf_weights(config, 7);
  TensorMap prefixed;
  for (const auto& [name, tensor] : plain)
    prefixed["transformer." + name] = tensor;
  // Buffers and a tied lm_head that HF checkpoints may carry are ignored.
  prefixed["transformer.h.0.attn.bias"] = torch::ones({1, 1, 16, 16});
  prefixed["transformer.h.1.attn.masked_bias"] = torch::tensor(-1e4);
  prefixed["lm_head.weight"] = torch::zeros({20, 8});
  TensorMap mixed = plain;
  mixed["h.0.attn.bias"] = torch::ones({1, 1, 16, 16});
  for (const TensorMap* source : std::vector<const TensorMap*>{&plain, &prefixed, &mixed}) {
    GPT2LMHead model(config);
    model->load_hf_state_dict(*source);
    const auto params = model->named_parameters();
    for (const auto& [name, tensor] : plain) {
      EXPECT_TRUE(params["transformer." + name].equal(tensor.to(at::kFloat))) << name;
    }
  }
}

TEST(GPT2StateDict, MissingKeyIsAnErrorNamingIt) {
  GPT2Config config = small_gpt2_config(2, 2, 8, 20);
  TensorMap weights = reference::random_hf_weights(config, 8);
  weights.erase("h.1.mlp.c_fc.bias");
  GPT2LMHead model(config);
  const std::string message = test::error_of([&] { model->load_hf_state_dict(weights, "ckpt/x"); });
  EXPECT_NE(message.find("[gpt2] ckpt/x: missing key(s) transformer.h.1.mlp.c_fc.bias"),
            std::string::npos)
      << message;
}

TEST(GPT2StateDict, UnexpectedKeyIsAnErrorNamingIt) {
  GPT2Config config = small_gpt2_config(1, 2, 8, 20);
  TensorMap weights = reference::random_hf_weights(config, 8);
  weights["h.0.attn.q_proj.weight"] = torch::zeros({8, 8});
  GPT2LMHead model(config);
  const std::string message = test::error_of([&] { model->load_hf_state_dict(weights); });
  EXPECT_NE(message.find("unexpected key(s) h.0.attn.q_proj.weight"), std::string::npos) << message;
}

TEST(GPT2StateDict, ShapeMismatchNamesKeyAndBothShapesAndLeavesModelUntouched) {
  GPT2Config config = small_gpt2_config(1, 2, 8, 20);
  TensorMap weights = reference::random_hf_weights(config, 8);
  weights["h.0.attn.c_attn.weight"] = torch::zeros({24, 8});  // nn.Linear layout by mistake
  GPT2LMHead model(config);
  const at::Tensor before = model->transformer->wte->weight.clone();
  const std::string message = test::error_of([&] { model->load_hf_state_dict(weights); });
  EXPECT_NE(message.find("h.0.attn.c_attn.weight has shape [24, 8], the model expects [8, 24]"),
            std::string::npos)
      << message;
  EXPECT_TRUE(model->transformer->wte->weight.equal(before));
}

TEST(GPT2StateDict, UntiedHeadNeedsLmHeadWeight) {
  GPT2Config config = small_gpt2_config(1, 2, 8, 20);
  config.tie_word_embeddings = false;
  TensorMap weights = reference::random_hf_weights(config, 9);
  GPT2LMHead model(config);
  model->load_hf_state_dict(weights);
  EXPECT_TRUE(model->lm_head->weight.equal(weights.at("lm_head.weight").to(at::kFloat)));
  weights.erase("lm_head.weight");
  EXPECT_NE(test::error_of([&] { model->load_hf_state_dict(weights); }).find("lm_head.weight"),
            std::string::npos);
}

TEST(GPT2StateDict, HfStateDictIsPrefixedWithoutTiedHead) {
  GPT2Config config = small_gpt2_config(2, 2, 8, 20);
  const TensorMap weights = reference::random_hf_weights(config, 10);
  GPT2LMHead model(config);
  model->load_hf_state_dict(weights);
  const TensorMap out = model->hf_state_dict();
  ASSERT_EQ(out.size(), weights.size());
  for (const auto& [name, tensor] : weights) {
    ASSERT_TRUE(out.count("transformer." + name)) << name;
    EXPECT_TRUE(out.at("transformer." + name).equal(tensor.to(at::kFloat))) << name;
  }
  EXPECT_FALSE(out.count("lm_head.weight"));
}

// ---- config ---------------------------------------------------------------------------------

TEST(GPT2ConfigJson, ReadsHfConfigWithLegacyNCtxAndNullInner) {
  const auto json = nlohmann::json::parse(R"({
    "model_type": "gpt2", "vocab_size": 1000, "n_ctx": 128, "n_embd": 64, "n_layer": 3,
    "n_head": 4, "n_inner": null, "activation_function": "gelu_new",
    "layer_norm_epsilon": 1e-5, "resid_pdrop": 0.0, "architectures": ["GPT2LMHeadModel"]})");
  const GPT2Config config = GPT2Config::from_json(json, "dir/config.json");
  EXPECT_EQ(config.vocab_size, 1000);
  EXPECT_EQ(config.n_positions, 128);
  EXPECT_EQ(config.inner_dim(), 256);
  EXPECT_EQ(config.resid_pdrop, 0.0);
  EXPECT_EQ(config.embd_pdrop, 0.1);
  EXPECT_TRUE(config.tie_word_embeddings);
}

TEST(GPT2ConfigJson, ErrorsNameSourceAndKey) {
  auto json = gpt2_124m().to_json();
  json["n_head"] = 7;
  EXPECT_EQ(test::error_of([&] { GPT2Config::from_json(json, "out/config.json"); }),
            "[config] out/config.json: n_embd (768) must be divisible by n_head (7)");
  json = gpt2_124m().to_json();
  json["activation_function"] = "swish";
  EXPECT_NE(test::error_of([&] {
              GPT2Config::from_json(json, "c.json");
            }).find("c.json: activation_function: unsupported \"swish\""),
            std::string::npos);
  json = gpt2_124m().to_json();
  json["n_layer"] = "twelve";
  EXPECT_EQ(test::error_of([&] { GPT2Config::from_json(json, "c.json"); }),
            "[config] c.json: n_layer: expected an integer, got \"twelve\"");
}

TEST(GPT2ConfigJson, ToJsonHasTransformersFieldsAndRoundTrips) {
  GPT2Config config = gpt2_tiny();
  config.n_inner = 100;
  config.torch_dtype = "bfloat16";
  const auto json = config.to_json();
  EXPECT_EQ(json.at("model_type"), "gpt2");
  EXPECT_EQ(json.at("architectures"), nlohmann::json::array({"GPT2LMHeadModel"}));
  EXPECT_EQ(json.at("n_ctx"), 256);
  EXPECT_EQ(json.at("n_positions"), 256);
  EXPECT_EQ(json.at("n_inner"), 100);
  EXPECT_EQ(json.at("torch_dtype"), "bfloat16");
  EXPECT_EQ(json.at("layer_norm_epsilon"), 1e-5);
  EXPECT_TRUE(gpt2_124m().to_json().at("n_inner").is_null());
  const GPT2Config back = GPT2Config::from_json(json, "roundtrip");
  EXPECT_EQ(back.to_json(), json);
}

TEST(GPT2ConfigPresets, HaveReleasedSizes) {
  struct Row {
    const char* name;
    int64_t n_embd, n_layer, n_head;
  };
  for (const Row& row : {Row{"gpt2", 768, 12, 12}, Row{"gpt2-medium", 1024, 24, 16},
                         Row{"gpt2-large", 1280, 36, 20}, Row{"gpt2-xl", 1600, 48, 25}}) {
    const GPT2Config config = GPT2Config::preset(row.name);
    EXPECT_EQ(config.vocab_size, 50257) << row.name;
    EXPECT_EQ(config.n_positions, 1024) << row.name;
    EXPECT_EQ(config.n_embd, row.n_embd) << row.name;
    EXPECT_EQ(config.n_layer, row.n_layer) << row.name;
    EXPECT_EQ(config.n_head, row.n_head) << row.name;
  }
  const GPT2Config tiny = GPT2Config::preset("gpt2-tiny");
  EXPECT_EQ(tiny.n_embd, 64);
  EXPECT_EQ(tiny.n_layer, 2);
  EXPECT_EQ(tiny.n_head, 4);
  EXPECT_EQ(tiny.n_positions, 256);
  EXPECT_NE(
      test::error_of([] { GPT2Config::preset("gpt3"); }).find("unknown GPT-2 preset \"gpt3\""),
      std::string::npos);
}

// Decoding with the KV cache: a left-padded batch prefilled, then fed one token per step with the
// mask growing by one column and position ids cumsum(mask) - 1 (as HF's generate passes them),
// gives at every real position the float64 reference's logits for the whole sequence at once.
TEST(GPT2KvCache, StepwiseDecodingMatchesFloat64ReferenceOnLeftPaddedBatch) {
  const GPT2Config config = small_gpt2_config(2, 2, 16, 50);
  const TensorMap weights = reference::random_hf_weights(config, 5);
  GPT2LMHead model(config);
  model->load_hf_state_dict(weights);
  model->eval();
  const int64_t B = 2, T = 9, prefill = 4;
  // Row 0 has 3 padding positions on the left, row 1 none.
  const std::vector<int64_t> mask = {0, 0, 0, 1, 1, 1, 1, 1, 1,  //
                                     1, 1, 1, 1, 1, 1, 1, 1, 1};
  std::vector<int64_t> positions(B * T);
  for (int64_t b = 0; b < B; ++b) {
    int64_t seen = 0;
    for (int64_t t = 0; t < T; ++t) {
      seen += mask[b * T + t];
      positions[b * T + t] = std::max<int64_t>(seen - 1, 0);
    }
  }
  const auto ids = test::random_ids(B * T, config.vocab_size, 21);
  const auto expected = reference::gpt2_logits(config, weights, ids, B, T, mask, positions);

  const at::Tensor all_ids = test::as_tensor(ids, B, T), all_mask = test::as_tensor(mask, B, T),
                   all_positions = test::as_tensor(positions, B, T);
  torch::NoGradGuard no_grad;
  KvCache cache(config.n_layer);
  std::vector<at::Tensor> pieces = {model->forward(all_ids.narrow(1, 0, prefill),
                                                   all_mask.narrow(1, 0, prefill),
                                                   all_positions.narrow(1, 0, prefill), &cache)};
  EXPECT_EQ(cache.length(), prefill);
  for (int64_t t = prefill; t < T; ++t) {
    pieces.push_back(model->forward(all_ids.narrow(1, t, 1), all_mask.narrow(1, 0, t + 1),
                                    all_positions.narrow(1, t, 1), &cache));
  }
  EXPECT_EQ(cache.length(), T);
  const auto actual = reference::to_doubles(at::cat(pieces, 1));
  const int64_t V = config.vocab_size;
  double worst = 0;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      if (mask[b * T + t] == 0) continue;  // outputs at padding carry no meaning
      const size_t at = static_cast<size_t>((b * T + t) * V);
      const std::vector<double> a(actual.begin() + at, actual.begin() + at + V);
      const std::vector<double> e(expected.begin() + at, expected.begin() + at + V);
      worst = std::max(worst, reference::relative_error(a, e));
    }
  }
  EXPECT_LT(worst, 1e-5);
}

TEST(GPT2KvCache, MaskMustCoverCachedPositions) {
  GPT2LMHead model(small_gpt2_config(2, 2, 16, 50));
  model->eval();
  torch::NoGradGuard no_grad;
  KvCache cache(2);
  model->forward(torch::ones({1, 3}, torch::kLong), {}, {}, &cache);
  const std::string message = test::error_of([&] {
    model->forward(torch::ones({1, 1}, torch::kLong), torch::ones({1, 1}, torch::kLong), {},
                   &cache);
  });
  EXPECT_NE(message.find("attention_mask shape [1, 1] does not match input_ids [1, 1] plus 3 "
                         "cached positions"),
            std::string::npos)
      << message;
}

}  // namespace
}  // namespace tailor
