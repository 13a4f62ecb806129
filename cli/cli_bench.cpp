// tailor bench: throughput on this machine (never a timed test). Four suites:
//   train   training steps of a preset (default GPT-2 124M) in fp32 / bf16 / LoRA configurations;
//   decode  greedy KV-cache decoding with the generation library (GPT-2 124M, bf16, batch 1
//           and 16): generated tokens/s;
//   lora7b  one forward+backward+AdamW LoRA step of a Mistral-7B-shaped model (random init,
//           bf16, r=16 on all seven projections, T=128) and its peak RSS;
//   zero3   under `mpirun -np N`: ZeRO-3 LoRA steps of a Mistral-7B-shaped model cut to a few
//           blocks (bf16, built in shards), with dist.overlap on and off on the same model, in
//           alternating rounds so both see the same machine state.
//   elicit  20 Questions: ms from an answer to the next question (posterior sampling + pair
//           choice) for N = 64 and 128 candidates (cli/bench_elicit.h).
//
// Each configuration builds a randomly initialised model, runs warm-up steps, then times the
// work on random tokens, and reports the peak memory of the configuration: resident memory
// (VmHWM, reset between runs) on the CPU; with --device cuda (train, decode, lora7b, dpo_users) the
// work runs on the GPU, step times are read after waiting for it, and the peak is the CUDA caching
// allocator's peak allocated bytes.

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "cli/bench_dpo_users.h"
#include "cli/bench_elicit.h"
#include "cli/cli_args.h"
#include "cli/commands.h"
#include "common/device.h"
#include "common/error.h"
#include "common/process_memory.h"
#include "dist/runtime.h"
#include "models/core/lora.h"
#include "models/generation/generate.h"
#include "models/registry.h"
#include "train/losses/lm_loss.h"
#include "train/optim/adamw.h"
#include "train/zero/sharded_model.h"
#include "train/zero/zero.h"

