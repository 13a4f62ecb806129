// The MPI backend under mpirun (world sizes 2 and 4 in ctest). Expected values are written from
// the collective's definition with rank-dependent inputs: e.g. every rank contributes rank + 1,
// so a sum is N(N+1)/2; layouts encode (rank, index) in the value.
//
// The same tests check the NCCL backend: with TAILOR_TEST_BACKEND=nccl (ctest's gpu.nccl, one
// process on a GPU machine; docs/gpu.md) the communicator is NCCL's and every tensor is made on
// its GPU. Tests of MPI-only behaviour (the launcher, chunking, float16 refusal) skip there.
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/error.h"
#include "dist/communicator.h"
#include "dist/mpi_communicator.h"
#include "dist/nccl_communicator.h"
#include "dist/runtime.h"

namespace tailor::dist {
namespace {

class MpiCommunicatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* backend = std::getenv("TAILOR_TEST_BACKEND");
    nccl = backend != nullptr && std::string(backend) == "nccl";
    if (nccl) {
#ifdef TAILOR_WITH_NCCL
      if (at::globalContext().hasCUDA()) comm = make_nccl_communicator(world());
#endif
      if (!comm) GTEST_SKIP() << "TAILOR_TEST_BACKEND=nccl needs a CUDA build and a GPU";
    } else {
      if (!mpi_active()) GTEST_SKIP() << "not launched by mpirun";
      mpi = std::make_shared<MpiCommunicator>();
      comm = mpi;
    }
    rank = comm->rank();
    size = comm->world_size();
  }
  // Tensor options on the communicator's device.
  at::TensorOptions on(at::ScalarType dtype) const {
    return at::TensorOptions().dtype(dtype).device(comm->device());
  }
  at::Tensor put(const at::Tensor& t) const {
    return t.to(comm->device());
  }

  bool nccl = false;
  std::shared_ptr<Communicator> comm;
  std::shared_ptr<MpiCommunicator> mpi;  // null on NCCL
  int rank = 0;
  int size = 1;
  // 1 + 2 + ... + N: the sum of every rank's (rank + 1).
  double triangle() const {
    return size * (size + 1) / 2.0;
  }
};

// Nearest bfloat16 (8 significant bits) to a double in the normal range, ties to even; written
// from the format's definition, independently of c10::BFloat16.
double round_to_bf16(double x) {
  if (x == 0) return 0;
  int exponent = 0;
  std::frexp(x, &exponent);  // |x| = m 2^exponent, 0.5 <= m < 1
  const double ulp = std::ldexp(1.0, exponent - 8);
  return std::nearbyint(x / ulp) * ulp;  // default rounding mode: to nearest, ties to even
}

// A spread of bfloat16-representable values that every rank can compute for every rank.
double bf16_value(int rank, int64_t i) {
  return round_to_bf16(3.0 * std::sin(0.37 * static_cast<double>(i) + 1.3 * rank) + 0.01 * i);
}

TEST_F(MpiCommunicatorTest, WorldMatchesLauncherEnvironment) {
  if (nccl) GTEST_SKIP() << "launcher detection is MPI's";
  EXPECT_EQ(world().backend(), "mpi");
  const LaunchInfo info = detect_launch();
  EXPECT_TRUE(info.under_launcher);
  EXPECT_EQ(info.launcher, "mpirun");
  EXPECT_EQ(info.world_size, size);
  EXPECT_EQ(info.rank, rank);
  EXPECT_EQ(world().rank(), rank);
  // mpirun on one host: all ranks share it, so the local numbering is the global one.
  EXPECT_EQ(comm->local_size(), size);
  EXPECT_EQ(comm->local_rank(), rank);
  EXPECT_EQ(comm->local_rank(), info.local_rank);
}

TEST_F(MpiCommunicatorTest, AllReduceSumsRankPlusOneForEveryDtype) {
  for (at::ScalarType dtype : {at::kFloat, at::kDouble, at::kLong, at::kBFloat16}) {
    at::Tensor t = at::full({3, 5}, rank + 1, on(dtype));
    comm->all_reduce_sum(t);
    EXPECT_TRUE(at::all(t.to(at::kDouble) == triangle()).item<bool>()) << c10::toString(dtype);
  }
}

