// The MPI backend: collectives on CPU tensors over a duplicate of MPI_COMM_WORLD.
//
// Sums: float32, float64, int64 (MPI_SUM) and bfloat16, which MPI has no type for: it travels as
// MPI_UINT16_T and is summed by a user-defined commutative MPI_Op that widens to float, adds and
// rounds to nearest even, exactly as at::BFloat16 arithmetic does (one rounding per addition).
// Broadcast and all-gather move any of those plus float16, int32, int16, int8, uint8 and bool.
//
// MPI counts are ints, so a tensor of more than max_chunk_elements() (INT_MAX) elements is moved
// in several calls: all-reduce and broadcast in consecutive pieces; reduce-scatter and all-gather
// by splitting each rank's block into pieces [c, c + len) and moving that piece of every block
// per call. The MPI header is included only by the .cpp (nothing outside dist/ sees MPI).
//
// Every collective runs inside a CollectiveWatch (dist/collective_watchdog.h), so one that waits
// longer than the collective timeout for the other ranks ends the job with a message naming it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dist/communicator.h"

namespace tailor::dist {

class MpiCommunicator final : public Communicator {
 public:
  // Collective over MPI_COMM_WORLD (every rank constructs one, in the same order): duplicates it,
  // so tailor's messages never match another library's, and finds the ranks on this host with
  // MPI_Comm_split_type(MPI_COMM_TYPE_SHARED). MPI must be initialized (dist::Runtime does it).
  MpiCommunicator();
  // Frees the duplicate communicator and the bf16 MPI_Op; must run before MPI_Finalize.
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  std::string backend() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }

  void all_reduce_sum(at::Tensor& tensor) override;
  // The output may alias its own block of the input (output = input.narrow(0, rank * n, n)).
  void reduce_scatter_sum(const at::Tensor& input, at::Tensor& output) override;
  // The input may be this rank's block of the output (MPI_IN_PLACE, no copy).
  void all_gather(const at::Tensor& input, at::Tensor& output) override;
  void broadcast(at::Tensor& tensor, int root) override;
  void barrier() override;
  std::vector<std::string> all_gather_strings(const std::string& value) override;

  // Largest element count handed to one MPI call; INT_MAX by default. Tests lower it so that
  // the splitting of counts beyond INT_MAX is exercised on small tensors. Must be >= 1 and
  // the same on every rank.
  void set_max_chunk_elements(int64_t elements);
  int64_t max_chunk_elements() const { return max_chunk_elements_; }

 private:
  struct State;  // MPI handles, kept out of this header
  std::unique_ptr<State> state_;
  int rank_ = 0;
  int world_size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  int64_t max_chunk_elements_;
};

namespace detail {
// Consecutive pieces {offset, length} of at most max_chunk elements covering [0, count);
// empty when count is 0.
std::vector<std::pair<int64_t, int64_t>> chunk_ranges(int64_t count, int64_t max_chunk);
}  // namespace detail

}  // namespace tailor::dist
