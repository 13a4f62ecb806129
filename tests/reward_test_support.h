// What the reward-stage tests share: running from the repository root, a bundled rm_synth_*
// recipe shrunk to a model and data that train in seconds, and reading JSONL outputs.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "jsonl_test_support.h"
#include "stages/reward/reward_recipe.h"

namespace tailor::testing {

// Runs from the repository root so the recipes' relative tokenizer and data paths resolve.
struct InRepo {
  std::filesystem::path old = std::filesystem::current_path();
  InRepo() { std::filesystem::current_path(TAILOR_SOURCE_DIR); }
  ~InRepo() { std::filesystem::current_path(old); }
};

// recipes/rm_synth_<variant>.yaml writing to `out`, with a 1-layer width-16 backbone, a small VAE
// and 60 synthetic prompts, then `extra` overrides (the train.* keys each test needs).
RewardRecipe tiny_reward_recipe(const std::string& variant, const std::filesystem::path& out,
                                const std::vector<std::string>& extra);

}  // namespace tailor::testing
