// Recipe sections every training stage shares (model, lora, optimizer, schedule, dist, export):
// their structs, and their keys templated on the stage's recipe struct, so each stage's
// Schema<Recipe> binds them to its own members with the same names, defaults and docs.
//
// Paths in a recipe (output_dir, tokenizer, model.path, data.*) are used as written: relative
// paths are relative to the working directory of `tailor run`, not to the recipe file, so a
// recipe saved into a run directory still names the same files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <c10/core/ScalarType.h>

#include "common/device.h"
#include "common/enum_names.h"
#include "dist/runtime.h"
#include "models/registry.h"
#include "train/optim/lr_schedule.h"
#include "train/recipe/schema.h"

namespace tailor {

enum class ModelInit { kRandom, kPretrained };
// fp32: everything float32. bf16_autocast: float32 weights, matmuls in bfloat16.
// bf16: bfloat16 weights with float32 master copies in the optimizer.
// fp64: everything float64 (slow): for checking that two ways of running compute the same thing,
// free of float32 rounding (tests compare runs in it).
enum class Precision { kFp32, kBf16Autocast, kBf16, kFp64 };
// The dtype of the weights: bfloat16 for bf16, float64 for fp64, float32 otherwise.
c10::ScalarType weights_dtype(Precision precision);

// Recipe names of the enums ("random", "bf16_autocast", ...).
const std::string& to_string(ModelInit v);
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

// Data parallelism over the ranks `mpirun -np N tailor run` starts (see docs/distributed.md).
struct DistSection {
  DeviceType device;      // cpu | cuda (each rank on the GPU of its local rank; CUDA builds)
  int64_t zero_stage;     // 0 = replicated, 1 = + sharded optimizer state, 2 = + sharded gradients,
                          // 3 = + sharded parameters
  dist::Backend backend;  // auto | mpi | nccl | single
  double bucket_mb;       // gradient / parameter bucket size for stages 0-2
  bool overlap;           // ZeRO-3: collectives on a communication thread, overlapping compute
  int64_t prefetch;       // ZeRO-3 with overlap: hook groups gathered ahead
  double collective_timeout_s;  // a collective waiting longer means a stuck rank; 0 = no limit
};

struct ExportSection {
  bool enabled;
  bool merge_lora;
};

// Writes run_dir/recipe.yaml atomically (creating run_dir) so that
// `tailor run run_dir/recipe.yaml` repeats the run.
void write_resolved_recipe(const ResolvedConfig& config, const std::filesystem::path& run_dir);

// Enum names of the shared sections, one table per enum (also used by to_string()).
inline const EnumNames<ModelInit>& model_init_names() {
  static const EnumNames<ModelInit> table = {{"random", ModelInit::kRandom},
                                             {"pretrained", ModelInit::kPretrained}};
  return table;
}
inline const EnumNames<ScheduleType>& schedule_type_names() {
  static const EnumNames<ScheduleType> table = {{"cosine", ScheduleType::kCosine},
                                                {"linear", ScheduleType::kLinear},
                                                {"constant", ScheduleType::kConstant}};
  return table;
}
inline const EnumNames<Precision>& precision_names() {
  static const EnumNames<Precision> table = {{"fp32", Precision::kFp32},
                                             {"bf16_autocast", Precision::kBf16Autocast},
                                             {"bf16", Precision::kBf16},
                                             {"fp64", Precision::kFp64}};
  return table;
}
// Model presets of models/registry.h (GPT-2: gpt2-tiny ... gpt2-xl; Mistral: mistral-tiny,
// mistral-7b); the numbers live with the model builders.
inline const std::vector<std::string>& model_preset_names() {
  static const std::vector<std::string> names = preset_names();
  return names;
}

// Binds key "a.b" to member r.a.b: the key path and the member path are the same words.
#define TAILOR_MEMBER(member)     \
#member, [](auto& r) -> auto& { \
    return r.member;              \
  }