TEST_F(MpiCommunicatorTest, AllReduceKeepsElementPositions) {
  // t[i] = 1000 (rank + 1) + i  ->  sum = 1000 N(N+1)/2 + N i.
  at::Tensor t = at::arange(12, on(at::kDouble)) + 1000.0 * (rank + 1);
  comm->all_reduce_sum(t);
  for (int64_t i = 0; i < 12; ++i) {
    EXPECT_EQ(t[i].item<double>(), 1000 * triangle() + size * i) << "element " << i;
  }
}

TEST_F(MpiCommunicatorTest, ReduceScatterGivesEachRankItsBlockOfTheSum) {
  const int64_t n = 3;
  // input_s[j] = 100 (s + 1) + j; rank r keeps j = r n + i: 100 N(N+1)/2 + N (r n + i).
  at::Tensor input = at::arange(size * n, on(at::kFloat)) + 100.0f * (rank + 1);
  at::Tensor output = at::zeros({n}, on(at::kFloat));
  comm->reduce_scatter_sum(input, output);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(output[i].item<float>(), 100 * triangle() + size * (rank * n + i)) << i;
  }
}

TEST_F(MpiCommunicatorTest, ReduceScatterIntoOwnBlockOfInput) {
  const int64_t n = 4;
  at::Tensor input = at::arange(size * n, on(at::kDouble)) * (rank + 1);
  at::Tensor output = input.narrow(0, rank * n, n);  // aliases the input
  comm->reduce_scatter_sum(input, output);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(input[rank * n + i].item<double>(), triangle() * (rank * n + i)) << i;
  }
}

TEST_F(MpiCommunicatorTest, AllGatherPlacesRankBlocksInRankOrder) {
  const int64_t n = 4;
  at::Tensor input = at::arange(n, on(at::kLong)) + 10 * rank;  // input_r[i] = 10 r + i
  at::Tensor output = at::full({size, n}, -1, on(at::kLong));
  comm->all_gather(input, output);
  for (int r = 0; r < size; ++r) {
    for (int64_t i = 0; i < n; ++i)
      EXPECT_EQ(output[r][i].item<int64_t>(), 10 * r + i);
  }
}

TEST_F(MpiCommunicatorTest, AllGatherInPlaceFromOwnBlock) {
  const int64_t n = 3;
  at::Tensor output = at::full({size * n}, -1.0f, on(at::kFloat));
  at::Tensor own = output.narrow(0, rank * n, n);
  own.copy_(at::arange(n, on(at::kFloat)) + 10.0f * rank);
  comm->all_gather(own, output);
  for (int r = 0; r < size; ++r) {
    for (int64_t i = 0; i < n; ++i)
      EXPECT_EQ(output[r * n + i].item<float>(), 10 * r + i);
  }
}

TEST_F(MpiCommunicatorTest, BroadcastFromLastRank) {
  const int root = size - 1;
  at::Tensor t = at::arange(6, on(at::kFloat)) + 7.0f * rank;
  comm->broadcast(t, root);
  for (int64_t i = 0; i < 6; ++i)
    EXPECT_EQ(t[i].item<float>(), 7 * root + i);
  // A dtype MPI cannot sum still moves bit for bit.
  at::Tensor ints = at::full({5}, rank == root ? 123456789 : rank, on(at::kInt));
  comm->broadcast(ints, root);
  EXPECT_TRUE(at::all(ints == 123456789).item<bool>());
}

TEST_F(MpiCommunicatorTest, Bfloat16SumsOfRepresentableValuesAreExact) {
  // (rank + 1)(i + 1) / 4: every partial sum is a multiple of 1/4 below 64, exact in bf16.
  at::Tensor t = put(((at::arange(8, at::kFloat) + 1) * (rank + 1) * 0.25f).to(at::kBFloat16));
  comm->all_reduce_sum(t);
  for (int64_t i = 0; i < 8; ++i) {
    EXPECT_EQ(t[i].item<float>(), triangle() * (i + 1) * 0.25) << i;
  }
}

