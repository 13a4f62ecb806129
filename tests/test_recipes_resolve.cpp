// Every shipped recipe (recipes/*.yaml) resolves through its stage's schema, both through the
// C++ resolve API and through `tailor run --print-config`; the recipes whose inputs are in this
// repository pass the input checks, and the UltraFeedback ones (recipes/rm_uf_*.yaml), whose data
// and model cannot be downloaded here, validate every key and then fail the input check naming
// data.path, then model.path once the data exists.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "reward_test_support.h"
#include "stages/registry.h"
#include "stages/sft/sft_recipe.h"
#include "test_support.h"
#include "train/recipe/schema.h"

namespace tailor {
namespace {
namespace fs = std::filesystem;

// recipes/*.yaml, relative to the repository root, sorted.
std::vector<std::string> shipped_recipes() {
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator("recipes"))
    if (entry.path().extension() == ".yaml")
      out.push_back("recipes/" + entry.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

ResolvedConfig resolve_file(const std::string& file,
                            const std::vector<std::string>& overrides = {}) {
  const std::string text = read_file(file);
  return recipe_stage(text, file, overrides).resolve(text, file, overrides);
}

TEST(ShippedRecipes, EveryRecipeResolvesAndPrintConfigRoundTrips) {
  testing::InRepo in_repo;  // recipe paths are relative to the repository root
  const std::vector<std::string> recipes = shipped_recipes();
  // The recipes the README and docs name; more may be added, none may disappear unnoticed.
  for (const char* name :
       {"quickstart", "quickstart_dist", "rm_synth_bt", "rm_synth_vae", "rm_synth_vae_adaptive",
        "rm_synth_vae_pcgrad", "rm_synth_vae_mgda", "rm_synth_vae_contrastive", "rm_uf_bt",
        "rm_uf_vae", "rm_uf_vae_adaptive", "rm_uf_vae_pcgrad", "rm_uf_vae_mgda",
        "rm_uf_vae_contrastive", "agent_demo", "agent_mistral"}) {
    EXPECT_NE(std::find(recipes.begin(), recipes.end(), "recipes/" + std::string(name) + ".yaml"),
              recipes.end())
        << name;
  }
  for (const std::string& file : recipes) {
    SCOPED_TRACE(file);
    const std::string text = read_file(file);
    std::string stage_name, hash;
    ASSERT_EQ(test::error_or_empty([&] {
                const Stage& stage = recipe_stage(text, file);
                stage_name = stage.name;
                hash = stage.resolve(text, file, {}).hash();
              }),
              "");
    // The CLI's --print-config: same stage, and its output is a recipe that resolves to the
    // same values (hash).
    ::testing::internal::CaptureStdout();
    int rc = -1;
    const std::string error = test::error_or_empty([&] {
      rc = cli::run_command({"tailor run", file, "--print-config"});
    });
    const std::string printed = ::testing::internal::GetCapturedStdout();
    ASSERT_EQ(error, "");
    EXPECT_EQ(rc, 0);
    const Stage& again = recipe_stage(printed, "stdout");
    EXPECT_EQ(again.name, stage_name);
    EXPECT_EQ(again.resolve(printed, "stdout", {}).hash(), hash);
  }
}

TEST(ShippedRecipes, InputChecksPassOrNameTheMissingKey) {
  testing::InRepo in_repo;
  for (const std::string& file : shipped_recipes()) {
    SCOPED_TRACE(file);
    const ResolvedConfig config = resolve_file(file);
    const std::string name = fs::path(file).stem().string();
    const std::string error = test::error_or_empty(
        [&] { find_stage(config.get<std::string>("stage")).check_inputs(config); });
    if (test::starts_with(name, "quickstart") || test::starts_with(name, "rm_synth_")) {
      EXPECT_EQ(error, "") << "its inputs are in this repository";
    } else if (!error.empty()) {
      // Recipes for data that is not here: the message names a recipe key and what is missing.
      EXPECT_TRUE(test::starts_with(error, "[recipe] ")) << error;
      EXPECT_TRUE(error.find(": file not found: ") != std::string::npos ||
                  error.find(": directory not found: ") != std::string::npos)
          << error;
    }
  }
}

// The six UltraFeedback recipes: GPT-2 124M pretrained with LoRA on UltraFeedback, the same six
// methods as the synthetic ones. Keys validate; the input check names data.path, then
// model.path when the data exists, and passes when both do.
TEST(ShippedRecipes, UltraFeedbackRecipesValidateAndNameMissingInputs) {
  testing::InRepo in_repo;
  const fs::path dir = fs::temp_directory_path() / "tailor_test_rm_uf_inputs";
  fs::remove_all(dir);
  fs::create_directories(dir / "gpt2");
  write_file_atomic(dir / "uf.jsonl", "{}\n");
  write_file_atomic(dir / "gpt2" / "config.json", "{}\n");
  int checked = 0;
  for (const char* variant :
       {"bt", "vae", "vae_adaptive", "vae_pcgrad", "vae_mgda", "vae_contrastive"}) {
    const std::string uf = "recipes/rm_uf_" + std::string(variant) + ".yaml";
    const std::string synth = "recipes/rm_synth_" + std::string(variant) + ".yaml";
    SCOPED_TRACE(uf);
    const ResolvedConfig config = resolve_file(uf);
    EXPECT_EQ(config.get<std::string>("stage"), "reward");
    EXPECT_EQ(config.get<std::string>("data.source"), "ultrafeedback");
    EXPECT_EQ(config.get<std::string>("model.init"), "pretrained");
    // Same method as the synthetic recipe of the same name.
    const ResolvedConfig twin = resolve_file(synth);
    for (const char* key : {"reward.kind", "train.sampling", "train.grad_surgery"})
      EXPECT_EQ(config.get<std::string>(key), twin.get<std::string>(key)) << key;
    EXPECT_EQ(config.get<double>("vae.contrastive"), twin.get<double>("vae.contrastive"));

    const Stage& stage = find_stage("reward");
    const std::string data_path = config.get<std::string>("data.path");
    ASSERT_FALSE(fs::exists(data_path)) << "the test expects UltraFeedback to be absent here";
    const std::string no_data = test::error_of([&] { stage.check_inputs(config); });
    EXPECT_TRUE(test::starts_with(no_data, "[recipe] data.path: file not found: " + data_path))
        << no_data;
    const ResolvedConfig with_data = resolve_file(uf, {"data.path=" + (dir / "uf.jsonl").string()});
    const std::string model_path = with_data.get<std::string>("model.path");
    const std::string no_model = test::error_of([&] { stage.check_inputs(with_data); });
    ASSERT_FALSE(fs::exists(model_path))
        << "the test expects no GPT-2 checkpoint at " << model_path;
    EXPECT_TRUE(
        test::starts_with(no_model, "[recipe] model.path: directory not found: " + model_path))
        << no_model;
    const ResolvedConfig complete = resolve_file(
        uf, {"data.path=" + (dir / "uf.jsonl").string(), "model.path=" + (dir / "gpt2").string()});
    EXPECT_EQ(test::error_or_empty([&] { stage.check_inputs(complete); }), "");
    ++checked;
  }
  EXPECT_EQ(checked, 6);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tailor
