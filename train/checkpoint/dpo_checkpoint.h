// One user's model out of a per-user DPO checkpoint (`tailor export --checkpoint RUN --user NAME
// [--merge-lora]`): the frozen base with that user's adapter as an ordinary LoRA model, which
// export_model (train/checkpoint/model_checkpoint.h) writes as base + PEFT adapter or merged.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "models/core/causal_lm.h"
#include "train/checkpoint/model_checkpoint.h"

namespace tailor {

// The users of a DPO checkpoint directory; empty when the checkpoint is not a DPO one.
std::vector<std::string> dpo_checkpoint_users(const std::filesystem::path& checkpoint_dir);

// The base (from the checkpoint or its base_model directory) carrying user `user`'s adapter as
// lora_A / lora_B. Error("export", ...) naming the users when `user` is not one of them.
CausalLM dpo_user_model(const std::filesystem::path& checkpoint_dir, const std::string& user,
                        ModelProvenance* provenance);

}  // namespace tailor
