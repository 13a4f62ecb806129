// Export of a trained multi-reward model (20 Questions, models/heads/multi_reward.h):
//   out/backbone/                     the frozen backbone that gives the features (a HF model
//                                     directory, as model exports write it)
//   out/multi_reward.safetensors      hidden.weight [H, D], hidden.bias, heads.weight [K, H],
//                                     heads.bias, feature_mean [D], feature_scale [D] (float32)
//   out/multi_reward_config.json      {"model_type": "multi_reward", embed_dim, hidden_dim,
//                                     dropout, heads: [names], template, max_length, id}
// `id` is the FNV-1a hash of multi_reward.safetensors: a user's profile records it, so a profile
// is never applied to a different reward model (whose h means something else).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "models/core/causal_lm.h"
#include "models/heads/multi_reward.h"
#include "models/tokenizer/prompt_format.h"

namespace tailor {

// How a (prompt, completion) became the features the model was trained on.
struct FeatureEncoding {
  PromptTemplate prompt_template = PromptTemplate::kPlain;
  int64_t max_length = 0;  // tokens kept (the last ones) of prompt + completion
};

struct MultiRewardExport {
  CausalLM backbone;
  MultiReward model{nullptr};  // in eval mode
  FeatureEncoding encoding;
  std::string id;  // 16 hex digits
};

// Writes `out` atomically; returns the export's id.
std::string save_multi_reward_export(const std::filesystem::path& out, CausalLMImpl& backbone,
                                     MultiRewardImpl& model, const FeatureEncoding& encoding,
                                     const std::filesystem::path& tokenizer_dir);

// The id alone (reads multi_reward_config.json); Error("multi_reward", ...) naming the file
// when `dir` is not a multi-reward export.
std::string multi_reward_export_id(const std::filesystem::path& dir);

bool is_multi_reward_dir(const std::filesystem::path& dir);

MultiRewardExport load_multi_reward_export(const std::filesystem::path& dir);

}  // namespace tailor
