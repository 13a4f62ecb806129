// The SFT recipe: a plain struct per section, filled from a YAML recipe file validated against
// sft_recipe_schema() (train/recipe/schema.h). The schema is the one place that holds each key's
// default, range and doc; recipes/quickstart.yaml is a complete, commented example.
//
// Paths in a recipe (output_dir, tokenizer, model.path, data.*) are used as written: relative
// paths are relative to the working directory of `tailor run`, not to the recipe file, so a
// recipe saved into a run directory still names the same files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "models/tokenizer/prompt_format.h"
#include "train/recipe/schema.h"
#include "train/recipe/sections.h"

namespace tailor {

enum class DataFormat { kText, kPromptResponse };
// Recipe names: "text", "prompt_response".
const std::string& to_string(DataFormat v);

struct DataSection {
  std::filesystem::path train;  // .jsonl or .h5
  std::filesystem::path eval;   // "" = none
  DataFormat format;
  PromptTemplate prompt_template;  // recipe key data.template
  int64_t max_length;
  double eval_fraction;  // held out of train when there is no eval file
};

struct TrainSection {
  int64_t max_steps;
  int64_t micro_batch_size;
  int64_t grad_accum;
  int64_t global_batch_size;  // 0 = micro_batch_size * grad_accum * world size
  Precision precision;
  int64_t log_every;
  int64_t eval_every;  // 0 = only at the end
  int64_t eval_batches;
  int64_t checkpoint_every;  // 0 = only at the end
  int64_t keep_checkpoints;
  bool resume;
};

// Greedy completions of eval prompts at the end of a run, next to their references.
struct SamplesSection {
  int64_t prompts;         // eval prompts to complete; 0 = none
  int64_t max_new_tokens;  // per completion
  int64_t show;            // printed to stdout; all go to output_dir/samples.jsonl
};

struct SftRecipe {
  std::string stage;  // "sft"
  int64_t seed;
  std::filesystem::path output_dir;
  std::filesystem::path tokenizer;  // directory with vocab.json+merges.txt or tokenizer.json
  ModelSection model;
  LoraSection lora;
  DataSection data;
  OptimizerSection optimizer;
  ScheduleSection schedule;
  TrainSection train;
  DistSection dist;
  SamplesSection samples;
  ExportSection export_;  // the `export` section (a C++ keyword)
};

// The SFT recipe's keys, types, defaults, ranges and docs.
const Schema<SftRecipe>& sft_recipe_schema();

// Validates a recipe text (named `source` in messages) with overrides against the schema, then
// the rules that span keys (e.g. model.path required when model.init is pretrained). Reads no
// files; throws Error("recipe", ...) naming the file/line or override, the key and what was
// expected.
ResolvedConfig resolve_sft_recipe(const std::string& yaml_text, const std::string& source,
                                  const std::vector<std::string>& overrides = {});

// Reads `file` and resolves it as above. Input files are not checked here (see below).
SftRecipe load_sft_recipe(const std::filesystem::path& file,
                          const std::vector<std::string>& overrides = {});

// Runs the cross-key rules on a resolved config and binds it into the struct.
SftRecipe sft_recipe_from_config(const ResolvedConfig& config);
// Micro-batches per optimizer step on each of `world_size` ranks: train.grad_accum, or when
// train.global_batch_size is set, global / (micro_batch_size * world_size). Throws
// Error("recipe", ...) naming the keys when the global batch does not divide.
int64_t grad_accum_for_world(const SftRecipe& recipe, int world_size);

// The resolved config of a recipe (for YAML output and hashing).
ResolvedConfig sft_recipe_to_config(const SftRecipe& recipe);

// The separate, last validation step before a run: the input files and directories the recipe
// names exist (data.train, data.eval, tokenizer, model.path when pretrained) and output_dir is
// not a file. Throws Error("recipe", ...) naming the key and the path.
void check_sft_inputs(const SftRecipe& recipe);

// The fully resolved recipe as YAML, each key commented with its doc; loads back to `recipe`.
std::string resolved_recipe_yaml(const SftRecipe& recipe);
// Stable 16-hex-digit hash of the resolved recipe (ResolvedConfig::hash); ranks compare it.
std::string recipe_hash(const SftRecipe& recipe);

// Writes run_dir/recipe.yaml atomically (creating run_dir) so that
// `tailor run run_dir/recipe.yaml` repeats the run.
void write_resolved_recipe(const SftRecipe& recipe, const std::filesystem::path& run_dir);

}  // namespace tailor
