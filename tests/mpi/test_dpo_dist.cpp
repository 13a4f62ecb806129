// Per-user DPO under mpirun (runs in `mpirun -np N tailor_mpi_tests`): N ranks, each taking its
// share of every user's pairs in every step, end with the same adapters as one process on the
// same global steps, and evaluate the same held-out margins; with dist.zero_stage 1 and 2 the
// adapters' AdamW state is sharded (1/N per rank) and the result is the same. "The same" is
// checked in float64 (train.precision fp64): the runs differ only in the order sums are taken,
// so 1e-10 relative is six orders of magnitude above float64 rounding, whatever BLAS kernels the
// machine runs (a float32 bound would be a property of one machine's kernels). Rank 0's
// one-process runs go through on_rank0, so a failure there fails every rank at once.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "../dpo_test_support.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "dist/communicator.h"
#include "dist/runtime.h"
#include "stages/dpo/dpo_stage.h"
#include "train/checkpoint/checkpoint.h"
#include "train/checkpoint/dpo_checkpoint.h"
#include "train/checkpoint/sharded_checkpoint.h"
#include "zero_test_support.h"

namespace fs = std::filesystem;
using namespace tailor;
using namespace tailor::testing;

namespace {

TEST(DpoDist, MatchesOneProcessOnTheSameGlobalSteps) {
  auto& comm = dist::world();
  const fs::path dir = shared_temp_dir("dpo");
  if (comm.rank() == 0) write_user_pairs(dir / "pairs.jsonl", dpo_user_pairs(8));
  comm.barrier();
  // 4 pairs per user per step split over 2 or 4 ranks.
  // One padded length in both (a rank's half-batch would otherwise pad shorter).
  const std::vector<std::string> overrides = {
      "train.pairs_per_user=4", "data.pad_to_max_length=true", "train.precision=fp64"};
  ASSERT_TRUE(on_rank0(comm, [&] {
    auto single = dist::make_single_process_communicator();
    run_dpo_stage(dpo_test_recipe(dir / "pairs.jsonl", dir / "one", overrides), *single);
  }));
  run_dpo_stage(dpo_test_recipe(dir / "pairs.jsonl", dir / "ranks", overrides), comm);
  comm.barrier();
  if (comm.rank() != 0) return;

  for (const std::string user : {"alice", "bob", "carol", "dave"}) {
    std::string where;
    const double diff = adapter_relative_difference(exported_adapter(dir / "ranks", user),
                                                    exported_adapter(dir / "one", user), &where);
    std::cout << user << " on " << comm.world_size() << " ranks: worst relative difference " << diff
              << " (" << where << ")\n";
    const double norm = adapter_norm_relative_difference(exported_adapter(dir / "ranks", user),
                                                         exported_adapter(dir / "one", user));
    std::cout << user << ": norm-relative difference " << norm << "\n";
    EXPECT_LE(diff, 1e-10) << user;
    EXPECT_GT(lora_b_abs_sum(exported_adapter(dir / "ranks", user)), 0.0)
        << user << ": LoRA B starts at zero and must have moved";
  }
  const auto one = read_jsonl(dir / "one" / "eval_pairs.jsonl");
  const auto ranks = read_jsonl(dir / "ranks" / "eval_pairs.jsonl");
  ASSERT_EQ(one.size(), ranks.size());
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_EQ(one[i]["chosen"], ranks[i]["chosen"]);
    const double a = one[i]["margin"].get<double>(), b = ranks[i]["margin"].get<double>();
    EXPECT_NEAR(a, b, 1e-10 * (1 + std::abs(a))) << i;
  }
  const auto summary = nlohmann::json::parse(read_file(dir / "ranks" / "summary.json"));
  EXPECT_EQ(summary["world_size"].get<int>(), comm.world_size());
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// Per-rank metrics that differ between runs of the same steps.
std::vector<nlohmann::json> stable_metrics(const fs::path& run) {
  auto records = read_jsonl(run / "metrics.jsonl");
  for (auto& r : records)
    for (const char* key : {"time", "tokens_per_s", "peak_rss_mib", "peak_rss_mib_max_rank"})
      r.erase(key);
  return records;
}

nlohmann::json last_train_record(const fs::path& run) {
  nlohmann::json last;
  for (const auto& r : read_jsonl(run / "metrics.jsonl"))
    if (r.contains("state_bytes_optimizer")) last = r;
  return last;
}

TEST(DpoDist, ZeroStagesShardTheAdaptersOptimizerStateAndMatchOneProcess) {
  auto& comm = dist::world();
  const int W = comm.world_size(), rank = comm.rank();
  const fs::path dir = shared_temp_dir("dpo_zero");
  if (rank == 0) write_user_pairs(dir / "pairs.jsonl", dpo_user_pairs(8));
  comm.barrier();
  // grad_clip 0.005 is below every user's gradient norm here, so per-user clipping bites in every
  // step; checkpoints at step 2 for the resumes below.
  const std::vector<std::string> common = {
      "train.pairs_per_user=4", "data.pad_to_max_length=true", "optimizer.grad_clip=0.005",
      "train.max_steps=4",      "train.checkpoint_every=2",    "train.precision=fp64"};
  const auto recipe = [&](const std::string& run, std::vector<std::string> extra) {
    extra.insert(extra.begin(), common.begin(), common.end());
    return dpo_test_recipe(dir / "pairs.jsonl", dir / run, extra);
  };
  const auto timed = [&](const std::string& what, const std::function<void()>& body) {
    const auto t0 = std::chrono::steady_clock::now();
    body();
    if (rank == 0)
      std::cout << what << ": "
                << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
                << " s\n";
  };
  ASSERT_TRUE(on_rank0(comm, [&] {
    timed("one process", [&] {
      auto single = dist::make_single_process_communicator();
      run_dpo_stage(recipe("one", {}), *single);
    });
  }));
  for (int stage : {1, 2})
    timed("zero stage " + std::to_string(stage), [&] {
      run_dpo_stage(
          recipe("zero" + std::to_string(stage), {"dist.zero_stage=" + std::to_string(stage)}),
          comm);
    });

  // Resume at the same world size: every rank fails at the start of step 4 (before any
  // collective of that step), after the step-2 checkpoint; the resumed run ends bit-identical.
  ::setenv("TAILOR_FAULT_RANK", std::to_string(rank).c_str(), 1);
  ::setenv("TAILOR_FAULT_STEP", "4", 1);
  EXPECT_THROW(run_dpo_stage(recipe("resumed", {"dist.zero_stage=1"}), comm), Error);
  ::unsetenv("TAILOR_FAULT_RANK");
  ::unsetenv("TAILOR_FAULT_STEP");
  comm.barrier();
  timed("zero stage 1 resumed", [&] {
    run_dpo_stage(recipe("resumed", {"dist.zero_stage=1", "train.resume=true"}), comm);
  });
  // Across layouts (same output_dir, which the recipe hash covers): one process's replicated
  // step-2 checkpoint resumed on the ranks at stage 2, and a stage-1 sharded one resumed by one
  // process at stage 0. Each first run fails at the start of step 3.
  const auto fail_at_step_3 = [&](const std::function<void()>& body) {
    ::setenv("TAILOR_FAULT_RANK", std::to_string(rank).c_str(), 1);
    ::setenv("TAILOR_FAULT_STEP", "3", 1);
    EXPECT_THROW(body(), Error);
    ::unsetenv("TAILOR_FAULT_RANK");
    ::unsetenv("TAILOR_FAULT_STEP");
  };
  ASSERT_TRUE(on_rank0(comm, [&] {
    fail_at_step_3([&] {
      auto single = dist::make_single_process_communicator();
      run_dpo_stage(recipe("from_one", {}), *single);
    });
  }));
  run_dpo_stage(recipe("from_one", {"dist.zero_stage=2", "train.resume=true"}), comm);
  fail_at_step_3([&] { run_dpo_stage(recipe("to_one", {"dist.zero_stage=1"}), comm); });
  comm.barrier();
  if (rank != 0) return;
  {
    auto single = dist::make_single_process_communicator();
    run_dpo_stage(recipe("to_one", {"train.resume=true"}), *single);
  }

  const auto one_metrics = read_jsonl(dir / "one" / "metrics.jsonl");
  for (const std::string run : {"zero1", "zero2", "from_one", "to_one"}) {
    for (const std::string user : {"alice", "bob", "carol", "dave"}) {
      std::string where;
      const TensorMap mine = exported_adapter(dir / run, user);
      const TensorMap one = exported_adapter(dir / "one", user);
      const double diff = adapter_relative_difference(mine, one, &where);
      const double norm = adapter_norm_relative_difference(mine, one);
      std::cout << run << " " << user << " on " << W << " ranks: worst relative difference " << diff
                << " (" << where << "), norm-relative " << norm << "\n";
      EXPECT_LE(diff, 1e-10) << run << " " << user;
    }
  }
  // Per-user clipping: every user's pre-clip norm is above grad_clip in every step (so every
  // step clips every user), and the sharded runs measure the norms one process does.
  const auto zero1_metrics = read_jsonl(dir / "zero1" / "metrics.jsonl");
  ASSERT_EQ(one_metrics.size(), zero1_metrics.size());
  int clipped = 0;
  double min_norm = INFINITY;
  for (size_t i = 0; i < one_metrics.size(); ++i)
    for (const std::string user : {"alice", "bob", "carol", "dave"}) {
      const std::string key = "users/" + user + "/grad_norm";
      if (!one_metrics[i].contains(key)) continue;
      const double a = one_metrics[i][key].get<double>(), b = zero1_metrics[i][key].get<double>();
      EXPECT_GT(a, 0.005) << key << " step " << i + 1;
      EXPECT_NEAR(a, b, 1e-10 * a) << key << " step " << i + 1;
      clipped += a > 0.005;
      min_norm = std::min(min_norm, a);
    }
  EXPECT_EQ(clipped, 16);  // 4 steps x 4 users
  std::cout << "smallest per-user gradient norm " << min_norm << " (grad_clip 0.005)\n";

  // Model-state bytes on rank 0. Ψ float64 (e = 8 bytes) adapter parameters fit one 25 MiB
  // bucket, so ZeRO packs them in one flat padded to a multiple of W: rank 0 owns ceil(Ψ / W)
  // elements of it. AdamW's two moments are in the weights' dtype.
  const int64_t e = 8;
  const nlohmann::json one = last_train_record(dir / "one");
  const int64_t psi = one["trainable_params"].get<int64_t>();
  int64_t adapters = 0;  // counted from the exported adapters
  for (const std::string user : {"alice", "bob", "carol", "dave"})
    adapters += total_numel(exported_adapter(dir / "one", user));
  EXPECT_EQ(psi, adapters);
  ASSERT_LT(psi * e, int64_t{25} << 20);
  const int64_t chunk = (psi + W - 1) / W;
  EXPECT_EQ(one["state_bytes_optimizer"].get<int64_t>(), 2 * e * psi);  // moments, replicated
  EXPECT_EQ(one["state_bytes_params"].get<int64_t>(), e * psi);
  for (int stage : {1, 2}) {
    const nlohmann::json z = last_train_record(dir / ("zero" + std::to_string(stage)));
    EXPECT_EQ(z["zero_stage"].get<int>(), stage);
    EXPECT_EQ(z["trainable_params"].get<int64_t>(), psi);
    EXPECT_EQ(z["state_bytes_optimizer"].get<int64_t>(), 2 * e * chunk);  // 1/W of the moments
    EXPECT_EQ(z["state_bytes_params"].get<int64_t>(), e * chunk * W);     // replicated, padded
    // Stage 1 keeps the full gradient between micro-batches; stage 2 only the owned chunk.
    EXPECT_EQ(z["state_bytes_grads"].get<int64_t>(), stage == 1 ? e * chunk * W : e * chunk);
    std::cout << "zero stage " << stage << " on " << W << " ranks: optimizer bytes per rank "
              << z["state_bytes_optimizer"].get<int64_t>() << " (replicated "
              << one["state_bytes_optimizer"].get<int64_t>() << ")\n";
  }

  // The resumed run ends bit-identical to the uninterrupted one, metrics included.
  for (const std::string user : {"alice", "bob", "carol", "dave"}) {
    const TensorMap a = exported_adapter(dir / "zero1", user);
    const TensorMap b = exported_adapter(dir / "resumed", user);
    for (const auto& [name, t] : a)
      EXPECT_TRUE(at::equal(t, b.at(name))) << user << " " << name;
  }
  EXPECT_EQ(stable_metrics(dir / "zero1"), stable_metrics(dir / "resumed"));

  // `tailor export --user` (dpo_user_model) reads the sharded checkpoint of the last step back
  // into the adapter the run exported. (The binary itself cannot start inside this MPI job.)
  const auto latest = latest_checkpoint(dir / "zero2");
  ASSERT_TRUE(latest.has_value());
  ASSERT_TRUE(dist::is_sharded_checkpoint(*latest));
  CausalLM carol = dpo_user_model(*latest, "carol", nullptr);
  const auto params = carol->named_parameters();
  const TensorMap from_run = exported_adapter(dir / "zero2", "carol");
  const std::string peft_prefix = "base_model.model.";
  for (const auto& [name, t] : from_run) {
    const auto* p = params.find(name.substr(peft_prefix.size()));
    ASSERT_NE(p, nullptr) << name;
    EXPECT_TRUE(at::equal(*p, t)) << name;
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// Stage 2 reduces a parameter's gradient once per backward; lm_head adapters get theirs once per
// chunk of positions (a number that differs between ranks), so the stage refuses them before
// any work, naming the key.
TEST(DpoDist, ZeroStage2RefusesLmHeadAdapters) {
  auto& comm = dist::world();
  const fs::path dir = shared_temp_dir("dpo_lm_head");
  if (comm.rank() == 0) write_user_pairs(dir / "pairs.jsonl", dpo_user_pairs(4));
  comm.barrier();
  const DpoRecipe recipe = dpo_test_recipe(
      dir / "pairs.jsonl", dir / "run",
      {"model.preset=mistral-tiny", "tokenizer=" TAILOR_SOURCE_DIR "/assets/tokenizers/mistral",
       "lora.targets=[q_proj, lm_head]", "dist.zero_stage=2", "train.pairs_per_user=4"});
  try {
    run_dpo_stage(recipe, comm);
    ADD_FAILURE() << "dist.zero_stage 2 with lm_head adapters was accepted";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("dist.zero_stage"), std::string::npos) << what;
    EXPECT_NE(what.find("lm_head"), std::string::npos) << what;
  }
  EXPECT_FALSE(fs::exists(dir / "run" / "metrics.jsonl"));
  comm.barrier();
  std::error_code ec;
  if (comm.rank() == 0) fs::remove_all(dir, ec);
}

TEST(DpoDist, ZeroStageRecipeErrorsNameTheKey) {
  const fs::path pairs = "/nonexistent/pairs.jsonl";
  for (const char* value : {"3", "4", "-1"}) {
    try {
      dpo_test_recipe(pairs, "/tmp/unused", {std::string("dist.zero_stage=") + value});
      ADD_FAILURE() << "dist.zero_stage=" << value << " accepted";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("dist.zero_stage"), std::string::npos) << what;
      if (std::string(value) == "3") {
        EXPECT_NE(what.find("frozen"), std::string::npos) << what;
      }
    }
  }
}

}  // namespace