TEST_F(MpiCommunicatorTest, Bfloat16SumRoundsToNearestEvenOncePerAddition) {
  if (size < 2) GTEST_SKIP() << "needs two ranks";
  // Ranks 0 and 1 contribute a and b, the others 0 (adding 0 is exact), so whatever order MPI
  // applies the operation in, the result is one rounding of a + b.
  const int64_t n = 64;
  std::vector<double> a(n), b(n);
  for (int64_t i = 0; i < n; ++i) {
    a[i] = bf16_value(0, i);
    b[i] = bf16_value(1, i);
  }
  // Ties: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 -> the even 1; (1 + 2^-7) + 2^-8 lies
  // halfway between 1 + 2^-7 (odd) and 1 + 2^-6 -> 1 + 2^-6.
  a[0] = 1.0;
  b[0] = std::ldexp(1.0, -8);
  a[1] = 1.0 + std::ldexp(1.0, -7);
  b[1] = std::ldexp(1.0, -8);
  at::Tensor mine = at::zeros({n}, at::kDouble);
  if (rank == 0) mine = at::tensor(a, at::kDouble);
  if (rank == 1) mine = at::tensor(b, at::kDouble);
  at::Tensor t = put(mine.to(at::kBFloat16));
  comm->all_reduce_sum(t);
  EXPECT_EQ(t[0].item<float>(), 1.0f);
  EXPECT_EQ(t[1].item<float>(), 1.0f + std::ldexp(1.0f, -6));
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(t[i].item<float>(), round_to_bf16(a[i] + b[i])) << "element " << i;
  }
}

TEST_F(MpiCommunicatorTest, Bfloat16SumOfAllRanksIsWithinRoundingBound) {
  // N values summed with one rounding (relative 2^-8) per addition: N - 1 roundings, each of a
  // partial sum no larger than sum |x_r|.
  const int64_t n = 64;
  std::vector<double> mine(n);
  for (int64_t i = 0; i < n; ++i)
    mine[i] = bf16_value(rank, i);
  at::Tensor t = put(at::tensor(mine, at::kDouble).to(at::kBFloat16));
  comm->all_reduce_sum(t);
  for (int64_t i = 0; i < n; ++i) {
    double exact = 0, magnitude = 0;
    for (int r = 0; r < size; ++r) {
      exact += bf16_value(r, i);
      magnitude += std::abs(bf16_value(r, i));
    }
    const double got = t[i].item<float>();
    EXPECT_LE(std::abs(got - exact), (size - 1) * std::ldexp(magnitude, -8)) << "element " << i;
    EXPECT_EQ(got, round_to_bf16(got)) << "result is not a bfloat16 value";
  }
}

TEST_F(MpiCommunicatorTest, ChunkedCollectivesMatchUnchunkedDefinitions) {
  if (!mpi) GTEST_SKIP() << "chunking is MPI's (int counts)";
  // Chunks of 3 elements: 10 -> 3+3+3+1 and blocks of 7 -> 3+3+1, as for counts beyond INT_MAX.
  mpi->set_max_chunk_elements(3);
  at::Tensor summed = at::arange(10, at::kDouble) + 1000.0 * (rank + 1);
  comm->all_reduce_sum(summed);
  for (int64_t i = 0; i < 10; ++i)
    EXPECT_EQ(summed[i].item<double>(), 1000 * triangle() + size * i);

  at::Tensor bf16 = at::full({10}, rank + 1, at::kBFloat16);
  comm->all_reduce_sum(bf16);
  EXPECT_TRUE(at::all(bf16.to(at::kDouble) == triangle()).item<bool>());

  const int64_t n = 7;
  at::Tensor input = at::arange(size * n, at::kFloat) + 100.0f * (rank + 1);
  at::Tensor block = at::zeros({n}, at::kFloat);
  comm->reduce_scatter_sum(input, block);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(block[i].item<float>(), 100 * triangle() + size * (rank * n + i)) << i;
  }

  at::Tensor gathered = at::full({size * n}, -1, at::kLong);
  comm->all_gather(at::arange(n, at::kLong) + 10 * rank, gathered);
  at::Tensor in_place = at::full({size * n}, -1, at::kLong);
  in_place.narrow(0, rank * n, n).copy_(at::arange(n, at::kLong) + 10 * rank);
  comm->all_gather(in_place.narrow(0, rank * n, n), in_place);
  for (int r = 0; r < size; ++r) {
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(gathered[r * n + i].item<int64_t>(), 10 * r + i);
      EXPECT_EQ(in_place[r * n + i].item<int64_t>(), 10 * r + i);
    }
  }

  at::Tensor sent = at::arange(10, at::kFloat) * (rank == size - 1 ? 1.0f : 0.0f);
  comm->broadcast(sent, size - 1);
  for (int64_t i = 0; i < 10; ++i)
    EXPECT_EQ(sent[i].item<float>(), i);

  // One call each in the statistics, however many MPI calls it took.
  EXPECT_EQ(comm->stats().calls, 6);
}

