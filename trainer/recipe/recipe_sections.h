// Recipe sections every training stage shares (model, lora, optimizer, schedule): the structs
// live in trainer/recipe/recipe.h, the keys here, templated on the stage's recipe struct so each
// stage's Schema<Recipe> binds them to its own members with the same names, defaults and docs.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "models/registry.h"
#include "trainer/recipe/recipe.h"
#include "trainer/recipe/schema.h"

namespace tailor {

// Enum names of the shared sections, one table per enum (also used by to_string()).
inline const std::vector<std::pair<std::string, ModelInit>>& model_init_names() {
  static const std::vector<std::pair<std::string, ModelInit>> table = {
      {"random", ModelInit::kRandom}, {"pretrained", ModelInit::kPretrained}};
  return table;
}
inline const std::vector<std::pair<std::string, ScheduleType>>& schedule_type_names() {
  static const std::vector<std::pair<std::string, ScheduleType>> table = {
      {"cosine", ScheduleType::kCosine},
      {"linear", ScheduleType::kLinear},
      {"constant", ScheduleType::kConstant}};
  return table;
}
inline const std::vector<std::pair<std::string, Precision>>& precision_names() {
  static const std::vector<std::pair<std::string, Precision>> table = {
      {"fp32", Precision::kFp32},
      {"bf16_autocast", Precision::kBf16Autocast},
      {"bf16", Precision::kBf16}};
  return table;
}
inline const std::vector<std::pair<std::string, PromptTemplate>>& prompt_template_names() {
  static const std::vector<std::pair<std::string, PromptTemplate>> table = {
      {"plain", PromptTemplate::kPlain}, {"mistral_instruct", PromptTemplate::kMistralInstruct}};
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
// shape keys only for random init, n_embd a multiple of n_head, lora.targets non-empty).
void check_model_rules(const ResolvedConfig& c);

// Input checks before a run; each throws Error("recipe", ...) naming `key` and the path.
void require_file(const std::string& key, const std::filesystem::path& path);
// `path` is a directory holding all files of at least one of `one_of_file_sets`.
void require_directory(const std::string& key, const std::filesystem::path& path,
                       const std::vector<std::vector<std::string>>& one_of_file_sets);

}  // namespace tailor
