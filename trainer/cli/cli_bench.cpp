// tailor bench: GPT-2 training-step throughput on this machine (never a timed test).
//
// Each configuration builds a randomly initialised model, runs warm-up steps, then times full
// optimizer steps (forward, loss, backward, AdamW) on random tokens, and reports ms/step,
// tokens/s and the peak resident memory of the configuration (VmHWM, reset between runs).

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "common/error.h"
#include "models/core/lora.h"
#include "models/registry.h"
#include "trainer/cli/cli_args.h"
#include "trainer/cli/commands.h"
#include "trainer/losses/lm_loss.h"
#include "trainer/optim/adamw.h"

namespace tailor::cli {

namespace {

struct BenchConfig {
  std::string name;
  at::ScalarType dtype;
  bool autocast;
  int64_t lora_rank;  // 0 = full fine-tune
};

// Peak resident set size in MiB since the last reset_peak_memory().
double peak_memory_mib() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmHWM:") {
      double kib;
      status >> kib;
      return kib / 1024.0;
    }
    status.ignore(1 << 20, '\n');
  }
  return -1;
}

void reset_peak_memory() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";  // resets VmHWM to the current RSS (Linux >= 4.0)
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A randomly initialised model of `config` in `dtype`, built so that a bf16 model never exists in
// float32: the float32 parameters torch::empty allocates are never written (the OS maps no pages
// for them), each is converted to bf16 in turn, and HF's initialisation then runs in bf16. A
// Mistral-7B (14.5 GB in bf16) fits this way in 24 GiB; in float32 first it would need 29 GB.
CausalLM build_random_model(const nlohmann::json& config, at::ScalarType dtype) {
  CausalLM model = causal_lm_from_config(config, "bench preset", /*init_weights=*/false);
  model->to(dtype);
  model->init_weights();
  return model;
}

nlohmann::json run_config(const BenchConfig& c, const nlohmann::json& model_config, int64_t B,
                          int64_t T, int64_t warmup, int64_t steps) {
  reset_peak_memory();
  torch::manual_seed(0);
  CausalLM model = build_random_model(model_config, c.dtype);
  if (c.lora_rank > 0) {
    apply_lora(*model,
               LoraConfig{c.lora_rank, 2.0 * c.lora_rank, 0.0, false, model->lora_target_names()});
  }
  model->train();
  AdamW optimizer(AdamWConfig{0.9, 0.999, 1e-8, 0.01});
  int64_t trainable = 0;
  for (const auto& item : model->named_parameters()) {
    if (!item.value().requires_grad()) continue;
    optimizer.add_param(item.key(), item.value(), decays_by_default(item.value()));
    trainable += item.value().numel();
  }
  auto ids = at::randint(model->vocab_size(), {B, T}, at::kLong);
  auto labels = ids.clone();
  double total = 0;
  for (int64_t i = 0; i < warmup + steps; ++i) {
    const double start = now_seconds();
    {
      if (c.autocast) {
        at::autocast::set_cpu_enabled(true);
        at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      }
      auto loss =
          causal_lm_loss_sum(model->forward(ids), labels) / static_cast<double>(B * (T - 1));
      loss.backward();
      if (c.autocast) {
        at::autocast::set_cpu_enabled(false);
        at::autocast::clear_cache();
      }
    }
    optimizer.step(1e-4);
    optimizer.zero_grad();
    if (i >= warmup) total += now_seconds() - start;
  }
  const double step_s = total / static_cast<double>(steps);
  return {{"config", c.name},
          {"ms_per_step", step_s * 1e3},
          {"tokens_per_s", B * T / step_s},
          {"peak_memory_mib", peak_memory_mib()},
          {"trainable_parameters", trainable},
          {"batch", B},
          {"seq", T},
          {"steps", steps},
          {"threads", at::get_num_threads()}};
}

}  // namespace

int bench_command(const std::vector<std::string>& args) {
  CLI::App app{
      "GPT-2 training-step benchmark (random init; prints ms/step, tokens/s, peak memory).",
      args[0]};
  std::string preset = "gpt2";
  int64_t B = 4, T = 64, warmup = 2, steps = 5;
  std::vector<std::string> only;
  app.add_option("--preset", preset, "model preset (gpt2 = 124M)");
  app.add_option("--batch", B, "micro-batch size B");
  app.add_option("--seq", T, "sequence length T");
  app.add_option("--warmup", warmup, "untimed warm-up steps");
  app.add_option("--steps", steps, "timed steps");
  app.add_option("--config", only,
                 "run only these: fp32, bf16_autocast, bf16, lora_fp32, lora_bf16");
  if (auto code = parse_arguments(app, args)) return *code;
  if (B < 1 || T < 2 || steps < 1 || warmup < 0)
    throw Error("bench", "need --batch >= 1, --seq >= 2, --steps >= 1");

  const std::vector<BenchConfig> all = {
      {"fp32", at::kFloat, false, 0},          {"bf16_autocast", at::kFloat, true, 0},
      {"bf16", at::kBFloat16, false, 0},       {"lora_fp32", at::kFloat, false, 16},
      {"lora_bf16", at::kBFloat16, false, 16},
  };
  nlohmann::json config = preset_config(preset);
  // Dropout off: the benchmark measures the model's arithmetic, not the RNG.
  for (const char* key : {"resid_pdrop", "embd_pdrop", "attn_pdrop", "attention_dropout"})
    if (config.contains(key)) config[key] = 0.0;
  std::printf("preset %s (%s), B=%lld T=%lld, %d threads\n", preset.c_str(), config.dump().c_str(),
              (long long)B, (long long)T, at::get_num_threads());
  std::printf("%-14s %10s %12s %12s %14s\n", "config", "ms/step", "tokens/s", "peak MiB",
              "trainable");
  for (const auto& c : all) {
    if (!only.empty() && std::find(only.begin(), only.end(), c.name) == only.end()) continue;
    auto r = run_config(c, config, B, T, warmup, steps);
    std::printf("%-14s %10.1f %12.1f %12.0f %14lld\n", c.name.c_str(),
                r["ms_per_step"].get<double>(), r["tokens_per_s"].get<double>(),
                r["peak_memory_mib"].get<double>(),
                (long long)r["trainable_parameters"].get<int64_t>());
    std::cerr << r.dump() << "\n";
  }
  return 0;
}

}  // namespace tailor::cli
