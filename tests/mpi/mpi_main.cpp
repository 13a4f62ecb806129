// main() of tailor_mpi_tests, run as `mpirun -np N tailor_mpi_tests`: starts dist::Runtime so
// every test sees the MPI world. Rank 0 prints GoogleTest's usual report; other ranks print only
// their failures, prefixed with the rank. The exit code is non-zero on every rank when any rank
// failed (a failure count is all-reduced at the end), so mpirun and ctest report it.
#include <cstdio>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "dist/runtime.h"

namespace {

// Failure lines of a non-zero rank, e.g. "[rank 2] test_x.cpp:40: Expected equality ...".
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: %s\n", rank_,
                 result.file_name() ? result.file_name() : "?", result.line_number(),
                 result.message());
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed()) {
      std::fprintf(stderr, "[rank %d] FAILED %s.%s\n", rank_, info.test_suite_name(), info.name());
    }
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  tailor::dist::Runtime runtime(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  tailor::dist::Communicator& world = tailor::dist::world();
  if (world.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(world.rank()));
  }
  const int result = RUN_ALL_TESTS();
  at::Tensor failed_ranks = at::full({1}, result != 0 ? 1 : 0, at::kLong);
  world.all_reduce_sum(failed_ranks);
  const int64_t failures = failed_ranks.item<int64_t>();
  if (world.rank() == 0 && failures > 0) {
    std::fprintf(stderr, "tailor_mpi_tests: %lld of %d ranks had failures\n",
                 static_cast<long long>(failures), world.world_size());
  }
  return failures > 0 ? 1 : 0;
}
