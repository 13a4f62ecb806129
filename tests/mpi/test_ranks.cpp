// train/loop/ranks.h under mpirun: one rank with another recipe stops every rank with an error
// naming that rank; sum_over_ranks gives the exact sum of hand-set per-rank values.
#include <cmath>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/error.h"
#include "dist/communicator.h"
#include "dist/runtime.h"
#include "train/loop/ranks.h"

namespace tailor {
namespace {

TEST(Ranks, ADifferentRecipeOnOneRankStopsEveryRankNamingIt) {
  dist::Communicator& comm = dist::world();
  if (comm.world_size() < 2) GTEST_SKIP() << "needs mpirun -np 2 or more";
  EXPECT_NO_THROW(check_ranks_agree(comm, "abc"));
  const int last = comm.world_size() - 1;
  try {
    check_ranks_agree(comm, comm.rank() == last ? "xyz" : "abc");
    FAIL() << "rank " << comm.rank() << " went on with a different recipe on rank " << last;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank " + std::to_string(last) +
                                         " resolved a different recipe (hash xyz) than rank 0 "
                                         "(abc)"),
              std::string::npos)
        << e.what();
  }
}

TEST(Ranks, SumOverRanksIsTheExactSum) {
  dist::Communicator& comm = dist::world();
  const int64_t W = comm.world_size(), r = comm.rank();
  // Rank r holds {r + 1, 2^-(r + 1), -r}: sums W(W+1)/2, 1 - 2^-W, -W(W-1)/2, exact in float64.
  const at::Tensor mine =
      at::tensor({static_cast<double>(r + 1), std::ldexp(1.0, -(r + 1)), -static_cast<double>(r)},
                 at::kDouble);
  const at::Tensor sum = sum_over_ranks(comm, mine);
  EXPECT_EQ(sum[0].item<double>(), static_cast<double>(W * (W + 1) / 2));
  EXPECT_EQ(sum[1].item<double>(), 1.0 - std::ldexp(1.0, -static_cast<int>(W)));
  EXPECT_EQ(sum[2].item<double>(), -static_cast<double>(W * (W - 1) / 2));
  EXPECT_EQ(mine[0].item<double>(), static_cast<double>(r + 1)) << "the input is left as it was";
}

}  // namespace
}  // namespace tailor
