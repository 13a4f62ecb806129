// The single-process backend, bucketing, the MPI chunk plan and launch detection (no MPI needed:
// this binary runs without mpirun, so world() is the single-process backend).
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/error.h"
#include "dist/communicator.h"
#include "dist/mpi_communicator.h"
#include "dist/runtime.h"

namespace tailor::dist {
namespace {

TEST(SingleCommunicator, IsRankZeroOfOne) {
  auto comm = make_single_process_communicator();
  EXPECT_EQ(comm->backend(), "single");
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->world_size(), 1);
  EXPECT_EQ(comm->local_rank(), 0);
  EXPECT_EQ(comm->local_size(), 1);
  EXPECT_EQ(comm->device(), at::Device(at::kCPU));
  EXPECT_EQ(comm->all_gather_strings("abc"), std::vector<std::string>{"abc"});
  comm->barrier();
}

TEST(SingleCommunicator, CollectivesAreIdentityOrCopyAndAreCounted) {
  auto comm = make_single_process_communicator();
  at::Tensor t = at::arange(6, at::kFloat).view({2, 3});
  comm->all_reduce_sum(t);
  EXPECT_TRUE(at::equal(t, at::arange(6, at::kFloat).view({2, 3})));

  at::Tensor out = at::zeros({6}, at::kDouble);
  comm->reduce_scatter_sum(at::arange(6, at::kDouble).view({3, 2}), out);
  EXPECT_TRUE(at::equal(out, at::arange(6, at::kDouble)));

  at::Tensor gathered = at::zeros({2, 2}, at::kLong);
  comm->all_gather(at::arange(4, at::kLong), gathered);
  EXPECT_TRUE(at::equal(gathered, at::arange(4, at::kLong).view({2, 2})));

  at::Tensor b = at::full({3}, 7, at::kBFloat16);
  comm->broadcast(b, 0);
  EXPECT_TRUE(at::all(b.to(at::kFloat) == 7).item<bool>());

  // Bytes as communicator.h defines them: 2 x 6 x 4, 6 x 8, 4 x 8, 3 x 2.
  EXPECT_EQ(comm->stats().all_reduce_bytes, 48);
  EXPECT_EQ(comm->stats().reduce_scatter_bytes, 48);
  EXPECT_EQ(comm->stats().all_gather_bytes, 32);
  EXPECT_EQ(comm->stats().broadcast_bytes, 6);
  EXPECT_EQ(comm->stats().calls, 4);
  EXPECT_EQ(comm->stats().total_bytes(), 134);
}

TEST(SingleCommunicator, RejectsWhatTheOtherBackendsReject) {
  auto comm = make_single_process_communicator();
  at::Tensor transposed = at::zeros({4, 3}).t();
  try {
    comm->all_reduce_sum(transposed);
    ADD_FAILURE() << "non-contiguous tensor accepted";
  } catch (const Error& error) {
    EXPECT_EQ(error.scope(), "dist");
    EXPECT_NE(std::string(error.what())
                  .find("all_reduce_sum: tensor (float32 [3, 4] on cpu) is "
                        "not contiguous"),
              std::string::npos)
        << error.what();
  }
  at::Tensor short_output = at::zeros({5});
  EXPECT_THROW(comm->reduce_scatter_sum(at::zeros({6}), short_output), Error);
  at::Tensor other_dtype = at::zeros({6}, at::kDouble);
  EXPECT_THROW(comm->all_gather(at::zeros({6}), other_dtype), Error);
  at::Tensor t = at::zeros({2});
  EXPECT_THROW(comm->broadcast(t, 1), Error);
  EXPECT_EQ(comm->stats().calls, 0);
}

// Doubles what it is given, as a sum over two identical ranks would, and records each call's
// element count: checks bucket packing and unpacking without MPI.
class TwoIdenticalRanks final : public Communicator {
 public:
  std::vector<int64_t> call_numels;
  std::string backend() const override { return "test"; }
  int rank() const override { return 0; }
  int world_size() const override { return 2; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 2; }
  void all_reduce_sum(at::Tensor& tensor) override {
    ASSERT_TRUE(tensor.is_contiguous());
    call_numels.push_back(tensor.numel());
    tensor.mul_(2);
  }
  void reduce_scatter_sum(const at::Tensor&, at::Tensor&) override { FAIL(); }
  void all_gather(const at::Tensor&, at::Tensor&) override { FAIL(); }
  void broadcast(at::Tensor&, int) override { FAIL(); }
  void barrier() override {}
  std::vector<std::string> all_gather_strings(const std::string& v) override { return {v, v}; }
};

TEST(BucketedAllReduce, PacksConsecutiveSameDtypeTensorsUpToTheBucketSize) {
  TwoIdenticalRanks comm;
  std::vector<at::Tensor> tensors = {
      at::arange(3, at::kFloat),                   // 12 B
      at::arange(4, at::kFloat).view({2, 2}),      // 16 B
      at::arange(100, at::kFloat),                 // 400 B: alone
      at::full({1}, 5.0f),                         // 4 B
      at::arange(4, at::kDouble),                  // 32 B, other dtype
      at::arange(6, at::kFloat).view({2, 3}).t(),  // 24 B, not contiguous
      at::arange(5, at::kFloat),                   // 20 B
  };
  all_reduce_sum_bucketed(comm, tensors, 64);
  // [12+16] [400] [4] [32] [24+20]
  EXPECT_EQ(comm.call_numels, (std::vector<int64_t>{7, 100, 1, 4, 11}));
  EXPECT_TRUE(at::equal(tensors[0], at::arange(3, at::kFloat) * 2));
  EXPECT_TRUE(at::equal(tensors[1], at::arange(4, at::kFloat).view({2, 2}) * 2));
  EXPECT_TRUE(at::equal(tensors[2], at::arange(100, at::kFloat) * 2));
  EXPECT_EQ(tensors[3].item<float>(), 10.0f);
  EXPECT_TRUE(at::equal(tensors[4], at::arange(4, at::kDouble) * 2));
  EXPECT_TRUE(at::equal(tensors[5], at::arange(6, at::kFloat).view({2, 3}).t() * 2));
  EXPECT_TRUE(at::equal(tensors[6], at::arange(5, at::kFloat) * 2));
}

TEST(BucketedAllReduce, OneBucketWhenEverythingFitsAndErrorsOnBadBucketSize) {
  TwoIdenticalRanks comm;
  std::vector<at::Tensor> tensors = {at::ones({3}), at::ones({2, 2}), at::ones({1})};
  all_reduce_sum_bucketed(comm, tensors, 1 << 20);
  EXPECT_EQ(comm.call_numels, (std::vector<int64_t>{8}));
  for (const at::Tensor& t : tensors)
    EXPECT_TRUE(at::all(t == 2).item<bool>());
  EXPECT_THROW(all_reduce_sum_bucketed(comm, tensors, 0), Error);
  all_reduce_sum_bucketed(comm, {}, 64);  // nothing to do
  EXPECT_EQ(comm.call_numels.size(), 1u);
}

TEST(MpiChunkPlan, SplitsCountsIntoPiecesOfAtMostTheLimit) {
  using Pieces = std::vector<std::pair<int64_t, int64_t>>;
  EXPECT_EQ(detail::chunk_ranges(10, 3), (Pieces{{0, 3}, {3, 3}, {6, 3}, {9, 1}}));
  EXPECT_EQ(detail::chunk_ranges(6, 3), (Pieces{{0, 3}, {3, 3}}));
  EXPECT_EQ(detail::chunk_ranges(2, 3), (Pieces{{0, 2}}));
  EXPECT_TRUE(detail::chunk_ranges(0, 3).empty());
  // 5e9 elements (a 7B model's flat buffer) at MPI's INT_MAX: 3 calls.
  const int64_t int_max = 2147483647;
  EXPECT_EQ(detail::chunk_ranges(5000000000LL, int_max),
            (Pieces{{0, int_max}, {int_max, int_max}, {2 * int_max, 5000000000LL - 2 * int_max}}));
  EXPECT_THROW(detail::chunk_ranges(5, 0), Error);
}

// Sets launcher variables for one test and restores the environment afterwards.
class LaunchEnvironment : public ::testing::Test {
 protected:
  const std::vector<std::string> names = {"OMPI_COMM_WORLD_SIZE",
                                          "OMPI_COMM_WORLD_RANK",
                                          "OMPI_COMM_WORLD_LOCAL_RANK",
                                          "PMIX_RANK",
                                          "PMI_SIZE",
                                          "PMI_RANK",
                                          "MPI_LOCALRANKID",
                                          "SLURM_STEP_ID",
                                          "SLURM_NTASKS",
                                          "SLURM_PROCID",
                                          "SLURM_LOCALID"};
  std::map<std::string, std::optional<std::string>> saved;
  void SetUp() override {
    for (const std::string& name : names) {
      const char* value = std::getenv(name.c_str());
      saved[name] = value ? std::optional<std::string>(value) : std::nullopt;
      unsetenv(name.c_str());
    }
  }
  void TearDown() override {
    for (const auto& [name, value] : saved) {
      if (value) {
        setenv(name.c_str(), value->c_str(), 1);
      } else {
        unsetenv(name.c_str());
      }
    }
  }
  void set(const char* name, const char* value) { setenv(name, value, 1); }
};

TEST_F(LaunchEnvironment, NoLauncherMeansOneProcess) {
  const LaunchInfo info = detect_launch();
  EXPECT_FALSE(info.under_launcher);
  EXPECT_EQ(info.world_size, 1);
  EXPECT_EQ(info.rank, 0);
  EXPECT_EQ(info.local_rank, 0);
  EXPECT_EQ(info.launcher, "");
}

TEST_F(LaunchEnvironment, OpenMpiVariables) {
  set("OMPI_COMM_WORLD_SIZE", "8");
  set("OMPI_COMM_WORLD_RANK", "5");
  set("OMPI_COMM_WORLD_LOCAL_RANK", "1");
  set("PMIX_RANK", "5");  // mpirun also exports this; the OMPI names win
  const LaunchInfo info = detect_launch();
  EXPECT_TRUE(info.under_launcher);
  EXPECT_EQ(info.launcher, "mpirun");
  EXPECT_EQ(info.world_size, 8);
  EXPECT_EQ(info.rank, 5);
  EXPECT_EQ(info.local_rank, 1);
}

TEST_F(LaunchEnvironment, MpirunWithOneProcessIsStillALaunch) {
  set("OMPI_COMM_WORLD_SIZE", "1");
  set("OMPI_COMM_WORLD_RANK", "0");
  const LaunchInfo info = detect_launch();
  EXPECT_TRUE(info.under_launcher);
  EXPECT_EQ(info.world_size, 1);
}

TEST_F(LaunchEnvironment, PmiVariables) {
  set("PMI_SIZE", "4");
  set("PMI_RANK", "3");
  set("MPI_LOCALRANKID", "1");
  const LaunchInfo info = detect_launch();
  EXPECT_TRUE(info.under_launcher);
  EXPECT_EQ(info.launcher, "pmi");
  EXPECT_EQ(info.world_size, 4);
  EXPECT_EQ(info.rank, 3);
  EXPECT_EQ(info.local_rank, 1);
}

TEST_F(LaunchEnvironment, PmixRankTakesTheSizeFromSlurmInsideAStep) {
  set("PMIX_RANK", "2");
  set("SLURM_STEP_ID", "0");
  set("SLURM_NTASKS", "6");
  set("SLURM_LOCALID", "2");
  const LaunchInfo info = detect_launch();
  EXPECT_EQ(info.launcher, "pmix");
  EXPECT_EQ(info.world_size, 6);
  EXPECT_EQ(info.rank, 2);
  EXPECT_EQ(info.local_rank, 2);
}

TEST_F(LaunchEnvironment, SlurmCountsOnlyInsideSrun) {
  // An sbatch script itself (no job step) has SLURM_NTASKS but is one process.
  set("SLURM_NTASKS", "4");
  set("SLURM_PROCID", "0");
  EXPECT_FALSE(detect_launch().under_launcher);
  set("SLURM_STEP_ID", "3");
  set("SLURM_PROCID", "2");
  set("SLURM_LOCALID", "0");
  const LaunchInfo info = detect_launch();
  EXPECT_TRUE(info.under_launcher);
  EXPECT_EQ(info.launcher, "srun");
  EXPECT_EQ(info.world_size, 4);
  EXPECT_EQ(info.rank, 2);
  EXPECT_EQ(info.local_rank, 0);
}

TEST_F(LaunchEnvironment, BrokenVariablesAreErrors) {
  set("OMPI_COMM_WORLD_SIZE", "four");
  EXPECT_THROW(detect_launch(), Error);
  set("OMPI_COMM_WORLD_SIZE", "4");
  set("OMPI_COMM_WORLD_RANK", "4");
  try {
    detect_launch();
    ADD_FAILURE() << "rank 4 of 4 accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("rank 4 of world size 4"), std::string::npos)
        << error.what();
  }
}

TEST(DeviceCommunicator, WithoutALauncherTheWorldIsOneProcess) {
  ASSERT_FALSE(mpi_active());
  EXPECT_EQ(world().backend(), "single");
  EXPECT_EQ(world().world_size(), 1);
  EXPECT_EQ(make_device_communicator(Backend::kMpi).get(), &world());
  auto single = make_device_communicator(Backend::kSingle);
  EXPECT_EQ(single->backend(), "single");
  EXPECT_NE(single.get(), &world());
  // Unknown names never get this far: the recipe schema checks dist.backend against this table.
  EXPECT_EQ(enum_name_list(backend_names()),
            (std::vector<std::string>{"auto", "mpi", "nccl", "single"}));
  EXPECT_FALSE(enum_from_name(backend_names(), "gloo"));
#ifndef TAILOR_WITH_NCCL
  EXPECT_EQ(make_device_communicator(Backend::kAuto).get(), &world());
  try {
    make_device_communicator(Backend::kNccl);
    ADD_FAILURE() << "nccl accepted in a build without it";
  } catch (const Error& error) {
    EXPECT_EQ(error.scope(), "dist");
    EXPECT_NE(std::string(error.what()).find("-DTAILOR_WITH_CUDA=ON"), std::string::npos);
  }
#endif
}

TEST(Runtime, AbortAllPrintsRankAndExitsWithTheCode) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(abort_all("checkpoint missing", 3), ::testing::ExitedWithCode(3),
              "\\[rank 0/1\\] error: checkpoint missing");
}

// Constructs two Runtimes; exits 7 when the second throws (it must), 0 otherwise.
void construct_two_runtimes() {
  int argc = 1;
  char name[] = "tailor_tests";
  char* args[] = {name, nullptr};
  char** argv = args;
  Runtime first(&argc, &argv);
  try {
    Runtime second(&argc, &argv);
  } catch (const Error& error) {
    std::fprintf(stderr, "%s\n", error.what());
    std::exit(7);
  }
  std::exit(0);
}

TEST(Runtime, ASecondRuntimeIsAnError) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // In a child process, so this process never has a Runtime.
  EXPECT_EXIT(construct_two_runtimes(), ::testing::ExitedWithCode(7), "a second dist::Runtime");
}

}  // namespace
}  // namespace tailor::dist
