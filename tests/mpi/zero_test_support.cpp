#include "zero_test_support.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstdlib>
#include <fstream>
#include <iostream>

#include "common/atomic_file.h"
#include "dist/communicator.h"
#include "dist/runtime.h"
#include "train/checkpoint/checkpoint.h"
#include "train/checkpoint/sharded_checkpoint.h"

namespace fs = std::filesystem;

namespace tailor::testing {

fs::path shared_temp_dir(const std::string& tag) {
  auto& comm = dist::world();
  std::string name;
  if (comm.rank() == 0) {
    std::string pattern = (fs::temp_directory_path() / ("tailor_zero_" + tag + "_XXXXXX")).string();
    name = mkdtemp(pattern.data());
  }
  return comm.all_gather_strings(name)[0];
}

bool on_rank0(dist::Communicator& comm, const std::function<void()>& body) {
  std::string error;
  if (comm.rank() == 0) {
    const bool failed_before = ::testing::Test::HasFailure();
    try {
      body();
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (error.empty() && !failed_before && ::testing::Test::HasFailure())
      error = "an expectation failed";
  }
  const std::string rank0 = comm.all_gather_strings(error)[0];
  if (!rank0.empty()) ADD_FAILURE() << "rank 0: " << rank0;
  return rank0.empty();
}

namespace {

std::string recipe_yaml(const fs::path& out, bool lora, Family family) {
  const std::string root = TAILOR_SOURCE_DIR;
  const bool gpt2 = family == Family::kGpt2;
  std::string y = "stage: sft\nseed: 7\noutput_dir: " + out.string() + "\ntokenizer: " + root +
                  (gpt2 ? "/assets/tokenizers/gpt2\n" : "/assets/tokenizers/mistral\n");
  y += gpt2 ? "model: {init: random, preset: gpt2-tiny, n_layer: 2, n_head: 2, n_embd: 32, "
              "n_positions: 64, dropout: 0.0}\n"
            : "model: {init: random, preset: mistral-tiny, n_layer: 2, n_head: 4, n_embd: 32, "
              "n_positions: 64, dropout: 0.0}\n";
  y += "data: {train: " + root +
       "/assets/datasets/quickstart/train.jsonl, format: prompt_response, "
       "max_length: 32, eval_fraction: 0.0}\n" +
       // Adam divides by sqrt(v) + eps: with the usual eps = 1e-8 an element whose gradient is
       // ~1e-9 turns a last-bit difference in the order ranks sum gradients into a ~1e-4
       // relative change of its update. A larger eps keeps the comparison about our arithmetic,
       // not that conditioning.
       "optimizer: {lr: 0.003, weight_decay: 0.1, grad_clip: 1.0, eps: 1e-5}\n" +
       "schedule: {type: constant, warmup_steps: 0}\n" +
       // float64: N ranks and one process differ only in the order sums are taken, so the
       // tests compare them at 1e-10, far above float64 rounding on any machine's BLAS.
       "train: {max_steps: 4, micro_batch_size: 2, log_every: 1, eval_every: 0, "
       "checkpoint_every: 0, precision: fp64}\n" +
       "export: {enabled: false}\n";
  if (!lora) return y + "lora: {enabled: false}\n";
  return y + (gpt2 ? "lora: {enabled: true, rank: 4, alpha: 8, dropout: 0.0, targets: [c_attn, "
                     "c_proj, c_fc]}\n"
                   : "lora: {enabled: true, rank: 4, alpha: 8, dropout: 0.0, targets: [q_proj, "
                     "k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]}\n");
}

}  // namespace

SftRecipe make_recipe(const fs::path& dir, const fs::path& out, bool lora,
                      const std::vector<std::string>& overrides, Family family) {
  const fs::path file = dir / (out.filename().string() + ".yaml");
  if (dist::world().rank() == 0) write_file_atomic(file, recipe_yaml(out, lora, family));
  dist::world().barrier();
  return load_sft_recipe(file, overrides);
}

std::map<std::string, at::Tensor> final_model(const fs::path& run_dir) {
  const auto latest = latest_checkpoint(run_dir);
  EXPECT_TRUE(latest.has_value()) << run_dir;
  std::map<std::string, at::Tensor> out;
  if (!latest) return out;
  dist::ShardedCheckpointReader reader(*latest);
  for (const auto& info : reader.tensors())
    if (info.kind == "model") out[info.name] = reader.read(info.name);
  return out;
}

double lora_b_abs_sum(const std::map<std::string, at::Tensor>& tensors) {
  double sum = 0;
  for (const auto& [name, t] : tensors)
    if (name.find("lora_B") != std::string::npos) sum += t.abs().sum().item<double>();
  return sum;
}

int64_t total_numel(const std::map<std::string, at::Tensor>& tensors) {
  int64_t n = 0;
  for (const auto& [name, t] : tensors)
    n += t.numel();
  return n;
}

double worst_relative_difference(const std::map<std::string, at::Tensor>& a,
                                 const std::map<std::string, at::Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (const auto& [name, ref] : b) {
    auto it = a.find(name);
    if (it == a.end()) {
      ADD_FAILURE() << "missing " << name;
      continue;
    }
    const at::Tensor r = ref.to(at::kDouble), x = it->second.to(at::kDouble);
    EXPECT_EQ(r.sizes(), x.sizes()) << name;
    const double scale = std::max(r.abs().max().item<double>(), 1e-12);
    const double d = (x - r).abs().max().item<double>() / scale;
    if (d > 1e-5) std::cout << "  " << name << ": relative difference " << d << "\n";
    worst = std::max(worst, d);
  }
  return worst;
}

nlohmann::json last_metrics(const fs::path& run_dir) {
  std::ifstream in(run_dir / "metrics.jsonl");
  std::string line, last;
  while (std::getline(in, line))
    if (line.find("state_bytes_params") != std::string::npos) last = line;
  return last.empty() ? nlohmann::json() : nlohmann::json::parse(last);
}

}  // namespace tailor::testing