TEST_F(MpiCommunicatorTest, StatsCountBytesByTheZeroConvention) {
  at::Tensor a = at::ones({10}, on(at::kFloat));
  comm->all_reduce_sum(a);  // 2 x 10 x 4
  at::Tensor rs_in = at::ones({size * 3}, on(at::kDouble)),
             rs_out = at::zeros({3}, on(at::kDouble));
  comm->reduce_scatter_sum(rs_in, rs_out);  // N x 3 x 8
  at::Tensor ag_out = at::zeros({size * 5}, on(at::kBFloat16));
  comm->all_gather(at::ones({5}, on(at::kBFloat16)), ag_out);  // N x 5 x 2
  at::Tensor b = at::ones({4}, on(at::kLong));
  comm->broadcast(b, 0);  // 4 x 8
  const CommStats& stats = comm->stats();
  EXPECT_EQ(stats.all_reduce_bytes, 80);
  EXPECT_EQ(stats.reduce_scatter_bytes, size * 24);
  EXPECT_EQ(stats.all_gather_bytes, size * 10);
  EXPECT_EQ(stats.broadcast_bytes, 32);
  EXPECT_EQ(stats.calls, 4);
  EXPECT_EQ(stats.total_bytes(), 80 + size * 24 + size * 10 + 32);
}

TEST_F(MpiCommunicatorTest, AllGatherStringsInRankOrder) {
  // Rank 0 sends an empty string; the others a string with an embedded NUL and rank-many x's.
  const std::string mine = rank == 0 ? ""
                                     : "r" + std::to_string(rank) + std::string(1, '\0') +
                                           std::string(static_cast<size_t>(rank), 'x');
  const std::vector<std::string> all = comm->all_gather_strings(mine);
  ASSERT_EQ(all.size(), static_cast<size_t>(size));
  EXPECT_EQ(all[0], "");
  for (int r = 1; r < size; ++r) {
    EXPECT_EQ(all[r], "r" + std::to_string(r) + std::string(1, '\0') +
                          std::string(static_cast<size_t>(r), 'x'));
  }
  EXPECT_EQ(comm->stats().calls, 0);  // bookkeeping is not traffic
}

TEST_F(MpiCommunicatorTest, BucketedAllReduceOfMixedSizesAndDtypes) {
  const double w = rank + 1;
  std::vector<at::Tensor> tensors = {
      put(at::arange(3, at::kFloat) * w),                      // A 12 B
      put(at::arange(4, at::kFloat).view({2, 2}) * w),         // B 16 B
      put(at::arange(100, at::kFloat) * w),                    // C 400 B
      put(at::full({1}, 5.0f) * w),                            // D 4 B
      put((at::arange(4, at::kFloat) * w).to(at::kBFloat16)),  // E 8 B, bf16
      put((at::arange(6, at::kFloat).view({2, 3}) * w).t()),   // F 24 B, not contiguous
      put(at::arange(5, at::kFloat) * w),                      // G 20 B
  };
  // 64-byte buckets: [A B] 28 B | [C] alone (400 > 64) | [D] (E's dtype differs) | [E] | [F G].
  all_reduce_sum_bucketed(*comm, tensors, 64);
  EXPECT_EQ(comm->stats().calls, 5);
  EXPECT_EQ(comm->stats().all_reduce_bytes, 2 * (28 + 400 + 4 + 8 + 44));
  const double s = triangle();
  EXPECT_TRUE(at::equal(tensors[0].cpu(), at::arange(3, at::kFloat) * s));
  EXPECT_TRUE(at::equal(tensors[1].cpu(), at::arange(4, at::kFloat).view({2, 2}) * s));
  EXPECT_TRUE(at::equal(tensors[2].cpu(), at::arange(100, at::kFloat) * s));
  EXPECT_EQ(tensors[3].item<float>(), 5 * s);
  EXPECT_TRUE(at::equal(tensors[4].cpu().to(at::kFloat), at::arange(4, at::kFloat) * s));
  EXPECT_TRUE(at::equal(tensors[5].cpu(), (at::arange(6, at::kFloat).view({2, 3}) * s).t()));
  EXPECT_TRUE(at::equal(tensors[6].cpu(), at::arange(5, at::kFloat) * s));
}

