// LoRA (PEFT semantics) on tailor::Linear and GPT-2, checked against hand-written float64 math,
// the float64 GPT-2 reference and finite differences.
#include <gtest/gtest.h>

#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "common/error.h"
#include "gpt2_reference.h"
#include "models/core/linear.h"
#include "models/core/lora.h"
#include "models/gpt2/gpt2.h"
#include "models/io/peft.h"
#include "test_support.h"

namespace tailor {
namespace {

GPT2Config lora_gpt2_config() {
  GPT2Config config;
  config.vocab_size = 40;
  config.n_positions = 12;
  config.n_embd = 16;
  config.n_layer = 2;
  config.n_head = 2;
  config.n_inner = 24;
  config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = 0.0;
  return config;
}

const std::vector<int64_t> kIds = {3, 17, 5, 39, 0, 22, 8, 1, 11, 30, 2, 9};  // [2, 6]

at::Tensor ids_tensor() {
  return torch::tensor(kIds, torch::kLong).view({2, 6});
}

GPT2LMHead loaded_gpt2(const GPT2Config& config, const TensorMap& weights) {
  GPT2LMHead model(config);
  model->load_hf_state_dict(weights);
  model->eval();
  return model;
}

// Conv1D merge by hand in float64: W[i][o] += scaling * sum_k B[o][k] A[k][i].
at::Tensor merged_conv1d_by_hand(const at::Tensor& W, const at::Tensor& A, const at::Tensor& B,
                                 double scaling) {
  const auto w = reference::to_doubles(W), a = reference::to_doubles(A),
             b = reference::to_doubles(B);
  const int64_t in = W.size(0), out = W.size(1), r = A.size(0);
  std::vector<double> merged(w);
  for (int64_t i = 0; i < in; ++i) {
    for (int64_t o = 0; o < out; ++o) {
      double sum = 0;
      for (int64_t k = 0; k < r; ++k)
        sum += b[o * r + k] * a[k * in + i];
      merged[i * out + o] += scaling * sum;
    }
  }
  return torch::tensor(merged, torch::kDouble).view({in, out});
}

// Reference weights with every LoRA layer of `model` folded in by hand.
TensorMap hand_merged_weights(GPT2LMHead& model, const TensorMap& base, double scaling) {
  TensorMap merged = base;
  const auto params = model->named_parameters();
  for (const std::string& path : lora_module_paths(*model)) {
    const std::string hub = path.substr(std::string("transformer.").size());
    merged[hub + ".weight"] =
        merged_conv1d_by_hand(base.at(hub + ".weight"), params[path + ".lora_A.weight"],
                              params[path + ".lora_B.weight"], scaling);
  }
  return merged;
}

TEST(LoraConfig, ScalingIsAlphaOverRankOrOverSqrtRank) {
  LoraConfig config;
  config.rank = 16;
  config.alpha = 32;
  EXPECT_DOUBLE_EQ(config.scaling(), 2.0);
  config.rslora = true;
  EXPECT_DOUBLE_EQ(config.scaling(), 8.0);
}

TEST(LoraInit, PeftInitLeavesOutputUnchangedAndABounded) {
  const GPT2Config config = lora_gpt2_config();
  const TensorMap weights = reference::random_hf_weights(config, 1);
  GPT2LMHead model = loaded_gpt2(config, weights);
  torch::manual_seed(3);
  LoraConfig lora{4, 8, 0, false, {"c_attn", "c_fc"}};
  const auto wrapped = apply_lora(*model, lora);
  EXPECT_EQ(wrapped,
            (std::vector<std::string>{"transformer.h.0.attn.c_attn", "transformer.h.0.mlp.c_fc",
                                      "transformer.h.1.attn.c_attn", "transformer.h.1.mlp.c_fc"}));
  for (const auto& item : lora_parameters(*model)) {
    const at::Tensor& p = item.value();
    if (item.key().find("lora_B") != std::string::npos) {
      EXPECT_TRUE(p.eq(0).all().item<bool>()) << item.key();
    } else {
      // kaiming_uniform(a = sqrt(5)): U(-1/sqrt(in), 1/sqrt(in)), in = n_embd = 16.
      const double bound = 1.0 / std::sqrt(16.0);
      EXPECT_LE(p.abs().max().item<double>(), bound) << item.key();
      EXPECT_GT(p.abs().max().item<double>(), 0.8 * bound) << item.key();
      EXPECT_NEAR(p.mean().item<double>(), 0.0, 0.1) << item.key();
    }
  }
  torch::NoGradGuard no_grad;
  const auto expected = reference::gpt2_logits(config, weights, kIds, 2, 6);
  EXPECT_LT(reference::relative_error(reference::to_doubles(model(ids_tensor())), expected), 1e-5);
}

TEST(LoraInit, SeededInitIsReproducible) {
  const GPT2Config config = lora_gpt2_config();
  LoraConfig lora{4, 8, 0, false, {"c_attn"}};
  GPT2LMHead first(config), second(config);
  torch::manual_seed(42);
  apply_lora(*first, lora);
  torch::manual_seed(42);
  apply_lora(*second, lora);
  const auto a = lora_parameters(*first), b = lora_parameters(*second);
  for (const auto& item : a)
    EXPECT_TRUE(item.value().equal(b[item.key()])) << item.key();
}

class LoraGPT2 : public ::testing::TestWithParam<bool> {};  // param: rsLoRA

TEST_P(LoraGPT2, ForwardEqualsReferenceWithHandMergedConv1DWeights) {
  const GPT2Config config = lora_gpt2_config();
  const TensorMap weights = reference::random_hf_weights(config, 2);
  GPT2LMHead model = loaded_gpt2(config, weights);
  const LoraConfig lora{4, 6, 0, GetParam(), {"c_attn", "attn.c_proj", "c_fc"}};
  apply_lora(*model, lora);
  test::randomize_lora(*model, 5);
  const double scaling = GetParam() ? 6.0 / 2.0 : 6.0 / 4.0;  // alpha/sqrt(r) or alpha/r
  const TensorMap merged = hand_merged_weights(model, weights, scaling);
  const auto expected = reference::gpt2_logits(config, merged, kIds, 2, 6);
  const auto without = reference::gpt2_logits(config, weights, kIds, 2, 6);
  torch::NoGradGuard no_grad;
  const auto actual = reference::to_doubles(model(ids_tensor()));
  EXPECT_LT(reference::relative_error(actual, expected), 1e-5);
  EXPECT_GT(reference::relative_error(actual, without),
            1e-2);  // the adapter does change the output
}

INSTANTIATE_TEST_SUITE_P(Scaling, LoraGPT2, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "RsLora" : "AlphaOverR"; });

// y = x W (Conv1D) or x W^T (Linear) + b + scaling * (x A^T) B^T, by hand in float64.
std::vector<double> linear_by_hand(const at::Tensor& x, const at::Tensor& W, const at::Tensor& b,
                                   const at::Tensor& A, const at::Tensor& B, double scaling,
                                   WeightLayout layout) {
  const auto xv = reference::to_doubles(x), wv = reference::to_doubles(W),
             bv = reference::to_doubles(b), av = reference::to_doubles(A),
             bbv = reference::to_doubles(B);
  const int64_t in = x.size(-1), N = x.numel() / in, r = A.size(0), out = b.numel();
  std::vector<double> y(N * out);
  for (int64_t n = 0; n < N; ++n) {
    std::vector<double> down(r, 0.0);
    for (int64_t k = 0; k < r; ++k) {
      for (int64_t i = 0; i < in; ++i)
        down[k] += av[k * in + i] * xv[n * in + i];
    }
    for (int64_t o = 0; o < out; ++o) {
      double sum = bv[o];
      for (int64_t i = 0; i < in; ++i) {
        const double w = layout == WeightLayout::kConv1D ? wv[i * out + o] : wv[o * in + i];
        sum += xv[n * in + i] * w;
      }
      for (int64_t k = 0; k < r; ++k)
        sum += scaling * bbv[o * r + k] * down[k];
      y[n * out + o] = sum;
    }
  }
  return y;
}

class LoraLinearLayout : public ::testing::TestWithParam<WeightLayout> {};

TEST_P(LoraLinearLayout, ForwardMergeUnmergeAndDisable) {
  const WeightLayout layout = GetParam();
  const int64_t in = 5, out = 3;
  Linear layer(in, out, layout, true);
  {
    torch::NoGradGuard no_grad;
    layer->weight.normal_();
    layer->bias.normal_();
  }
  const at::Tensor original = layer->weight.clone();
  layer->add_lora(2, 1.5, 0.0);
  EXPECT_EQ(layer->lora_A->weight.sizes(), (at::IntArrayRef{2, in}));
  EXPECT_EQ(layer->lora_B->weight.sizes(), (at::IntArrayRef{out, 2}));
  EXPECT_FALSE(layer->weight.requires_grad());
  EXPECT_FALSE(layer->bias.requires_grad());
  {
    torch::NoGradGuard no_grad;
    layer->lora_B->weight.normal_();
  }
  std::vector<std::string> names;
  for (const auto& item : layer->named_parameters())
    names.push_back(item.key());
  EXPECT_EQ(names, (std::vector<std::string>{"weight", "bias", "lora_A.weight", "lora_B.weight"}));

  torch::NoGradGuard no_grad;
  const at::Tensor x = torch::randn({2, 4, in});
  const auto expected = linear_by_hand(x, layer->weight, layer->bias, layer->lora_A->weight,
                                       layer->lora_B->weight, 1.5, layout);
  const at::Tensor y = layer(x);
  ASSERT_EQ(y.sizes(), (at::IntArrayRef{2, 4, out}));
  EXPECT_LT(reference::relative_error(reference::to_doubles(y), expected), 1e-5);

  // Merge: W gains (B A)^T s (Conv1D) or B A s (Linear); forward is unchanged.
  layer->merge();
  EXPECT_TRUE(layer->merged());
  const auto delta_linear =
      reference::to_doubles(at::mm(layer->lora_B->weight.to(at::kDouble),
                                   layer->lora_A->weight.to(at::kDouble)));  // [out,in]
  const auto w0 = reference::to_doubles(original), w1 = reference::to_doubles(layer->weight);
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < in; ++i) {
      const int64_t at_index = layout == WeightLayout::kConv1D ? i * out + o : o * in + i;
      EXPECT_NEAR(w1[at_index], w0[at_index] + 1.5 * delta_linear[o * in + i], 1e-5);
    }
  }
  EXPECT_LT(reference::relative_error(reference::to_doubles(layer(x)), expected), 1e-5);
  layer->unmerge();
  EXPECT_FALSE(layer->merged());
  EXPECT_LT((layer->weight - original).abs().max().item<double>(), 1e-6);
  EXPECT_LT(reference::relative_error(reference::to_doubles(layer(x)), expected), 1e-5);

  // Disabled: the plain base layer.
  layer->set_adapter_enabled(false);
  const at::Tensor zeros = torch::zeros_like(layer->lora_B->weight);
  const auto base =
      linear_by_hand(x, layer->weight, layer->bias, layer->lora_A->weight, zeros, 1.5, layout);
  EXPECT_LT(reference::relative_error(reference::to_doubles(layer(x)), base), 1e-5);
  EXPECT_NE(test::error_of([&] { layer->merge(); }).find("disabled"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Layouts, LoraLinearLayout,
                         ::testing::Values(WeightLayout::kConv1D, WeightLayout::kLinear),
                         [](const auto& info) {
                           return info.param == WeightLayout::kConv1D ? "Conv1D" : "Linear";
                         });

TEST(LoraGPT2Model, MergeUnmergeAndDisableOnWholeModel) {
  const GPT2Config config = lora_gpt2_config();
  const TensorMap weights = reference::random_hf_weights(config, 3);
  GPT2LMHead model = loaded_gpt2(config, weights);
  apply_lora(*model, {8, 16, 0, false, {"c_attn", "c_proj", "c_fc"}});
  test::randomize_lora(*model, 6);
  torch::NoGradGuard no_grad;
  const at::Tensor x = ids_tensor();
  const auto with_lora = reference::to_doubles(model(x));
  const auto base = reference::gpt2_logits(config, weights, kIds, 2, 6);

  set_adapters_enabled(*model, false);
  EXPECT_LT(reference::relative_error(reference::to_doubles(model(x)), base), 1e-5);
  set_adapters_enabled(*model, true);
  EXPECT_LT(reference::relative_error(reference::to_doubles(model(x)), with_lora), 1e-6);

  const at::Tensor w = model->named_parameters()["transformer.h.1.mlp.c_proj.weight"].clone();
  merge_lora(*model);
  EXPECT_TRUE(lora_merged(*model));
  EXPECT_LT(reference::relative_error(reference::to_doubles(model(x)), with_lora), 1e-5);
  // Exported base weights now carry the adapter: they reproduce the LoRA output in the reference.
  TensorMap exported;
  for (const auto& [name, tensor] : model->hf_state_dict())
    exported[name] = tensor;
  EXPECT_LT(
      reference::relative_error(reference::gpt2_logits(config, exported, kIds, 2, 6), with_lora),
      1e-5);
  // Disabling a merged model unmerges it (PEFT behaviour).
  set_adapters_enabled(*model, false);
  EXPECT_FALSE(lora_merged(*model));
  EXPECT_LT(reference::relative_error(reference::to_doubles(model(x)), base), 1e-5);
  set_adapters_enabled(*model, true);
  merge_lora(*model);
  unmerge_lora(*model);
  EXPECT_LT((model->named_parameters()["transformer.h.1.mlp.c_proj.weight"] - w)
                .abs()
                .max()
                .item<double>(),
            1e-6);
}

TEST(LoraGPT2Model, GradientsFlowOnlyToLoraParameters) {
  const GPT2Config config = lora_gpt2_config();
  GPT2LMHead model = loaded_gpt2(config, reference::random_hf_weights(config, 4));
  apply_lora(*model, {4, 8, 0, false, {"c_attn", "c_fc"}});
  const at::Tensor x = ids_tensor();
  const at::Tensor logits = model(x);
  at::cross_entropy_loss(logits.view({-1, config.vocab_size}), x.view(-1)).backward();
  int64_t lora_count = 0;
  for (const auto& item : model->named_parameters()) {
    const bool is_lora = item.key().find(".lora_") != std::string::npos;
    EXPECT_EQ(item.value().requires_grad(), is_lora) << item.key();
    EXPECT_EQ(item.value().grad().defined(), is_lora) << item.key();
    if (is_lora) {
      ++lora_count;
      // With B = 0 the gradient reaches B but not A (dL/dA = B^T (...) = 0).
      const double norm = item.value().grad().norm().item<double>();
      if (item.key().find("lora_B") != std::string::npos) {
        EXPECT_GT(norm, 0.0) << item.key();
      } else {
        EXPECT_EQ(norm, 0.0) << item.key();
      }
    }
  }
  EXPECT_EQ(lora_count, 8);
}

TEST(LoraGPT2Model, LoraGradientMatchesFiniteDifferencesInFloat64) {
  GPT2Config config = lora_gpt2_config();
  config.n_layer = 1;
  GPT2LMHead model = loaded_gpt2(config, reference::random_hf_weights(config, 5));
  model->to(at::kDouble);
  apply_lora(*model, {2, 4, 0, false, {"c_attn", "mlp.c_proj"}});
  test::randomize_lora(*model, 7);
  const at::Tensor x = ids_tensor();
  auto loss_fn = [&] {
    return at::cross_entropy_loss(model(x).view({-1, config.vocab_size}), x.view(-1));
  };
  loss_fn().backward();
  auto params = lora_parameters(*model);
  for (const char* name :
       {"transformer.h.0.attn.c_attn.lora_B.weight", "transformer.h.0.attn.c_attn.lora_A.weight",
        "transformer.h.0.mlp.c_proj.lora_B.weight", "transformer.h.0.mlp.c_proj.lora_A.weight"}) {
    at::Tensor p = params[name];
    const at::Tensor grad = p.grad().clone();
    auto flat = p.view(-1);
    for (int64_t index : {int64_t{0}, p.numel() / 2, p.numel() - 1}) {
      const double eps = 1e-6;
      double plus, minus;
      {
        torch::NoGradGuard no_grad;
        const double saved = flat[index].item<double>();
        flat[index].fill_(saved + eps);
        plus = loss_fn().item<double>();
        flat[index].fill_(saved - eps);
        minus = loss_fn().item<double>();
        flat[index].fill_(saved);
      }
      const double numeric = (plus - minus) / (2 * eps);
      const double analytic = grad.view(-1)[index].item<double>();
      EXPECT_NEAR(analytic, numeric, 1e-7 + 1e-5 * std::fabs(numeric))
          << name << "[" << index << "]";
    }
  }
}

TEST(LoraGPT2Model, DropoutActsOnlyInTrainMode) {
  const GPT2Config config = lora_gpt2_config();
  GPT2LMHead model = loaded_gpt2(config, reference::random_hf_weights(config, 6));
  apply_lora(*model, {4, 8, 0.5, false, {"c_attn"}});
  test::randomize_lora(*model, 8);
  torch::NoGradGuard no_grad;
  const at::Tensor x = ids_tensor();
  model->train();
  EXPECT_FALSE(model(x).equal(model(x)));
  model->eval();
  EXPECT_TRUE(model(x).equal(model(x)));
}

TEST(LoraTargets, SuffixMatchingAndErrors) {
  const GPT2Config config = lora_gpt2_config();
  {
    GPT2LMHead model(config);
    EXPECT_EQ(
        apply_lora(*model, {2, 4, 0, false, {"c_proj"}}),
        (std::vector<std::string>{"transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_proj",
                                  "transformer.h.1.attn.c_proj", "transformer.h.1.mlp.c_proj"}));
    EXPECT_NE(test::error_of([&] {
                apply_lora(*model, {2, 4, 0, false, {"c_proj"}});
              }).find("already applied"),
              std::string::npos);
  }
  {
    GPT2LMHead model(config);
    EXPECT_EQ(
        apply_lora(*model, {2, 4, 0, false, {"attn.c_proj"}}),
        (std::vector<std::string>{"transformer.h.0.attn.c_proj", "transformer.h.1.attn.c_proj"}));
  }
  GPT2LMHead model(config);
  const std::string message = test::error_of([&] {
    apply_lora(*model, {2, 4, 0, false, {"c_attn", "q_proj"}});
  });
  EXPECT_NE(message.find("[lora] target module(s) q_proj match no layer"), std::string::npos)
      << message;
  EXPECT_NE(message.find("c_attn"), std::string::npos) << message;
  EXPECT_NE(message.find("mlp.c_fc"), std::string::npos) << message;
  EXPECT_FALSE(has_lora(*model));  // nothing applied on error
  // A part of a name is not a match ("attn" is not "c_attn").
  EXPECT_NE(test::error_of([&] {
              apply_lora(*model, {2, 4, 0, false, {"attn"}});
            }).find("attn"),
            std::string::npos);
}

TEST(Peft, AdapterTensorNamesAndShapes) {
  const GPT2Config config = lora_gpt2_config();
  GPT2LMHead model(config);
  apply_lora(*model, {4, 8, 0, false, {"c_attn", "c_fc"}});
  const TensorMap tensors = peft_adapter_tensors(*model);
  EXPECT_EQ(tensors.size(), 8u);
  const std::string p = "base_model.model.transformer.h.1.";
  EXPECT_EQ(tensors.at(p + "attn.c_attn.lora_A.weight").sizes(), (at::IntArrayRef{4, 16}));
  EXPECT_EQ(tensors.at(p + "attn.c_attn.lora_B.weight").sizes(), (at::IntArrayRef{48, 4}));
  EXPECT_EQ(tensors.at(p + "mlp.c_fc.lora_A.weight").sizes(), (at::IntArrayRef{4, 16}));
  EXPECT_EQ(tensors.at(p + "mlp.c_fc.lora_B.weight").sizes(), (at::IntArrayRef{24, 4}));
  // Base export stays free of adapter tensors.
  for (const auto& [name, tensor] : model->hf_state_dict()) {
    EXPECT_EQ(name.find("lora"), std::string::npos) << name;
  }
}

TEST(Peft, AdapterConfigJsonRoundTrips) {
  const LoraConfig lora{16, 32, 0.05, true, {"c_attn", "c_proj"}};
  const auto json = peft_adapter_config(lora, "gpt2", true);
  EXPECT_EQ(json.at("peft_type"), "LORA");
  EXPECT_EQ(json.at("task_type"), "CAUSAL_LM");
  EXPECT_EQ(json.at("r"), 16);
  EXPECT_EQ(json.at("lora_alpha"), 32);
  EXPECT_TRUE(json.at("lora_alpha").is_number_integer());
  EXPECT_EQ(json.at("lora_dropout"), 0.05);
  EXPECT_EQ(json.at("target_modules"), nlohmann::json::array({"c_attn", "c_proj"}));
  EXPECT_EQ(json.at("bias"), "none");
  EXPECT_EQ(json.at("fan_in_fan_out"), true);
  EXPECT_EQ(json.at("use_rslora"), true);
  EXPECT_EQ(json.at("inference_mode"), true);
  EXPECT_TRUE(json.at("modules_to_save").is_null());
  EXPECT_EQ(json.at("base_model_name_or_path"), "gpt2");
  EXPECT_EQ(peft_adapter_config(lora, "x", false, "SEQ_CLS").at("task_type"), "SEQ_CLS");

  const LoraConfig back = lora_config_from_peft(json);
  EXPECT_EQ(back.rank, 16);
  EXPECT_EQ(back.alpha, 32);
  EXPECT_EQ(back.dropout, 0.05);
  EXPECT_TRUE(back.rslora);
  EXPECT_EQ(back.targets, lora.targets);

  auto bad = json;
  bad["target_modules"] = ".*c_attn";
  EXPECT_NE(test::error_of([&] {
              lora_config_from_peft(bad, "a/adapter_config.json");
            }).find("[peft] a/adapter_config.json: target_modules"),
            std::string::npos);
  bad = json;
  bad["use_dora"] = true;
  EXPECT_NE(test::error_of([&] { lora_config_from_peft(bad); }).find("use_dora"),
            std::string::npos);
  bad = json;
  bad["bias"] = "all";
  EXPECT_NE(test::error_of([&] { lora_config_from_peft(bad); }).find("bias"), std::string::npos);
}

TEST(Peft, LoadAdapterTensorsIntoFreshModel) {
  const GPT2Config config = lora_gpt2_config();
  const TensorMap weights = reference::random_hf_weights(config, 9);
  const LoraConfig lora{4, 12, 0, false, {"c_attn", "c_fc"}};
  GPT2LMHead trained = loaded_gpt2(config, weights);
  apply_lora(*trained, lora);
  test::randomize_lora(*trained, 10);
  const TensorMap adapter = peft_adapter_tensors(*trained);

  GPT2LMHead fresh = loaded_gpt2(config, weights);
  load_peft_adapter_tensors(*fresh, adapter, lora);
  const TensorMap merged = hand_merged_weights(fresh, weights, 12.0 / 4.0);
  torch::NoGradGuard no_grad;
  EXPECT_LT(reference::relative_error(reference::to_doubles(fresh(ids_tensor())),
                                      reference::gpt2_logits(config, merged, kIds, 2, 6)),
            1e-4);
  for (const auto& [name, tensor] : adapter) {
    EXPECT_TRUE(peft_adapter_tensors(*fresh).at(name).equal(tensor)) << name;
  }

  TensorMap missing = adapter;
  missing.erase("base_model.model.transformer.h.0.mlp.c_fc.lora_B.weight");
  EXPECT_NE(
      test::error_of([&] { load_peft_adapter_tensors(*fresh, missing, lora, "ad.safetensors"); })
          .find("[peft] ad.safetensors: missing key(s) "
                "base_model.model.transformer.h.0.mlp.c_fc.lora_B.weight"),
      std::string::npos);
  TensorMap extra = adapter;
  extra["base_model.model.transformer.h.0.attn.c_proj.lora_A.weight"] = torch::zeros({4, 16});
  EXPECT_NE(test::error_of([&] {
              load_peft_adapter_tensors(*fresh, extra, lora);
            }).find("unexpected key(s) base_model.model.transformer.h.0.attn.c_proj.lora_A"),
            std::string::npos);
  TensorMap wrong = adapter;
  wrong["base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"] = torch::zeros({8, 16});
  EXPECT_NE(test::error_of([&] {
              load_peft_adapter_tensors(*fresh, wrong, lora);
            }).find("lora_A.weight has shape [8, 16], the model expects [4, 16]"),
            std::string::npos);
}

TEST(LoraBFloat16, ForwardAndMergeStayClose) {
  const GPT2Config config = lora_gpt2_config();
  const TensorMap weights = reference::random_hf_weights(config, 11);
  GPT2LMHead model = loaded_gpt2(config, weights);
  apply_lora(*model, {4, 8, 0, false, {"c_attn", "c_fc"}});
  test::randomize_lora(*model, 12);
  const TensorMap merged = hand_merged_weights(model, weights, 2.0);
  const auto expected = reference::gpt2_logits(config, merged, kIds, 2, 6);
  model->to(at::kBFloat16);
  torch::NoGradGuard no_grad;
  EXPECT_LT(reference::relative_error(reference::to_doubles(model(ids_tensor())), expected), 5e-2);
  merge_lora(*model);
  EXPECT_LT(reference::relative_error(reference::to_doubles(model(ids_tensor())), expected), 5e-2);
}

}  // namespace
}  // namespace tailor
