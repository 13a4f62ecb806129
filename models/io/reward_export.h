// Hugging Face sequence-classification directories for reward models (models/heads/reward_model.h):
// what transformers' GPT2ForSequenceClassification.save_pretrained writes, and PEFT adapters for
// task_type SEQ_CLS with the head in modules_to_save.
#pragma once

#include <cstdint>
#include <filesystem>

#include <c10/core/ScalarType.h>

#include "models/core/lora.h"
#include "models/heads/reward_model.h"

namespace tailor {

// Writes a GPT2ForSequenceClassification / MistralForSequenceClassification directory `dir`,
// atomically (write_dir_atomic):
// - config.json: the backbone's config (save_model_config) plus "architectures":
//   ["GPT2ForSequenceClassification"], "id2label" {"0": "LABEL_0", ...} / "label2id" as
//   transformers writes them, "num_labels", and "pad_token_id" (GPT-2 and Mistral have no pad
//   token; transformers needs one to find each row's last token, and with EOS (GPT-2: 50256 =
//   <|endoftext|>) it finds the same token as our attention-mask pooling whenever the text itself
//   holds no EOS). pad_token_id < 0 means the backbone's pad_token_id, else its eos_token_id;
// - model.safetensors: transformer.* (no lm_head) + score.weight [K, C];
// - the tokenizer files of `tokenizer_dir` when non-empty (loaded and re-saved, as export_model).
// With LoRA present: merged = true writes base weights with the adapters folded in (merged copies
// as LinearImpl::merge computes them; the model itself is not changed);
// merged = false writes the unmerged base plus a PEFT adapter in dir/adapter (task_type
// "SEQ_CLS", modules_to_save ["score"], base_model_name_or_path ".."; keys
// base_model.model.transformer.h.N....lora_{A,B}.weight and the head as
// base_model.model.score.weight, where PEFT's get_peft_model_state_dict puts a
// modules_to_save module). The adapter's LoRA config is read off the model's layers (rank,
// dropout, alpha = scaling * rank, the shortest target names that select exactly the wrapped
// layers).
void save_reward_model(const std::filesystem::path& dir, RewardModel& model, bool merged,
                       const std::filesystem::path& tokenizer_dir = {}, int64_t pad_token_id = -1);

// Loads what save_reward_model writes, and HF-written GPT2ForSequenceClassification directories
// (backbone keys with or without the "transformer." prefix, single file or sharded). num_labels
// comes from config.json's id2label, else num_labels, else transformers' default 2. A missing
// score.weight or one whose shape is not [num_labels, n_embd] throws Error("reward_model", ...)
// naming the file. With `adapter_dir` (or, when empty, dir/adapter if it holds an
// adapter_config.json) the PEFT adapter is applied, including its score head when present.
// The model is built with tied embeddings whatever config.json says: it has no LM head.
RewardModel load_reward_model(const std::filesystem::path& dir,
                              const std::filesystem::path& adapter_dir = {},
                              c10::ScalarType dtype = c10::ScalarType::Float);

// True when dir/config.json names a *ForSequenceClassification architecture.
bool is_reward_model_dir(const std::filesystem::path& dir);

// The LoRA configuration of a model's current adapters, as apply_lora would need it to wrap the
// same layers with the same scaling (see save_reward_model). Throws Error("lora", ...) when the
// model has no LoRA or its layers differ in rank, scaling or dropout.
LoraConfig lora_config_of(const torch::nn::Module& model);

}  // namespace tailor