TEST_F(MpiCommunicatorTest, RejectsNonContiguousWrongSizeAndUnsupportedTensors) {
  // Every rank throws before any message is sent, so the ranks stay in step.
  at::Tensor transposed = at::zeros({4, 3}, on(at::kFloat)).t();
  try {
    comm->all_reduce_sum(transposed);
    ADD_FAILURE() << "non-contiguous tensor accepted";
  } catch (const Error& error) {
    const std::string what = error.what();
    EXPECT_EQ(error.scope(), "dist");
    EXPECT_NE(what.find("all_reduce_sum"), std::string::npos) << what;
    EXPECT_NE(what.find("float32 [3, 4]"), std::string::npos) << what;
    EXPECT_NE(what.find("not contiguous"), std::string::npos) << what;
  }
  at::Tensor input = at::zeros({size * 3 + 1}, on(at::kFloat)),
             output = at::zeros({3}, on(at::kFloat));
  try {
    comm->reduce_scatter_sum(input, output);
    ADD_FAILURE() << "wrong input size accepted";
  } catch (const Error& error) {
    const std::string what = error.what();
    EXPECT_NE(what.find("reduce_scatter_sum"), std::string::npos) << what;
    EXPECT_NE(what.find("world_size " + std::to_string(size) + " x 3"), std::string::npos) << what;
  }
  at::Tensor small = at::zeros({size * 2}, on(at::kFloat));
  EXPECT_THROW(comm->all_gather(at::zeros({3}, on(at::kFloat)), small), Error);
  at::Tensor doubles = at::zeros({size * 3}, on(at::kDouble));
  EXPECT_THROW(comm->all_gather(at::zeros({3}, on(at::kFloat)), doubles), Error);
  if (mpi) {  // NCCL sums float16 natively
    at::Tensor half = at::zeros({4}, at::kHalf);
    try {
      comm->all_reduce_sum(half);
      ADD_FAILURE() << "float16 sum accepted";
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find("float16"), std::string::npos) << error.what();
    }
  } else {  // ... but only tensors on its GPU
    at::Tensor on_cpu = at::ones({4});
    try {
      comm->all_reduce_sum(on_cpu);
      ADD_FAILURE() << "CPU tensor accepted by NCCL";
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find("takes tensors on " + comm->device().str()),
                std::string::npos)
          << error.what();
    }
  }
  at::Tensor t = at::zeros({2}, on(at::kFloat));
  EXPECT_THROW(comm->broadcast(t, size), Error);
  EXPECT_EQ(comm->stats().calls, 0);
  // The communicator still works afterwards.
  at::Tensor ones = at::ones({2}, on(at::kFloat));
  comm->all_reduce_sum(ones);
  EXPECT_TRUE(at::all(ones == size).item<bool>());
}

TEST_F(MpiCommunicatorTest, DeviceCommunicatorChoices) {
  if (nccl) {
    EXPECT_EQ(comm->backend(), "nccl");
    EXPECT_EQ(comm->device(), at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(rank)));
    EXPECT_EQ(make_device_communicator(Backend::kAuto)->backend(), "nccl");
    return;
  }
  EXPECT_EQ(make_device_communicator(Backend::kMpi).get(), &world());
#ifndef TAILOR_WITH_NCCL
  EXPECT_EQ(make_device_communicator(Backend::kAuto).get(), &world());
#endif
  if (size > 1) {
    try {
      make_device_communicator(Backend::kSingle);
      ADD_FAILURE() << "single backend accepted with " << size << " ranks";
    } catch (const Error& error) {
      EXPECT_NE(
          std::string(error.what())
              .find("dist.backend=single but " + std::to_string(size) + " ranks were launched"),
          std::string::npos)
          << error.what();
    }
  }
}

}  // namespace
}  // namespace tailor::dist
