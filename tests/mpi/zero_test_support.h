// What the multi-process ZeRO tests share: a directory all ranks agree on, a small SFT recipe
// (GPT-2 or Mistral, full fine-tuning or LoRA) written by rank 0, and ways to compare the
// models two runs end with.
#pragma once

#include <ATen/Tensor.h>

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dist/communicator.h"
#include "stages/sft/sft_recipe.h"

namespace tailor::testing {

// Made by rank 0; the name travels to the others.
std::filesystem::path shared_temp_dir(const std::string& tag);

// Runs `body` on rank 0 alone, then every rank learns whether it succeeded (a collective): a
// failed expectation or an exception on rank 0 fails the test on every rank, instead of leaving
// the others waiting in the next collective until the job's timeout. Returns whether rank 0
// succeeded; use ASSERT_TRUE(on_rank0(...)) so that every rank stops together.
bool on_rank0(dist::Communicator& comm, const std::function<void()>& body);

enum class Family { kGpt2, kMistral };

// A tiny model on the quickstart data, no dropout, 4 steps of micro-batch 2, float64 (override
// train.precision for another): N ranks and one process see identical arithmetic up to
// summation order. Collective (rank 0 writes the file).
SftRecipe make_recipe(const std::filesystem::path& dir, const std::filesystem::path& out, bool lora,
                      const std::vector<std::string>& overrides, Family family = Family::kGpt2);

// The model tensors of a run's latest checkpoint, whichever layout it has.
std::map<std::string, at::Tensor> final_model(const std::filesystem::path& run_dir);

// Sum of |x| over the LoRA B matrices: they start at zero, so > 0 means the optimizer moved them.
double lora_b_abs_sum(const std::map<std::string, at::Tensor>& tensors);

// Number of elements over all tensors.
int64_t total_numel(const std::map<std::string, at::Tensor>& tensors);

// max |a - b| / max |b| per tensor, the worst over the model (a missing tensor fails the test).
double worst_relative_difference(const std::map<std::string, at::Tensor>& a,
                                 const std::map<std::string, at::Tensor>& b);

// The last metrics.jsonl record that carries the engine's numbers.
nlohmann::json last_metrics(const std::filesystem::path& run_dir);

}  // namespace tailor::testing
