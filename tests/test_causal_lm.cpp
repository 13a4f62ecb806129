// The causal-LM interface's helpers, against hand-written float64 math over the float64 GPT-2
// reference (tests/gpt2_reference.h): per-token next-token log-probs and the masked sums that
// DPO and `tailor score` use; the base model a sequence-classification head attaches to.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include <torch/torch.h>

#include "common/error.h"
#include "gpt2_reference.h"
#include "models/core/causal_lm.h"
#include "models/gpt2/gpt2.h"
#include "models/mistral/mistral_config.h"
#include "models/registry.h"

namespace tailor {
namespace {

GPT2Config small() {
  GPT2Config config;
  config.vocab_size = 41;
  config.n_positions = 16;
  config.n_embd = 16;
  config.n_layer = 2;
  config.n_head = 2;
  config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = 0.0;
  return config;
}

TEST(CausalLmLogProbs, MaskedSumsEqualFloat64ReferenceLogSoftmax) {
  const GPT2Config config = small();
  const TensorMap weights = reference::random_hf_weights(config, 3);
  GPT2LMHead model(config);
  model->load_hf_state_dict(weights);
  model->eval();
  const int64_t B = 2, T = 7, V = config.vocab_size;
  const std::vector<int64_t> ids = {3, 17, 5, 40, 0, 9, 22,  //
                                    1, 2,  3, 4,  5, 6, 7};
  // Row 0: tokens 3..6 are the response; row 1: only the last two. Position 0 never counts.
  const std::vector<int64_t> mask = {1, 0, 0, 1, 1, 1, 1,  //
                                     0, 0, 0, 0, 0, 1, 1};
  torch::NoGradGuard no_grad;
  const at::Tensor id_tensor = torch::tensor(ids).view({B, T});
  const at::Tensor logits = model->forward(id_tensor);
  const at::Tensor per_token = next_token_log_probs(logits, id_tensor);
  ASSERT_EQ(per_token.sizes(), (at::IntArrayRef{B, T - 1}));
  EXPECT_EQ(per_token.scalar_type(), at::kFloat);
  const at::Tensor sums = sequence_log_probs(logits, id_tensor, torch::tensor(mask).view({B, T}));

  const auto logp =
      reference::log_softmax_rows(reference::gpt2_logits(config, weights, ids, B, T), V);
  for (int64_t b = 0; b < B; ++b) {
    double expected_sum = 0;
    for (int64_t t = 0; t + 1 < T; ++t) {
      const double expected = logp[(b * T + t) * V + ids[b * T + t + 1]];
      EXPECT_NEAR(per_token[b][t].item<double>(), expected,
                  1e-4 * std::max(1.0, std::abs(expected)));
      if (mask[b * T + t + 1]) expected_sum += expected;
    }
    EXPECT_NEAR(sums[b].item<double>(), expected_sum, 1e-4 * std::max(1.0, std::abs(expected_sum)))
        << "row " << b;
  }
  // A float64 model keeps float64 (no rounding to float32 on the way).
  model->to(at::kDouble);
  EXPECT_EQ(next_token_log_probs(model->forward(id_tensor), id_tensor).scalar_type(), at::kDouble);
}

TEST(CausalLmLogProbs, ShapeMismatchIsAnError) {
  const at::Tensor logits = torch::zeros({2, 5, 7});
  EXPECT_THROW(next_token_log_probs(logits, torch::zeros({2, 4}, torch::kLong)), Error);
  EXPECT_THROW(sequence_log_probs(logits, torch::zeros({2, 5}, torch::kLong),
                                  torch::ones({2, 4}, torch::kLong)),
               Error);
}

TEST(CausalLmBaseModel, IsTheModuleBesidesTheLmHead) {
  const CausalLM gpt2 = causal_lm_from_config(preset_config("gpt2-tiny"), "test", false);
  EXPECT_EQ(gpt2->base_model().first, "transformer");
  const CausalLM mistral = causal_lm_from_config(preset_config("mistral-tiny"), "test", false);
  EXPECT_EQ(mistral->base_model().first, "model");
  EXPECT_EQ(mistral->model_type(), "mistral");
  EXPECT_EQ(mistral->initializer_range(), 0.02);
}

// The registry's list (what recipes accept) is every family's presets, each building a model of
// its family.
TEST(CausalLmRegistry, PresetNamesCoverEveryFamilyAndBuild) {
  std::vector<std::string> families = GPT2Config::preset_names();
  for (const auto& name : MistralConfig::preset_names())
    families.push_back(name);
  std::vector<std::string> listed = preset_names();
  std::sort(families.begin(), families.end());
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(listed, families);
  for (const auto& name : {"gpt2-tiny", "mistral-tiny"}) {
    const auto config = preset_config(name);
    EXPECT_EQ(causal_lm_from_config(config, name, false)->model_type(),
              config.at("model_type").get<std::string>());
  }
  EXPECT_THROW(preset_config("gpt3"), Error);
}

}  // namespace
}  // namespace tailor
