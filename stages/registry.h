// The stages `tailor run` knows, chosen by a recipe's `stage` key. Each stage has its own recipe
// struct and schema (sft: SftRecipe, sft_recipe_schema() in stages/sft/sft_recipe.h; reward:
// stages/reward/reward_recipe.h); this table erases those types so the CLI treats every
// stage alike: recipe_stage() -> resolve -> (--print-config | check_inputs -> write
// output_dir/recipe.yaml -> run).
//
// Adding a stage (elicit, ...): a folder stages/<stage>/ with <stage>_recipe.{h,cpp} (struct,
// schema with the `stage`, `seed` and `output_dir` keys every stage has, resolve_, from_config
// and check_inputs functions like the SFT ones), a runner `void run_<stage>_stage(const Recipe&)`
// in <stage>_stage.{h,cpp} built on the shared loop (train/loop/training_loop.h), and one
// make_stage<Recipe>(...) line in stages/registry.cpp (docs/architecture.md).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "train/recipe/schema.h"

namespace tailor {

template <class Recipe>
using StageRunner = std::function<void(const Recipe&)>;  // errors throw

struct Stage {
  std::string name;     // the recipe's `stage` value
  std::string summary;  // one line for --help
  const SchemaSpec* schema = nullptr;
  // Full validation (schema + cross-key rules); reads no files.
  std::function<ResolvedConfig(const std::string& yaml_text, const std::string& source,
                               const std::vector<std::string>& overrides)>
      resolve;
  // The last validation step: input files exist. Throws Error naming the key and the path.
  std::function<void(const ResolvedConfig&)> check_inputs;
  // Runs the stage; empty when this build has no runner for it.
  std::function<void(const ResolvedConfig&)> run;
  // Whether the runner trains data-parallel over several ranks (mpirun). A stage that does not
  // is refused under mpirun before anything is written, instead of N copies racing on one
  // output directory.
  bool data_parallel = false;
};

// Type-erases one stage's recipe functions and runner (runner may be empty).
template <class Recipe>
Stage make_stage(std::string name, std::string summary, const Schema<Recipe>& schema,
                 ResolvedConfig (*resolve)(const std::string&, const std::string&,
                                           const std::vector<std::string>&),
                 Recipe (*from_config)(const ResolvedConfig&), void (*check_inputs)(const Recipe&),
                 StageRunner<Recipe> runner, bool data_parallel) {
  Stage stage;
  stage.name = std::move(name);
  stage.summary = std::move(summary);
  stage.schema = &schema.spec();
  stage.data_parallel = data_parallel;
  stage.resolve = resolve;
  stage.check_inputs = [from_config, check_inputs](const ResolvedConfig& config) {
    check_inputs(from_config(config));
  };
  if (runner) {
    stage.run = [from_config, runner](const ResolvedConfig& config) {
      runner(from_config(config));
    };
  }
  return stage;
}

// Every stage this build knows, runnable or not.
const std::vector<Stage>& stages();

// The stage named `name`; throws Error("recipe", ...) listing the known stages.
const Stage& find_stage(const std::string& name);

// The stage a recipe text asks for (its `stage` key, or a `stage=...` override). Throws
// Error("recipe", ...) naming the file/line or override when it is missing or unknown.
const Stage& recipe_stage(const std::string& yaml_text, const std::string& source,
                          const std::vector<std::string>& overrides = {});

}  // namespace tailor
