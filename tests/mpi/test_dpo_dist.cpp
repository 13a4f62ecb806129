// Per-user DPO under mpirun (runs in `mpirun -np N tailor_mpi_tests`): N ranks, each taking its
// share of every user's pairs in every step, end with the same adapters as one process on the
// same global steps, and evaluate the same held-out margins.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "../dpo_test_support.h"
#include "common/atomic_file.h"
#include "dist/communicator.h"
#include "dist/runtime.h"
#include "trainer/stages/dpo/dpo_stage.h"
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
  const std::vector<std::string> overrides = {"train.pairs_per_user=4",
                                              "data.pad_to_max_length=true"};
  if (comm.rank() == 0) {
    auto single = dist::make_single_process_communicator();
    ASSERT_EQ(run_dpo_stage(dpo_test_recipe(dir / "pairs.jsonl", dir / "one", overrides), *single),
              0);
  }
  comm.barrier();
  ASSERT_EQ(run_dpo_stage(dpo_test_recipe(dir / "pairs.jsonl", dir / "ranks", overrides), comm), 0);
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
    EXPECT_LE(norm, 1e-5) << user;
    EXPECT_LE(diff, 1e-4) << user;
  }
  const auto one = read_jsonl(dir / "one" / "eval_pairs.jsonl");
  const auto ranks = read_jsonl(dir / "ranks" / "eval_pairs.jsonl");
  ASSERT_EQ(one.size(), ranks.size());
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_EQ(one[i]["chosen"], ranks[i]["chosen"]);
    const double a = one[i]["margin"].get<double>(), b = ranks[i]["margin"].get<double>();
    EXPECT_NEAR(a, b, 1e-4 * (1 + std::abs(a))) << i;
  }
  const auto summary = nlohmann::json::parse(read_file(dir / "ranks" / "summary.json"));
  EXPECT_EQ(summary["world_size"].get<int>(), comm.world_size());
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
