// ZeRO-3 construction: a model no rank ever holds whole. Every rank builds the model's skeleton
// (parameters with their shapes and dtype, backed by allocations nobody writes, so they cost
// address space, not memory), hands it to the ZeRO-3 engine, which allocates only this rank's
// chunk of each flat, and then writes into those chunks what build_model + apply_lora would have
// put there:
//   init: random      each parameter is drawn whole from torch's default generator in the same
//                     order as CausalLMImpl::init_weights, one at a time, and only this rank's
//                     part is kept, so the values equal one process's for any world size;
//   init: pretrained  each rank reads only the bytes of its parts from the safetensors files
//                     (single file or sharded index; F32 or BF16, converted to the model's
//                     dtype), dropping the pages it touched, so the page cache is not counted
//                     against the process;
//   LoRA              lora_A drawn as LinearImpl::add_lora draws it, after the base, as in one
//                     process; lora_B zero.
// Peak memory per rank: the owned chunks, one whole parameter (while it is drawn), and the
// engine's gathered blocks.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <c10/core/ScalarType.h>
#include <nlohmann/json.hpp>

#include "models/core/causal_lm.h"
#include "models/core/lora.h"
#include "train/recipe/sections.h"
#include "train/zero/zero.h"

namespace tailor {

struct ShardedModel {
  CausalLM model;                         // the engine is installed as its forward hooks
  std::vector<std::string> lora_modules;  // wrapped module paths (apply_lora's result)
  std::unique_ptr<dist::ZeroEngine> engine;
};

// The model of `config` in `dtype` on `device` with every parameter an untouched allocation of
// its shape (no float32 copy is ever written; values are the caller's to fill). Construction
// draws from the default generator exactly as build_model's does.
CausalLM build_skeleton(const nlohmann::json& config, const std::string& source,
                        c10::ScalarType dtype, c10::Device device);

// `config` as model_config_for gives it; `zero.stage` must be 3. Seed torch's default generator
// first, as for build_model. Errors name the checkpoint file or the parameter. The shards live
// on `device`; random values are drawn on the CPU as build_model draws them, so a GPU run starts
// from the same weights as a CPU run.
ShardedModel build_sharded_model(const ModelSection& model, const nlohmann::json& config,
                                 c10::ScalarType dtype, const std::optional<LoraConfig>& lora,
                                 dist::Communicator& comm, const dist::ZeroConfig& zero,
                                 c10::Device device = c10::Device(c10::kCPU));

}  // namespace tailor