// model.*: ModelSection.
template <class R>
void add_model_keys(Schema<R>& s) {
  s.section("model",
            "the network to train: a preset (random init) or a HF checkpoint directory whose "
            "config.json model_type is gpt2 or mistral");
  s.choice(TAILOR_MEMBER(model.init), model_init_names())
      .doc("random: a fresh model of the preset's size; pretrained: load model.path")
      .default_value(ModelInit::kRandom);
  s.key(TAILOR_MEMBER(model.path))
      .doc("HF checkpoint directory (config.json + safetensors); needed for init: pretrained")
      .default_value(std::filesystem::path());
  s.choice(TAILOR_MEMBER(model.preset), model_preset_names())
      .doc("architecture and size for init: random")
      .default_value("gpt2-tiny");
  s.key(TAILOR_MEMBER(model.n_layer))
      .doc("transformer blocks (Mistral: num_hidden_layers); 0 = the preset's (init: random only)")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(model.n_head))
      .doc("attention heads (Mistral: num_attention_heads); 0 = the preset's (init: random only)")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(model.n_embd))
      .doc("hidden width, a multiple of n_head (Mistral: hidden_size); 0 = the preset's")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(model.n_positions))
      .doc("longest sequence (Mistral: max_position_embeddings); 0 = the preset's")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(model.dropout))
      .doc("dropout while training (GPT-2: residual, embedding, attention; Mistral: attention)")
      .default_value(0.0)
      .at_least(0)
      .below(1);
}

// lora.*: LoraSection.
template <class R>
void add_lora_keys(Schema<R>& s) {
  s.section("lora", "low-rank adapters (PEFT LoRA); disabled = full fine-tune");
  s.key(TAILOR_MEMBER(lora.enabled))
      .doc("train LoRA adapters on a frozen base instead of all weights")
      .default_value(true);
  s.key(TAILOR_MEMBER(lora.rank)).doc("adapter rank r").default_value(8).at_least(1);
  s.key(TAILOR_MEMBER(lora.alpha))
      .doc("scaling numerator: update = (alpha / r) * B A")
      .default_value(16.0)
      .above(0);
  s.key(TAILOR_MEMBER(lora.dropout))
      .doc("dropout on the adapter input")
      .default_value(0.0)
      .at_least(0)
      .below(1);
  s.key(TAILOR_MEMBER(lora.rslora))
      .doc("rank-stabilized LoRA: scale alpha / sqrt(r) (Kalajdzievski 2023)")
      .default_value(false);
  s.key(TAILOR_MEMBER(lora.targets))
      .doc("HF module names that get adapters")
      .default_value({"c_attn", "c_proj", "c_fc"});
}

// optimizer.*: OptimizerSection.
template <class R>
void add_optimizer_keys(Schema<R>& s) {
  s.section("optimizer", "AdamW with decoupled weight decay (Loshchilov & Hutter 2019)");
  s.key(TAILOR_MEMBER(optimizer.lr))
      .doc("peak learning rate, reached after warmup")
      .default_value(3.0e-4)
      .above(0);
  s.key(TAILOR_MEMBER(optimizer.weight_decay))
      .doc("decoupled weight decay on matrices (not biases or norms)")
      .default_value(0.01)
      .at_least(0);
  s.key(TAILOR_MEMBER(optimizer.beta1)).doc("Adam beta1").default_value(0.9).at_least(0).below(1);
  s.key(TAILOR_MEMBER(optimizer.beta2)).doc("Adam beta2").default_value(0.999).at_least(0).below(1);
  s.key(TAILOR_MEMBER(optimizer.eps)).doc("Adam epsilon").default_value(1.0e-8).above(0);
  s.key(TAILOR_MEMBER(optimizer.grad_clip))
      .doc("clip the global gradient L2 norm to this; 0 = off")
      .default_value(1.0)
      .at_least(0);
}

// schedule.*: ScheduleSection.
template <class R>
void add_schedule_keys(Schema<R>& s) {
  s.section("schedule", "learning-rate schedule: linear warmup, then decay");
  s.choice(TAILOR_MEMBER(schedule.type), schedule_type_names())
      .doc("decay after warmup down to min_lr_ratio * lr at max_steps")
      .default_value(ScheduleType::kCosine);
  s.key(TAILOR_MEMBER(schedule.warmup_steps))
      .doc("steps of linear warmup from 0 to lr")
      .default_value(10)
      .at_least(0);
  s.key(TAILOR_MEMBER(schedule.min_lr_ratio))
      .doc("final learning rate as a fraction of lr")
      .default_value(0.0)
      .at_least(0)
      .at_most(1);
}

// The cross-key rules of the model and lora sections (model.path with init: pretrained, the
// shape keys only for random init, n_embd a multiple of n_head, lora.targets non-empty when the
// schema has a lora section).
void check_model_rules(const ResolvedConfig& c);

// Input checks before a run; each throws Error("recipe", ...) naming `key` and the path.
void require_file(const std::string& key, const std::filesystem::path& path);
// `path` is a directory holding all files of at least one of `one_of_file_sets`.
void require_directory(const std::string& key, const std::filesystem::path& path,
                       const std::vector<std::vector<std::string>>& one_of_file_sets);

}  // namespace tailor
