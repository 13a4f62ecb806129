// The CUDA path (ctest label gpu; every test skips where no GPU is visible, so the CPU build
// compiles and lists them). Each compares the GPU with something independent of it:
//   forward      GPT-2 / Mistral logits on CUDA vs the float64 loop references of the CPU tests;
//   sft          a whole `stage: sft` run on dist.device cuda vs the same recipe on the CPU;
//   zero         ZeRO-3 (parameters built in shards, NCCL) vs plain training, both on CUDA;
//   generation   greedy decoding on CUDA vs CPU: the same tokens.
// The NCCL backend runs the MPI backend's tests (tests/mpi/test_mpi_communicator.cpp) with CUDA
// tensors: ctest's gpu.nccl_communicator.
// Float32 throughout; cuBLAS float32 matmuls do not use TF32 unless asked (LibTorch's default),
// so differences are summation order only.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <torch/cuda.h>
#include <torch/torch.h>

#include "../gpt2_reference.h"
#include "../mistral_reference.h"
#include "../mpi/zero_test_support.h"
#include "common/crash_report.h"
#include "common/device.h"
#include "common/error.h"
#include "dist/runtime.h"
#include "models/generation/generate.h"
#include "models/gpt2/gpt2.h"
#include "models/mistral/mistral.h"
#include "stages/sft/sft_stage.h"

namespace tailor {
namespace {
namespace fs = std::filesystem;

#define SKIP_WITHOUT_GPU()                                                                  \
  do {                                                                                      \
    if (!cuda_usable()) GTEST_SKIP() << "no CUDA GPU visible (or a CPU build of LibTorch)"; \
  } while (0)

const at::Device kGpu(at::kCUDA, 0);

// A crash inside CUDA, NCCL or LibTorch prints the native stack (common/crash_report.h).
const bool kCrashReportInstalled = [] {
  install_crash_report();
  return true;
}();

std::vector<int64_t> random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Tensor t = at::randint(vocab, {n}, gen, at::kLong);
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
}

at::Tensor as_ids(const std::vector<int64_t>& ids, int64_t B, int64_t T) {
  return at::tensor(ids, at::kLong).view({B, T});
}

GPT2Config tiny_gpt2() {
  GPT2Config config;
  config.vocab_size = 97;
  config.n_positions = 32;
  config.n_embd = 48;
  config.n_layer = 2;
  config.n_head = 4;
  config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = 0.0;
  return config;
}

MistralConfig tiny_mistral() {
  MistralConfig config;
  config.vocab_size = 101;
  config.hidden_size = 48;
  config.intermediate_size = 80;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 4;
  config.num_key_value_heads = 2;
  config.max_position_embeddings = 64;
  config.rms_norm_eps = 1e-5;
  config.sliding_window = 6;  // shorter than T below: the window takes part
  return config;
}

// ---- forward: CUDA float32 vs the float64 loop reference -----------------------------------

TEST(GpuForward, Gpt2LogitsOnCudaMatchFloat64Reference) {
  SKIP_WITHOUT_GPU();
  const GPT2Config config = tiny_gpt2();
  const TensorMap weights = reference::random_hf_weights(config, 21);
  GPT2LMHead model(config);
  model->load_hf_state_dict(weights);
  model->eval();
  model->to(kGpu);
  const int64_t B = 2, T = 12;
  const auto ids = random_ids(B * T, config.vocab_size, 4);
  const std::vector<int64_t> mask = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                     0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1};  // left padding
  torch::NoGradGuard no_grad;
  const at::Tensor logits =
      model(as_ids(ids, B, T).to(kGpu), as_ids(mask, B, T).to(kGpu), at::Tensor());
  ASSERT_TRUE(logits.is_cuda());
  const auto expected = reference::gpt2_logits(config, weights, ids, B, T, mask);
  const auto actual = reference::to_doubles(logits.cpu());
  // Real rows only: a fully padded query row is defined but meaningless.
  std::vector<double> a, e;
  for (int64_t row = 0; row < B * T; ++row) {
    if (mask[row] == 0) continue;
    a.insert(a.end(), actual.begin() + row * config.vocab_size,
             actual.begin() + (row + 1) * config.vocab_size);
    e.insert(e.end(), expected.begin() + row * config.vocab_size,
             expected.begin() + (row + 1) * config.vocab_size);
  }
  EXPECT_LT(reference::relative_error(a, e), 1e-5);
}

TEST(GpuForward, MistralLogitsOnCudaMatchFloat64Reference) {
  SKIP_WITHOUT_GPU();
  const MistralConfig config = tiny_mistral();
  const TensorMap weights = reference::random_mistral_weights(config, 22);
  MistralForCausalLM model(config, /*init_weights=*/false);
  model->load_hf_state_dict(weights);
  model->eval();
  model->to(kGpu);
  const int64_t B = 2, T = 10;
  const auto ids = random_ids(B * T, config.vocab_size, 5);
  torch::NoGradGuard no_grad;
  const at::Tensor logits = model(as_ids(ids, B, T).to(kGpu), at::Tensor(), at::Tensor());
  ASSERT_TRUE(logits.is_cuda());
  const auto expected = reference::mistral_logits(config, weights, ids, B, T);
  EXPECT_LT(reference::relative_error(reference::to_doubles(logits.cpu()), expected), 1e-5);
}

// ---- generation: greedy tokens on CUDA equal the CPU's -------------------------------------