namespace tailor::cli {

namespace {

struct BenchConfig {
  std::string name;
  at::ScalarType dtype;
  bool autocast;
  int64_t lora_rank;  // 0 = full fine-tune
};

// A randomly initialised model of `config` in `dtype`, built so that a bf16 model never exists in
// float32: the float32 parameters torch::empty allocates are never written (the OS maps no pages
// for them, build_skeleton), each is allocated in bf16 on the device, and HF's initialisation then
// runs in bf16 there. A Mistral-7B (14.5 GB in bf16) fits this way in 24 GiB; in float32 first it
// would need 29 GB.
CausalLM build_random_model(const nlohmann::json& config, at::ScalarType dtype,
                            const at::Device& device) {
  CausalLM model = build_skeleton(config, "bench preset", dtype, device);
  model->init_weights();
  return model;
}

// Peak memory of the configuration just run: GPU allocations on a GPU, else resident memory.
double peak_memory_mib(const at::Device& device) {
  return device.is_cuda() ? device_peak_allocated_mib(device) : peak_rss_mib();
}
void reset_peak_memory(const at::Device& device) {
  reset_peak_rss();
  reset_device_peak(device);
}

nlohmann::json run_config(const BenchConfig& c, const nlohmann::json& model_config, int64_t B,
                          int64_t T, int64_t warmup, int64_t steps, const at::Device& device) {
  reset_peak_memory(device);
  torch::manual_seed(0);
  CausalLM model = build_random_model(model_config, c.dtype, device);
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
  auto ids = at::randint(model->vocab_size(), {B, T}, at::kLong).to(device);
  auto labels = ids.clone();
  double total = 0;
  for (int64_t i = 0; i < warmup + steps; ++i) {
    synchronize(device);
    const double start = now_seconds();
    {
      AutocastScope autocast(c.autocast, device);
      auto loss =
          causal_lm_loss_sum(model->forward(ids), labels) / static_cast<double>(B * (T - 1));
      loss.backward();
    }
    optimizer.step(1e-4);
    optimizer.zero_grad();
    synchronize(device);
    if (i >= warmup) total += now_seconds() - start;
  }
  const double step_s = total / static_cast<double>(steps);
  return {{"config", c.name},
          {"device", device.str()},
          {"ms_per_step", step_s * 1e3},
          {"tokens_per_s", B * T / step_s},
          {"peak_memory_mib", peak_memory_mib(device)},
          {"trainable_parameters", trainable},
          {"batch", B},
          {"seq", T},
          {"steps", steps},
          {"threads", at::get_num_threads()}};
}

// ZeRO-3 LoRA steps (forward, backward, reduction, AdamW) of one model built in shards, timed
// with the communication thread on and off in alternating rounds, on every rank's own random
// tokens. Each step time is the slowest rank's (what the job waits for). Returns one
// {round, overlap_s_per_step, blocking_s_per_step} record per round.
std::vector<nlohmann::json> run_zero3(const nlohmann::json& config, int prefetch, int64_t T,
                                      int64_t steps, int64_t rounds) {
  auto& comm = dist::world();
  ModelSection section{ModelInit::kRandom, {}, "", 0, 0, 0, 0, 0.0};
  dist::ZeroConfig zero;
  zero.stage = 3;
  zero.adam = AdamWConfig{0.9, 0.999, 1e-8, 0.0};
  zero.overlap = true;
  zero.prefetch = prefetch;
  torch::manual_seed(0);
  const LoraConfig lora{
      16,
      32.0,
      0.0,
      false,
      {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}};
  ShardedModel built = build_sharded_model(section, config, at::kBFloat16, lora, comm, zero);
  built.model->train();
  auto ids = at::randint(built.model->vocab_size(), {1, T}, at::kLong);
  const auto time_steps = [&](bool overlap, int64_t n) {
    built.engine->set_overlap(overlap);
    double total = 0;
    for (int64_t i = 0; i < n; ++i) {
      comm.barrier();
      const double start = now_seconds();
      auto loss = causal_lm_loss_sum(built.model->forward(ids), ids) / static_cast<double>(T - 1);
      loss.backward();
      built.engine->after_backward();
      built.engine->reduce_gradients();
      built.engine->step(1e-4);
      built.engine->zero_grad();
      total += now_seconds() - start;
    }
    double slowest = total / static_cast<double>(n);
    for (const auto& value : comm.all_gather_strings(std::to_string(slowest)))
      slowest = std::max(slowest, std::stod(value));
    return slowest;
  };
  time_steps(true, 1);  // warm-up
  std::vector<nlohmann::json> records;
  for (int64_t round = 1; round <= rounds; ++round) {
    const double on = time_steps(true, steps);
    const double off = time_steps(false, steps);
    records.push_back({{"suite", "zero3"},
                       {"round", round},
                       {"ranks", comm.world_size()},
                       {"overlap_s_per_step", on},
                       {"blocking_s_per_step", off},
                       {"peak_memory_mib", peak_rss_mib()}});
  }
  return records;
}

// Greedy decoding of `new_tokens` tokens after random prompts of `prompt_len` tokens, B at a
// time, through generate() (prefill + one KV-cache step per token). Reports generated tokens/s
// over the whole call, prefill included, as a user of `tailor generate` sees it.
nlohmann::json run_decode(const nlohmann::json& model_config, at::ScalarType dtype, int64_t B,
                          int64_t prompt_len, int64_t new_tokens, int64_t repeats,
                          const at::Device& device) {
  reset_peak_memory(device);
  torch::manual_seed(0);
  CausalLM model = build_random_model(model_config, dtype, device);
  model->eval();
  std::vector<std::vector<int32_t>> prompts(B);
  const at::Tensor ids = at::randint(model->vocab_size(), {B, prompt_len}, at::kInt);
  for (int64_t b = 0; b < B; ++b)
    prompts[b].assign(ids[b].data_ptr<int32_t>(), ids[b].data_ptr<int32_t>() + prompt_len);
  GenerationConfig config;
  config.max_new_tokens = new_tokens;
  // An id outside the vocabulary never comes: every row decodes exactly new_tokens tokens.
  config.eos_token_id = model->vocab_size();
  generate(*model, prompts, config);  // warm-up
  double total = 0;
  int64_t generated = 0;
  for (int64_t r = 0; r < repeats; ++r) {
    const double start = now_seconds();
    for (const auto& seq : generate(*model, prompts, config))
      generated += static_cast<int64_t>(seq.ids.size());
    total += now_seconds() - start;
  }
  return {{"suite", "decode"},
          {"device", device.str()},
          {"dtype", dtype == at::kBFloat16 ? "bf16" : "fp32"},
          {"batch", B},
          {"prompt_tokens", prompt_len},
          {"new_tokens", new_tokens},
          {"tokens_per_s", static_cast<double>(generated) / total},
          {"ms_per_token_step", 1e3 * total / static_cast<double>(repeats * new_tokens)},
          {"peak_memory_mib", peak_memory_mib(device)},
          {"threads", at::get_num_threads()}};
}

}  // namespace

int bench_command(const std::vector<std::string>& args) {
  CLI::App app{
      "Throughput on this machine (random init): training steps, KV-cache decoding, and "
      "a Mistral-7B-shaped LoRA step; prints tokens/s and peak memory.",
      args[0]};
  std::vector<std::string> suites = {"train", "decode", "lora7b"};
  std::string preset = "gpt2", decode_preset = "gpt2";
  int64_t B = 4, T = 64, warmup = 2, steps = 5, lora_seq = 128, lora_steps = 2;
  int64_t prompt_len = 32, new_tokens = 64;
  std::vector<int64_t> decode_batches = {1, 16};
  std::vector<std::string> only;
  app.add_option("--suite", suites,
                 "suites to run: train, decode, lora7b (default these three), zero3 (mpirun), "
                 "dpo_users, elicit; "
                 "comma-separated or repeated")
      ->delimiter(',');
  app.add_option("--preset", preset, "train suite: model preset (gpt2 = 124M)");
  app.add_option("--batch", B, "train suite: micro-batch size B");
  app.add_option("--seq", T, "train suite: sequence length T");
  app.add_option("--warmup", warmup, "train suite: untimed warm-up steps");
  app.add_option("--steps", steps, "train suite: timed steps");
  app.add_option("--config", only,
                 "train suite: run only these: fp32, bf16_autocast, bf16, lora_fp32, lora_bf16")
      ->delimiter(',');
  app.add_option("--decode-preset", decode_preset, "decode suite: model preset");
  app.add_option("--decode-batch", decode_batches, "decode suite: batch sizes");
  app.add_option("--prompt-tokens", prompt_len, "decode suite: prompt length");
  app.add_option("--new-tokens", new_tokens, "decode suite: tokens generated per sequence");
  app.add_option("--lora7b-seq", lora_seq, "lora7b suite: sequence length");
  app.add_option("--lora7b-steps", lora_steps, "lora7b suite: timed steps (after one warm-up)");
  DpoUsersBench dpo_users;
  app.add_option("--dpo-preset", dpo_users.preset, "dpo_users suite: base model preset");
  app.add_option("--dpo-users", dpo_users.users, "dpo_users suite: users (one adapter each)");
  app.add_option("--dpo-steps", dpo_users.steps, "dpo_users suite: optimizer steps");
  app.add_option("--dpo-pairs", dpo_users.pairs_per_user,
                 "dpo_users suite: pairs per user per step");
  app.add_option("--dpo-tokens", dpo_users.response_tokens,
                 "dpo_users suite: tokens per response (prompts: 16)");
  ElicitBench elicit;
  app.add_option("--elicit-candidates", elicit.candidates,
                 "elicit suite: candidates per question (N), e.g. 64,128")
      ->delimiter(',');
  app.add_option("--elicit-samples", elicit.samples, "elicit suite: posterior samples (M)");
  app.add_option("--elicit-estimate-samples", elicit.estimate_samples,
                 "elicit suite: posterior samples averaged for the estimate (E >= M)");
  app.add_option("--elicit-questions", elicit.questions, "elicit suite: questions (K)");
  app.add_option("--elicit-dim", elicit.dim, "elicit suite: embedding dimension");
  int64_t zero3_layers = 4, zero3_seq = 64, zero3_steps = 3, zero3_rounds = 2;
  int zero3_prefetch = 1;
  app.add_option("--zero3-layers", zero3_layers, "zero3 suite: Mistral-7B blocks kept");
  app.add_option("--zero3-seq", zero3_seq, "zero3 suite: tokens per rank per step");
  app.add_option("--zero3-steps", zero3_steps, "zero3 suite: timed steps per measurement");
  app.add_option("--zero3-rounds", zero3_rounds, "zero3 suite: on/off measurement pairs");
  app.add_option("--zero3-prefetch", zero3_prefetch, "zero3 suite: blocks gathered ahead");
  std::string device_name = "cpu";
  app.add_option(
      "--device", device_name,
      "cpu, or cuda (train, decode, lora7b, dpo_users on this process's GPU; CUDA builds)");
  if (auto code = parse_arguments(app, args)) return *code;
  for (const auto& suite : suites)
    if (suite != "train" && suite != "decode" && suite != "lora7b" && suite != "zero3" &&
        suite != "dpo_users" && suite != "elicit")
      throw Error("bench", "--suite " + suite +
                               ": expected train, decode, lora7b, zero3, dpo_users or elicit");
  const at::Device device =
      resolve_device(device_type_from_name(device_name, "--device"), 0, "--device");
  if (B < 1 || T < 2 || steps < 1 || warmup < 0 || lora_seq < 2 || lora_steps < 1)
    throw Error("bench", "need --batch >= 1, --seq >= 2, --steps >= 1, --lora7b-seq >= 2");
  const auto wants = [&](const char* suite) {
    return std::find(suites.begin(), suites.end(), suite) != suites.end();
  };
  // Dropout off: the benchmark measures the model's arithmetic, not the RNG.
  const auto no_dropout = [](nlohmann::json config) {
    for (const char* key : {"resid_pdrop", "embd_pdrop", "attn_pdrop", "attention_dropout"})
      if (config.contains(key)) config[key] = 0.0;
    return config;
  };

  if (wants("train")) {
    const std::vector<BenchConfig> all = {
        {"fp32", at::kFloat, false, 0},          {"bf16_autocast", at::kFloat, true, 0},
        {"bf16", at::kBFloat16, false, 0},       {"lora_fp32", at::kFloat, false, 16},
        {"lora_bf16", at::kBFloat16, false, 16},
    };
    const nlohmann::json config = no_dropout(preset_config(preset));
    std::printf("[train] preset %s on %s, B=%lld T=%lld, %d threads\n", preset.c_str(),
                device.str().c_str(), (long long)B, (long long)T, at::get_num_threads());
    std::printf("%-14s %10s %12s %12s %14s\n", "config", "ms/step", "tokens/s", "peak MiB",
                "trainable");
    for (const auto& c : all) {
      if (!only.empty() && std::find(only.begin(), only.end(), c.name) == only.end()) continue;
      auto r = run_config(c, config, B, T, warmup, steps, device);
      r["suite"] = "train";
      std::printf("%-14s %10.1f %12.1f %12.0f %14lld\n", c.name.c_str(),
                  r["ms_per_step"].get<double>(), r["tokens_per_s"].get<double>(),
                  r["peak_memory_mib"].get<double>(),
                  (long long)r["trainable_parameters"].get<int64_t>());
      std::cerr << r.dump() << "\n";
    }
  }
  if (wants("decode")) {
    const nlohmann::json config = no_dropout(preset_config(decode_preset));
    std::printf("[decode] preset %s on %s, bf16, greedy, %lld prompt tokens, %lld new tokens\n",
                decode_preset.c_str(), device.str().c_str(), (long long)prompt_len,
                (long long)new_tokens);
    std::printf("%-8s %14s %18s %12s\n", "batch", "tokens/s", "ms/decode step", "peak MiB");
    for (int64_t batch : decode_batches) {
      auto r =
          run_decode(config, at::kBFloat16, batch, prompt_len, new_tokens, /*repeats=*/2, device);
      std::printf("%-8lld %14.1f %18.1f %12.0f\n", (long long)batch,
                  r["tokens_per_s"].get<double>(), r["ms_per_token_step"].get<double>(),
                  r["peak_memory_mib"].get<double>());
      std::cerr << r.dump() << "\n";
    }
  }
  if (wants("zero3")) {
    auto& comm = dist::world();
    nlohmann::json config = no_dropout(preset_config("mistral-7b"));
    config["num_hidden_layers"] = zero3_layers;
    if (comm.rank() == 0)
      std::printf(
          "[zero3] %d ranks (%s), mistral-7b shapes with %lld blocks (random init, bf16), LoRA "
          "r=16 on all linears, T=%lld per rank, %lld timed steps per measurement, prefetch %d\n"
          "%-8s %16s %16s %10s\n",
          comm.world_size(), comm.backend().c_str(), (long long)zero3_layers, (long long)zero3_seq,
          (long long)zero3_steps, zero3_prefetch, "round", "overlap s/step", "blocking s/step",
          "speed-up");
    for (const auto& r : run_zero3(config, zero3_prefetch, zero3_seq, zero3_steps, zero3_rounds)) {
      if (comm.rank() != 0) continue;
      const double on = r["overlap_s_per_step"].get<double>();
      const double off = r["blocking_s_per_step"].get<double>();
      std::printf("%-8lld %16.3f %16.3f %9.2fx\n", (long long)r["round"].get<int64_t>(), on, off,
                  off / on);
      std::cerr << r.dump() << "\n";
    }
  }
  if (wants("elicit"))
    for (const auto& row : bench_elicit(elicit))
      std::cerr << row.dump() << "\n";
  if (wants("dpo_users")) {
    dpo_users.device = device_name;
    std::cerr << bench_dpo_users(dpo_users).dump() << "\n";
  }
  if (wants("lora7b")) {
    // The real Mistral-7B shapes; LoRA r=16 on all seven projections, bf16 weights.
    const nlohmann::json config = no_dropout(preset_config("mistral-7b"));
    std::printf(
        "[lora7b] mistral-7b shapes (random init, bf16) on %s, LoRA r=16 on q,k,v,o,gate,up,"
        "down, B=1 T=%lld\n",
        device.str().c_str(), (long long)lora_seq);
    const double start = now_seconds();
    auto r = run_config({"lora_bf16", at::kBFloat16, false, 16}, config, 1, lora_seq,
                        /*warmup=*/1, lora_steps, device);
    r["suite"] = "lora7b";
    std::printf("%-14s %10s %12s %12s %14s %10s\n", "config", "ms/step", "tokens/s", "peak MiB",
                "trainable", "total s");
    std::printf("%-14s %10.1f %12.1f %12.0f %14lld %10.1f\n", "lora_bf16",
                r["ms_per_step"].get<double>(), r["tokens_per_s"].get<double>(),
                r["peak_memory_mib"].get<double>(),
                (long long)r["trainable_parameters"].get<int64_t>(), now_seconds() - start);
    std::cerr << r.dump() << "\n";
  }
  return 0;
}

}  // namespace tailor::cli
