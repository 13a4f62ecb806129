// tailor run RECIPE.yaml [key=value ...] [--print-config]
//
// Everything is validated before anything is written: the recipe against its stage's schema, the
// overrides, the rules between keys and finally that the input files exist. Only then is
// output_dir/recipe.yaml written (the resolved recipe, so `tailor run output_dir/recipe.yaml`
// repeats the run) and the stage runner started. Stage runners do not write recipe.yaml.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "dist/runtime.h"
#include "stages/registry.h"
#include "train/recipe/sections.h"

namespace tailor::cli {
namespace fs = std::filesystem;

namespace {

std::string help_footer() {
  std::string text =
      "\nOverrides: KEY=VALUE with the value in YAML, e.g. train.max_steps=10 "
      "optimizer.lr=1.0e-3 lora.targets=[c_attn,c_fc]\n"
      "Paths in recipes are relative to the working directory.\n";
  for (const auto& stage : stages()) {
    text += "\nRecipe keys of stage '" + stage.name + "' (" + stage.summary + "):\n" +
            stage.schema->reference();
  }
  return text;
}

}  // namespace

int run_command(const std::vector<std::string>& args) {
  CLI::App app{"Run a training recipe: validate it, save the resolved recipe in output_dir, run.",
               args.at(0)};
  std::string recipe_file;
  std::vector<std::string> overrides;
  bool print_config = false;
  app.add_option("recipe", recipe_file, "recipe YAML file, e.g. recipes/quickstart.yaml")
      ->required();
  app.add_option("overrides", overrides, "KEY=VALUE overrides, applied in order after the file");
  app.add_flag("--print-config", print_config,
               "print the fully resolved recipe (all defaults filled) and exit; writes nothing");
  app.footer(help_footer());
  std::vector<std::string> reversed(args.rbegin(), args.rend() - 1);  // CLI11 parses from the back
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  const std::string text = read_file(recipe_file);
  const Stage& stage = recipe_stage(text, recipe_file, overrides);
  const ResolvedConfig config = stage.resolve(text, recipe_file, overrides);
  if (print_config) {
    std::cout << "# Resolved recipe " << recipe_file << " (hash " << config.hash() << ")\n"
              << config.to_yaml(/*with_docs=*/true);
    return 0;
  }
  stage.check_inputs(config);
  if (!stage.run) throw Error("run", "stage '" + stage.name + "' is not available in this build");

  const int world_size = dist::world().world_size();
  if (world_size > 1 && !stage.data_parallel) {
    throw Error("run", "stage '" + stage.name + "' runs on one process only (it is not " +
                           "data-parallel yet), but was started on " + std::to_string(world_size) +
                           " ranks; run it without mpirun. " + "Nothing was written.");
  }
  const fs::path output_dir = config.get<std::string>("output_dir");
  if (dist::world().rank() != 0) {  // rank 0 speaks and writes for all
    stage.run(config);
    return 0;
  }
  write_resolved_recipe(config, output_dir);
  std::cout << "[run] stage " << stage.name << ", recipe hash " << config.hash() << ", resolved "
            << "recipe saved to " << (output_dir / "recipe.yaml").string() << "\n"
            << config.to_yaml(/*with_docs=*/false) << std::flush;
  stage.run(config);
  return 0;
}

}  // namespace tailor::cli
