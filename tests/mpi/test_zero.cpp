// ZeRO data parallelism against one process (runs under `mpirun -np N tailor_mpi_tests`):
// for stages 0-3, full fine-tuning and LoRA, N ranks training a small GPT-2 for several
// optimizer steps end with the same parameters as a single process on the same global batches;
// the model-state bytes and traffic they report follow the ZeRO formulas; and a checkpoint
// saved at one world size resumes at another (ZeroResume, driven by ctest in three launches).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "dist/communicator.h"
#include "dist/runtime.h"
#include "stages/sft/sft_recipe.h"
#include "stages/sft/sft_stage.h"
#include "train/checkpoint/checkpoint.h"
#include "train/checkpoint/sharded_checkpoint.h"
#include "train/zero/zero.h"
#include "zero_test_support.h"

namespace fs = std::filesystem;
using namespace tailor;
using namespace tailor::testing;

namespace {

class ZeroEquivalence : public ::testing::TestWithParam<std::tuple<int, bool>> {
 protected:
  // One single-process reference per model kind, on the same global batches (grad_accum =
  // world size), shared by the four stages.
  static fs::path reference(bool lora) {
    static std::map<bool, fs::path> done;
    auto& comm = dist::world();
    if (!done.count(lora)) {
      const fs::path dir = shared_temp_dir(lora ? "ref_lora" : "ref_full");
      const fs::path out = dir / "run";
      const SftRecipe recipe =
          make_recipe(dir, out, lora, {"train.grad_accum=" + std::to_string(comm.world_size())});
      EXPECT_TRUE(on_rank0(comm, [&] {
        auto single = dist::make_single_process_communicator();
        run_sft_stage(recipe, *single);
      }));
      done[lora] = out;
    }
    return done[lora];
  }
};

TEST_P(ZeroEquivalence, MatchesOneProcessOnTheSameGlobalBatches) {
  const auto [stage, lora] = GetParam();
  auto& comm = dist::world();
  const fs::path ref = reference(lora);
  const fs::path dir = shared_temp_dir("stage" + std::to_string(stage));
  const fs::path out = dir / "run";
  const SftRecipe recipe =
      make_recipe(dir, out, lora, {"dist.zero_stage=" + std::to_string(stage)});
  run_sft_stage(recipe, comm);
  comm.barrier();
  if (comm.rank() != 0) return;

  const auto trained = final_model(out);
  if (lora) {
    EXPECT_GT(lora_b_abs_sum(trained), 0.0) << "LoRA B starts at zero: it must have moved";
  }
  const double diff = worst_relative_difference(trained, final_model(ref));
  std::cout << "stage " << stage << (lora ? " LoRA" : " full") << ": worst relative difference "
            << diff << "\n";
  EXPECT_LE(diff, 1e-10) << "stage " << stage << (lora ? " LoRA" : " full") << " on "
                         << comm.world_size() << " ranks";

  // Model-state bytes and traffic per step against the ZeRO paper's formulas (Rajbhandari et al.
  // 2020, section 3), with float64 sizes: weights e = 8, gradients e, AdamW moments 2e bytes per
  // parameter.
  const nlohmann::json m = last_metrics(out);
  ASSERT_FALSE(m.is_null()) << "no ZeRO metrics in " << (out / "metrics.jsonl");
  EXPECT_EQ(m["world_size"].get<int>(), comm.world_size());
  EXPECT_EQ(m["zero_stage"].get<int>(), stage);
  if (lora) return;  // the formulas are for full fine-tuning (frozen weights come on top)
  const double psi = m["trainable_params"].get<double>();
  EXPECT_EQ(psi, static_cast<double>(total_numel(trained)));  // counted from the weights
  const double n = comm.world_size();
  const double e = 8;
  const double params = stage == 3 ? e * psi / n : e * psi;
  const double grads = stage >= 2 ? e * psi / n : e * psi;
  const double optimizer = stage >= 1 ? 2 * e * psi / n : 2 * e * psi;
  const double traffic = (stage == 3 ? 3 : 2) * e * psi;
  EXPECT_NEAR(m["state_bytes_params"].get<double>() / params, 1.0, 0.05);
  EXPECT_NEAR(m["state_bytes_grads"].get<double>() / grads, 1.0, 0.05);
  EXPECT_NEAR(m["state_bytes_optimizer"].get<double>() / optimizer, 1.0, 0.05);
  EXPECT_NEAR(m["comm_bytes_step"].get<double>() / traffic, 1.0, 0.05);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

INSTANTIATE_TEST_SUITE_P(Stages, ZeroEquivalence,
                         ::testing::Combine(::testing::Values(0, 1, 2, 3), ::testing::Bool()),
                         [](const auto& info) {
                           return "stage" + std::to_string(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) ? "_lora" : "_full");
                         });

// Resume on a different world size, in three launches that share TAILOR_RESUME_DIR (see
// tests/CMakeLists.txt): 4 ranks train 2 of 4 steps at ZeRO stage 3 and checkpoint; then 2 ranks
// (stage 2) and 1 process (stage 0) each resume a copy and finish; both must equal one process
// training all 4 steps uninterrupted on the same global batches.
const char* resume_dir() {
  return std::getenv("TAILOR_RESUME_DIR");
}

SftRecipe resume_recipe(const fs::path& out, int stage, int64_t steps, bool resume) {
  const fs::path dir = fs::path(resume_dir());
  return make_recipe(dir, out, /*lora=*/false,
                     {"dist.zero_stage=" + std::to_string(stage), "train.global_batch_size=8",
                      "train.max_steps=" + std::to_string(steps),
                      std::string("train.resume=") + (resume ? "true" : "false")});
}

TEST(ZeroResume, SaveAtStep2) {
  if (!resume_dir()) GTEST_SKIP() << "run by ctest's mpi.resume.* entries";
  auto& comm = dist::world();
  if (comm.rank() == 0) {
    fs::remove_all(resume_dir());
    fs::create_directories(resume_dir());
  }
  comm.barrier();
  const fs::path out = fs::path(resume_dir()) / "saved";
  run_sft_stage(resume_recipe(out, 3, 2, false), comm);
  comm.barrier();
  if (comm.rank() == 0) {
    dist::ShardedCheckpointReader reader(*latest_checkpoint(out));
    EXPECT_TRUE(reader.sharded());
    EXPECT_EQ(reader.world_size(), comm.world_size());
    EXPECT_EQ(reader.state().step, 2);
  }
}

TEST(ZeroResume, ContinueAtThisWorldSize) {
  if (!resume_dir()) GTEST_SKIP() << "run by ctest's mpi.resume.* entries";
  auto& comm = dist::world();
  const fs::path saved = fs::path(resume_dir()) / "saved";
  ASSERT_TRUE(latest_checkpoint(saved).has_value()) << "run ZeroResume.SaveAtStep2 first";
  const std::string tag = "np" + std::to_string(comm.world_size());
  const fs::path resumed = fs::path(resume_dir()) / ("resumed_" + tag);
  if (comm.rank() == 0) {
    fs::remove_all(resumed);
    fs::copy(saved, resumed, fs::copy_options::recursive);
  }
  comm.barrier();
  const int stage = comm.world_size() == 1 ? 0 : 2;
  run_sft_stage(resume_recipe(resumed, stage, 4, true), comm);
  const fs::path ref = fs::path(resume_dir()) / ("reference_" + tag);
  // micro 2 x grad_accum 4 = the global batch of 8 of every run here.
  const SftRecipe recipe = resume_recipe(ref, 0, 4, false);  // collective: before the return
  comm.barrier();
  if (comm.rank() != 0) return;
  auto single = dist::make_single_process_communicator();
  run_sft_stage(recipe, *single);
  EXPECT_LE(worst_relative_difference(final_model(resumed), final_model(ref)), 1e-10);
}

// for_each_owned_gradient: at stages 0-2, the owned parts of the reduced gradients cover every
// trainable element exactly once over the ranks (stage 0: each rank all of it), hold the summed
// gradient, and scaling a part in place scales what the step uses (here: what a second visit
// reads). Three parameters, one frozen, a bucket small enough to give two trainable flats.
TEST(ZeroOwnedGradients, CoverEveryTrainableElementOnceWithTheSummedGradient) {
  auto& comm = dist::world();
  const int W = comm.world_size(), rank = comm.rank();
  for (int stage : {0, 1, 2}) {
    SCOPED_TRACE("stage " + std::to_string(stage));
    const std::vector<std::vector<int64_t>> shapes = {{3, 5}, {7}, {2, 2, 3}};
    std::vector<dist::ZeroParam> params;
    for (size_t i = 0; i < shapes.size(); ++i) {
      int64_t n = 1;
      for (int64_t d : shapes[i])
        n *= d;
      at::Tensor p = (at::arange(n, at::kFloat) * 0.01f + static_cast<float>(i)).reshape(shapes[i]);
      p.set_requires_grad(i != 1);  // the second is frozen
      params.push_back({"p" + std::to_string(i), p, true});
    }
    std::vector<at::Tensor> live;
    for (const auto& p : params)
      live.push_back(p.param);
    dist::ZeroConfig config;
    config.stage = stage;
    config.bucket_bytes = 15 * 4;  // p0 (15 floats) and p2 (12) in flats of their own
    dist::ZeroEngine engine(comm, std::move(params), {}, config);
    // Rank r's loss: sum_i (r + 1) * <c_i, p_i>, c_i = arange; the summed gradient of p_i is
    // W (W + 1) / 2 * c_i.
    at::Tensor loss = at::zeros({}, at::kFloat);
    for (size_t i : {size_t{0}, size_t{2}}) {
      const at::Tensor c = at::arange(live[i].numel(), at::kFloat).reshape(shapes[i]);
      loss = loss + (live[i] * c).sum() * static_cast<float>(rank + 1);
    }
    loss.backward();
    engine.after_backward();
    engine.reduce_gradients();
    const float total = static_cast<float>(W * (W + 1) / 2);
    std::map<std::string, at::Tensor> covered;  // name -> per-element count on this rank
    covered["p0"] = at::zeros({15}, at::kDouble);
    covered["p2"] = at::zeros({12}, at::kDouble);
    engine.for_each_owned_gradient([&](const dist::GradientPart& part) {
      ASSERT_TRUE(covered.count(part.name)) << part.name << " is frozen";
      const int64_t n = part.grad.numel();
      const at::Tensor expected = at::arange(part.begin, part.begin + n, at::kFloat) * total;
      EXPECT_TRUE(at::allclose(part.grad, expected)) << part.name << " @" << part.begin;
      covered[part.name].narrow(0, part.begin, n).add_(1);
      part.grad.mul_(2);  // visible on the next visit
    });
    engine.for_each_owned_gradient([&](const dist::GradientPart& part) {
      const at::Tensor expected =
          at::arange(part.begin, part.begin + part.grad.numel(), at::kFloat) * (2 * total);
      EXPECT_TRUE(at::allclose(part.grad, expected)) << part.name;
    });
    for (auto& [name, count] : covered) {
      if (stage > 0) comm.all_reduce_sum(count);
      EXPECT_TRUE(at::equal(count, at::ones_like(count))) << name;
    }
  }
}

}  // namespace
