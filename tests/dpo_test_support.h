// Shared by the per-user DPO stage tests (tests/test_dpo_stage.cpp, tests/test_dpo_rounds.cpp,
// tests/mpi/test_dpo_dist.cpp):
// a small per-user pairs file, a recipe on a random gpt2-tiny base, and the trained adapters read
// back from a run's export.
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "dist/communicator.h"
#include "jsonl_test_support.h"
#include "models/io/pretrained.h"
#include "models/io/safetensors.h"
#include "models/registry.h"
#include "stages/dpo/dpo_recipe.h"
#include "stages/dpo/dpo_stage.h"

namespace tailor::testing {

// Four users with conflicting tastes over the same prompts: alice likes short answers, bob long
// ones, carol lowercase, dave capitals. `per_user` pairs each.
inline std::vector<nlohmann::json> dpo_user_pairs(int per_user) {
  const std::vector<std::string> prompts = {
      "What is a cat?",     "Name a colour.",       "Where is Paris?", "Why is the sky blue?",
      "What do bees make?", "How far is the moon?", "What is rain?",   "Who wrote Hamlet?"};
  const std::vector<std::string> short_answers = {"A pet.", "Red.", "France.", "Light.",
                                                  "Honey.", "Far.", "Water.",  "Shakespeare."};
  std::vector<nlohmann::json> lines;
  for (int i = 0; i < per_user; ++i) {
    const std::string& p = prompts[static_cast<size_t>(i) % prompts.size()];
    const std::string& s = short_answers[static_cast<size_t>(i) % prompts.size()];
    const std::string l = s + " It is a thing that many people know about and talk about.";
    std::string lower = l, upper = l;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
    lines.push_back({{"user", "alice"}, {"prompt", p}, {"chosen", " " + s}, {"rejected", " " + l}});
    lines.push_back({{"user", "bob"}, {"prompt", p}, {"chosen", " " + l}, {"rejected", " " + s}});
    lines.push_back(
        {{"user", "carol"}, {"prompt", p}, {"chosen", " " + lower}, {"rejected", " " + upper}});
    lines.push_back(
        {{"user", "dave"}, {"prompt", p}, {"chosen", " " + upper}, {"rejected", " " + lower}});
  }
  return lines;
}

// Writes the lines whose user is in `users` (all when empty).
inline void write_user_pairs(const std::filesystem::path& file,
                             const std::vector<nlohmann::json>& lines,
                             const std::vector<std::string>& users = {}) {
  std::filesystem::create_directories(file.parent_path());
  std::ofstream out(file);
  for (const auto& line : lines)
    if (users.empty() ||
        std::find(users.begin(), users.end(), line["user"].get<std::string>()) != users.end())
      out << line.dump() << "\n";
}

// A dpo recipe on a random gpt2-tiny base. Adam's eps is 1e-5 rather than 1e-8: the equivalence
// tests compare runs whose batches differ in padding, and with eps 1e-8 Adam turns last-bit
// differences of near-zero gradients into full-size steps (docs/dpo.md).
inline DpoRecipe dpo_test_recipe(const std::filesystem::path& pairs,
                                 const std::filesystem::path& out,
                                 const std::vector<std::string>& overrides = {}) {
  const std::string yaml = "stage: dpo\nseed: 3\noutput_dir: " + out.string() +
                           "\ntokenizer: " TAILOR_SOURCE_DIR
                           "/assets/tokenizers/gpt2\n"
                           "model: {init: random, preset: gpt2-tiny}\n"
                           "lora: {rank: 4, alpha: 8.0, targets: [c_attn, c_proj, c_fc]}\n"
                           "data: {source: pairs, path: " +
                           pairs.string() +
                           ", eval_fraction: 0.25, max_length: 48}\n"
                           "dpo: {beta: 0.5}\n"
                           "optimizer: {lr: 0.01, eps: 1.0e-5, weight_decay: 0.0, grad_clip: 1.0}\n"
                           "schedule: {type: constant, warmup_steps: 0}\n"
                           "train: {max_steps: 3, pairs_per_user: 2, log_every: 1}\n"
                           "eval: {completions: 0}\n";
  return dpo_recipe_from_config(resolve_dpo_recipe(yaml, "dpo test recipe", overrides));
}

// The error dpo_test_recipe throws for these overrides, or "no error".
// Runs the dpo stage on a communicator of its own (one process), as the tests run stages.
inline void run_dpo_in_process(const DpoRecipe& recipe) {
  auto comm = dist::make_single_process_communicator();
  run_dpo_stage(recipe, *comm);
}

inline std::string dpo_recipe_error(const std::vector<std::string>& overrides) {
  try {
    dpo_test_recipe("pairs.jsonl", "out", overrides);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

// A run's metrics records without the fields that differ between two runs of the same steps
// (wall clock, speed, memory): what a resumed run must reproduce exactly.
inline std::vector<nlohmann::json> without_timing(std::vector<nlohmann::json> records) {
  for (auto& r : records)
    for (const char* key : {"time", "tokens_per_s", "peak_rss_mib", "peak_rss_mib_max_rank"})
      r.erase(key);
  return records;
}

// A gpt2-tiny base (random weights) that ends its answers early, for tests that need valid
// answers: a random base almost never samples EOS, so every answer would be cut off at
// max_new_tokens. The final layer norm adds a bias b with |b| = 10 and the EOS embedding row
// (tied to the output layer) is c b / |b|^2, so the EOS logit is about c at every position while
// the other 50256 stay near 0 (b . w ~ N(0, 0.2^2)). Measured with c = 9 (the default), 80
// samples of 10 tokens at most: 29% end at once (empty), 20% reach the limit, 51% end with EOS
// after saying something (c = 8.5: 22%, 40%; c = 9.8: 47%, 6%).
inline std::filesystem::path eos_prone_base(const std::filesystem::path& dir,
                                            double eos_logit = 9.0) {
  torch::manual_seed(11);  // the same base in every run
  CausalLM model = causal_lm_from_config(preset_config("gpt2-tiny"), "gpt2-tiny", true);
  {
    torch::NoGradGuard no_grad;
    auto params = model->named_parameters();
    at::Tensor bias = params["transformer.ln_f.bias"];
    const at::Tensor b = at::randn(bias.sizes(), at::TensorOptions().dtype(at::kDouble));
    const at::Tensor scaled = b * (10.0 / b.norm().item<double>());
    bias.copy_(scaled);
    params["transformer.wte.weight"][50256].copy_(scaled * (eos_logit / 100.0));
  }
  save_pretrained(dir, *model);
  return dir;
}

// `count` prompts "Tell me about animal i." as a {prompt} JSONL.
inline void write_animal_prompts(const std::filesystem::path& file, int count) {
  std::ofstream out(file);
  for (int i = 0; i < count; ++i)
    out << nlohmann::json({{"prompt", "Tell me about animal " + std::to_string(i) + "."}}).dump()
        << "\n";
}

// One user's exported PEFT adapter tensors.
inline TensorMap exported_adapter(const std::filesystem::path& run, const std::string& user) {
  return safetensors::load(run / "export" / "users" / user / "adapter_model.safetensors");
}

// max over tensors of max|a - b| / max|b| (the elementwise worst case, scaled by the tensor).
// `where`, when given, receives the name of the tensor with the worst difference.
inline double adapter_relative_difference(const TensorMap& a, const TensorMap& b,
                                          std::string* where = nullptr) {
  double worst = 0;
  for (const auto& [name, tb] : b) {
    const at::Tensor ta = a.at(name).to(at::kDouble), tr = tb.to(at::kDouble);
    const double scale = std::max(tr.abs().max().item<double>(), 1e-12);
    const double diff = (ta - tr).abs().max().item<double>() / scale;
    if (diff > worst && where) *where = name;
    worst = std::max(worst, diff);
  }
  return worst;
}

// ||a - b|| / ||b|| over all tensors together (Frobenius): the relative error of the adapter as a
// whole, insensitive to single elements whose rounding Adam amplifies.
inline double adapter_norm_relative_difference(const TensorMap& a, const TensorMap& b) {
  double diff_sq = 0, ref_sq = 0;
  for (const auto& [name, tb] : b) {
    const at::Tensor d = a.at(name).to(at::kDouble) - tb.to(at::kDouble);
    diff_sq += d.pow(2).sum().item<double>();
    ref_sq += tb.to(at::kDouble).pow(2).sum().item<double>();
  }
  return std::sqrt(diff_sq / std::max(ref_sq, 1e-300));
}

}  // namespace tailor::testing