TEST(GpuGeneration, GreedyTokensOnCudaEqualCpu) {
  SKIP_WITHOUT_GPU();
  const GPT2Config config = tiny_gpt2();
  const TensorMap weights = reference::random_hf_weights(config, 23);
  GPT2LMHead cpu(config), gpu(config);
  cpu->load_hf_state_dict(weights);
  gpu->load_hf_state_dict(weights);
  gpu->to(kGpu);
  const std::vector<std::vector<int32_t>> prompts = {{5, 17, 3}, {9}, {40, 41, 42, 43, 44, 45}};
  GenerationConfig greedy;
  greedy.max_new_tokens = 20;
  greedy.eos_token_id = config.vocab_size;  // never produced: every row runs 20 tokens
  const auto on_cpu = generate(*cpu, prompts, greedy);
  const auto on_gpu = generate(*gpu, prompts, greedy);
  ASSERT_EQ(on_cpu.size(), on_gpu.size());
  for (size_t i = 0; i < on_cpu.size(); ++i) {
    EXPECT_EQ(on_gpu[i].ids, on_cpu[i].ids) << "prompt " << i;
    EXPECT_EQ(on_gpu[i].ids.size(), 20u);
  }
}

// ---- sft and zero: whole runs from a recipe -------------------------------------------------

struct Runs {
  fs::path dir = testing::shared_temp_dir("gpu");
  ~Runs() { fs::remove_all(dir); }
};

std::vector<double> losses(const fs::path& run_dir) {
  std::ifstream in(run_dir / "metrics.jsonl");
  std::vector<double> out;
  std::string line;
  while (std::getline(in, line)) {
    const auto record = nlohmann::json::parse(line);
    if (record.contains("loss")) out.push_back(record["loss"].get<double>());
  }
  return out;
}

void expect_losses_close(const std::vector<double>& a, const std::vector<double>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_NEAR(a[i], b[i], tol * std::abs(b[i])) << "step " << i + 1;
}

// The same recipe (tiny model, 4 AdamW steps, no dropout) on the CPU and on the GPU: float32
// arithmetic in another order, so parameters agree to rounding (observed on an H100: 4e-6 to
// 1.1e-5, docs/gpu.md); 1e-4 relative bounds it with room, while a wrong step (a skipped
// micro-batch, a missed clip) moves parameters by ~lr = 3e-3 relative. The single-process
// backend keeps NCCL out of this comparison (GpuZero below runs through NCCL).
TEST(GpuSft, RunOnCudaMatchesTheSameRecipeOnCpu) {
  SKIP_WITHOUT_GPU();
  Runs runs;
  for (auto family : {testing::Family::kGpt2, testing::Family::kMistral}) {
    const std::string tag = family == testing::Family::kGpt2 ? "gpt2" : "mistral";
    for (bool lora : {false, true}) {
      const std::string name = tag + (lora ? "_lora" : "_full");
      SCOPED_TRACE(name);
      const fs::path cpu = runs.dir / (name + "_cpu"), gpu = runs.dir / (name + "_gpu");
      run_sft_stage(testing::make_recipe(runs.dir, cpu, lora, {}, family));
      run_sft_stage(testing::make_recipe(runs.dir, gpu, lora,
                                         {"dist.device=cuda", "dist.backend=single"}, family));
      const double worst =
          testing::worst_relative_difference(testing::final_model(gpu), testing::final_model(cpu));
      std::cout << "[gpu] " << name << ": cuda vs cpu parameters, worst relative " << worst << "\n";
      EXPECT_LT(worst, 1e-4);
      expect_losses_close(losses(gpu), losses(cpu), 1e-5);
    }
  }
}

// ZeRO-3 at world size 1 on CUDA with NCCL collectives (dist.backend auto) against no engine
// at all on the same GPU: the flat buffers, the sharded build and the engine's AdamW must
// reproduce plain training (same tolerance as the CPU stage-3 tests: 1e-5 relative).
TEST(GpuZero, Stage3WithNcclMatchesPlainTrainingOnCuda) {
  SKIP_WITHOUT_GPU();
  Runs runs;
  for (bool lora : {false, true}) {
    SCOPED_TRACE(lora ? "lora" : "full");
    const fs::path plain = runs.dir / (lora ? "plain_lora" : "plain");
    const fs::path zero3 = runs.dir / (lora ? "zero3_lora" : "zero3");
    run_sft_stage(testing::make_recipe(runs.dir, plain, lora, {"dist.device=cuda"}));
    run_sft_stage(testing::make_recipe(
        runs.dir, zero3, lora, {"dist.device=cuda", "dist.zero_stage=3", "dist.backend=auto"}));
    const double worst = testing::worst_relative_difference(testing::final_model(zero3),
                                                            testing::final_model(plain));
    std::cout << "[gpu] zero3 " << (lora ? "lora" : "full") << " vs plain on cuda: worst relative "
              << worst << "\n";
    EXPECT_LT(worst, 1e-5);
    expect_losses_close(losses(zero3), losses(plain), 1e-6);
    const auto metrics = testing::last_metrics(zero3);
    ASSERT_FALSE(metrics.is_null());
    EXPECT_EQ(metrics["zero_stage"], 3);
    EXPECT_GT(metrics.value("peak_gpu_allocated_mib", 0.0), 0.0);
  }
}

}  // namespace
}  // namespace tailor
