// The SFT recipe: a plain struct per section, filled from a YAML recipe file validated against
// sft_recipe_schema() (trainer/recipe/schema.h). The schema is the one place that holds each key's
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

#include "trainer/optim/lr_schedule.h"
#include "trainer/recipe/schema.h"

namespace tailor {

enum class ModelInit { kRandom, kPretrained };
enum class DataFormat { kText, kPromptResponse };
// How a prompt becomes model input (trainer/stages/prompt_format.h): plain = as written;
// mistral_instruct = "[INST] prompt [/INST]" as Mistral-7B-Instruct's chat template writes it.
enum class PromptTemplate { kPlain, kMistralInstruct };
// fp32: everything float32. bf16_autocast: float32 weights, matmuls in bfloat16.
// bf16: bfloat16 weights with float32 master copies in the optimizer.
enum class Precision { kFp32, kBf16Autocast, kBf16 };

// Recipe names of the enums ("random", "prompt_response", "bf16_autocast", ...).
const std::string& to_string(ModelInit v);
const std::string& to_string(DataFormat v);
const std::string& to_string(PromptTemplate v);
const std::string& to_string(Precision v);

// No member initializers on purpose: defaults live in the schema only. Use load_sft_recipe() or
// sft_recipe_schema().bind(...) to get a filled struct.
struct ModelSection {
  ModelInit init;
  std::filesystem::path path;  // HF checkpoint directory (init: pretrained)
  std::string preset;  // gpt2-tiny | gpt2 | gpt2-medium | gpt2-large | gpt2-xl (init: random)
  int64_t n_layer;     // 0 = the preset's value (init: random only)
  int64_t n_head;
  int64_t n_embd;
  int64_t n_positions;
  double dropout;  // resid/embd/attn dropout while training
};

struct LoraSection {
  bool enabled;
  int64_t rank;
  double alpha;
  double dropout;
  bool rslora;                       // scale alpha/sqrt(r) instead of alpha/r
  std::vector<std::string> targets;  // HF module names: c_attn, c_proj, c_fc
};

struct DataSection {
  std::filesystem::path train;  // .jsonl or .h5
  std::filesystem::path eval;   // "" = none
  DataFormat format;
  PromptTemplate prompt_template;  // recipe key data.template
  int64_t max_length;
  double eval_fraction;  // held out of train when there is no eval file
};

struct OptimizerSection {
  double lr;
  double weight_decay;
  double beta1;
  double beta2;
  double eps;
  double grad_clip;  // 0 = off
};

struct ScheduleSection {
  ScheduleType type;
  int64_t warmup_steps;
  double min_lr_ratio;
};

// The learning-rate schedule of a run of max_steps optimizer steps, as every stage builds it:
// base rate optimizer.lr, warmup capped at the run's length.
ScheduleConfig schedule_config(const ScheduleSection& schedule, const OptimizerSection& optimizer,
                               int64_t max_steps);

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

// Data parallelism over the ranks `mpirun -np N tailor run` starts (see docs/distributed.md).
struct DistSection {
  std::string device;   // cpu | cuda (each rank on the GPU of its local rank; CUDA builds)
  int64_t zero_stage;   // 0 = replicated, 1 = + sharded optimizer state, 2 = + sharded gradients,
                        // 3 = + sharded parameters
  std::string backend;  // auto | mpi | nccl | single
  double bucket_mb;     // gradient / parameter bucket size for stages 0-2
  bool overlap;         // ZeRO-3: collectives on a communication thread, overlapping compute
  int64_t prefetch;     // ZeRO-3 with overlap: hook groups gathered ahead
  double collective_timeout_s;  // a collective waiting longer means a stuck rank; 0 = no limit
};

struct ExportSection {
  bool enabled;
  bool merge_lora;
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
void write_resolved_recipe(const ResolvedConfig& config, const std::filesystem::path& run_dir);
void write_resolved_recipe(const SftRecipe& recipe, const std::filesystem::path& run_dir);

}  // namespace tailor
