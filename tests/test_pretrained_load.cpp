// Loading a Hugging Face directory reads its files through a memory mapping. A mapped page that
// has been read stays resident, and counted in RSS, until the mapping goes: without dropping each
// tensor's pages once copied, a load peaks at the model plus the whole file (22 GB instead of
// 15 GB for Mistral-7B in bf16, on a 24 GiB machine). These tests load a ~100 MB model and check
// the process's peak RSS (VmHWM, reset before the load) against the model's own size. Each test
// needs a process of its own (memory an earlier test freed would serve the load unseen), so ctest
// runs this suite one test per process (tests/CMakeLists.txt).
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/atomic_file.h"
#include "common/process_memory.h"
#include "models/heads/reward_model.h"
#include "models/io/pretrained.h"
#include "models/io/reward_export.h"
#include "models/registry.h"
#include "test_support.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;

// GPT-2 of 8 blocks and a small vocabulary: 25.4M float32 parameters (97 MiB) in many tensors,
// the largest 4 MiB. (A load holds one tensor both mapped and copied at a time, so a model whose
// size is mostly one tensor could not tell the difference.)
nlohmann::json many_tensors_config() {
  return {{"model_type", "gpt2"}, {"vocab_size", 256}, {"n_positions", 64},
          {"n_embd", 512},        {"n_layer", 8},      {"n_head", 8}};
}

double mib(int64_t bytes) {
  return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

int64_t parameter_bytes(const torch::nn::Module& model) {
  int64_t bytes = 0;
  for (const auto& p : model.parameters())
    bytes += p.numel() * p.element_size();
  return bytes;
}

// The peak RSS a load adds: with the pages dropped, the model (+ allocator slack); with them
// kept, the model plus the file, about twice the model.
void expect_peak_near_model(double peak_growth_mib, double model_mib) {
  EXPECT_GT(peak_growth_mib, 0.9 * model_mib) << "the loaded weights must be resident";
  EXPECT_LT(peak_growth_mib, 1.35 * model_mib)
      << "the load held " << peak_growth_mib << " MiB at its peak for a " << model_mib
      << " MiB model: the file's pages stayed resident";
}

TEST(PretrainedLoad, PeakMemoryIsTheModelNotTheModelPlusTheFile) {
  const fs::path dir = test::fresh_dir("pretrained_load_lm");
  CausalLM model = causal_lm_from_config(many_tensors_config(), "test config", true);
  const double model_mib = mib(parameter_bytes(*model));
  ASSERT_GT(model_mib, 90.0);
  save_pretrained(dir, *model);

  reset_peak_rss();
  const double before = peak_rss_mib();
  ASSERT_GT(before, 0.0) << "no /proc/self/status here";
  CausalLM loaded = load_pretrained(dir);
  expect_peak_near_model(peak_rss_mib() - before, model_mib);

  // Dropping pages after each copy kept every weight: all equal the saved model's.
  const auto saved = model->named_parameters();
  for (const auto& p : loaded->named_parameters())
    EXPECT_TRUE(at::equal(p.value(), saved[p.key()])) << p.key();
}

TEST(PretrainedLoad, RewardModelPeakMemoryIsTheModel) {
  const fs::path dir = test::fresh_dir("pretrained_load_rm");
  double model_mib = 0;
  {
    nlohmann::json config = many_tensors_config();
    config["tie_word_embeddings"] = true;
    RewardModel model(causal_lm_from_config(config, "test config", true), 1);
    model_mib = mib(parameter_bytes(*model));
    save_reward_model(dir, model, /*merged=*/false);
  }
  reset_peak_rss();
  const double before = peak_rss_mib();
  RewardModel loaded = load_reward_model(dir);
  expect_peak_near_model(peak_rss_mib() - before, model_mib);
}

// `tailor score --model DIR` on a bf16 export: --dtype auto keeps it bf16 (config.json's
// torch_dtype), and the load converts before it copies, so the process peaks at about the
// checkpoint's size, not at twice it (a float32 model) or more (the model plus the file). A
// GPT-2 of 8 blocks of width 1024: 101M parameters in many tensors, 194 MiB of bf16 safetensors.
TEST(PretrainedLoad, ScoreABf16ExportPeaksAtTheCheckpointsSize) {
  const fs::path dir = test::fresh_dir("pretrained_load_score_bf16");
  {
    nlohmann::json config = many_tensors_config();
    config["n_embd"] = 1024;
    config["n_head"] = 16;
    CausalLM model = causal_lm_from_config(config, "test config", true);
    model->to(at::kBFloat16);
    save_pretrained(dir / "model", *model);
  }
  const double file_mib =
      mib(static_cast<int64_t>(fs::file_size(dir / "model" / "model.safetensors")));
  ASSERT_GT(file_mib, 150.0);
  write_file_atomic(dir / "input.jsonl", "{\"ids\": [1, 2, 3, 4, 5, 6]}\n");
  reset_peak_rss();
  const double before = peak_rss_mib();
  ASSERT_GT(before, 0.0) << "no /proc/self/status here";
  ASSERT_EQ(cli::score_command({"tailor score", "--model", (dir / "model").string(), "--input",
                                (dir / "input.jsonl").string(), "--output",
                                (dir / "scores.jsonl").string()}),
            0);
  const double growth = peak_rss_mib() - before;
  std::cout << "tailor score: peak RSS growth " << growth << " MiB for a " << file_mib
            << " MiB bf16 checkpoint\n";
  EXPECT_GT(growth, 0.9 * file_mib) << "the bf16 weights must be resident";
  EXPECT_LE(growth, 1.1 * file_mib) << "tailor score held " << growth << " MiB at its peak for a "
                                    << file_mib << " MiB bf16 checkpoint";
}

}  // namespace
}  // namespace tailor
