// The one interface through which ranks talk. Three backends implement it:
//   single (world size 1; every collective is the identity; needs no MPI at run time),
//   mpi    (CPU tensors: float32, float64, int64, bfloat16 via a user-defined MPI sum),
//   nccl   (CUDA tensors; bootstrapped over MPI; built only with TAILOR_WITH_CUDA).
// Nothing outside dist/ includes MPI or NCCL headers.
//
// Collectives are blocking and must be called by every rank in the same order with the same
// shapes and dtypes. Tensors must be contiguous. Sums are elementwise across ranks.
//
// Traffic accounting (CommStats) follows the ZeRO paper's convention (Rajbhandari et al. 2019,
// sec. 7): an all-reduce of Ψ elements moves 2Ψ (a reduce-scatter plus an all-gather), a
// reduce-scatter moves the numel of its full input, an all-gather the numel of its full output,
// a broadcast its numel. Counters are in bytes (elements x element size).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

namespace tailor::dist {

struct CommStats {
  int64_t all_reduce_bytes = 0;
  int64_t reduce_scatter_bytes = 0;
  int64_t all_gather_bytes = 0;
  int64_t broadcast_bytes = 0;
  int64_t calls = 0;
  int64_t total_bytes() const {
    return all_reduce_bytes + reduce_scatter_bytes + all_gather_bytes + broadcast_bytes;
  }
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual std::string backend() const = 0;  // "single", "mpi", "nccl"
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Rank among the processes on this host (chooses the GPU), and how many there are.
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;
  // Where this backend's collectives expect tensors: CPU for single and mpi (single also takes
  // tensors on any device), cuda:<local GPU> for nccl.
  virtual at::Device device() const { return at::Device(at::kCPU); }

  // tensor <- sum over ranks of tensor, in place.
  virtual void all_reduce_sum(at::Tensor& tensor) = 0;
  // input has world_size * n elements (any shape, contiguous), output n elements:
  // output[i] = sum over ranks r of input_r[rank() * n + i].
  virtual void reduce_scatter_sum(const at::Tensor& input, at::Tensor& output) = 0;
  // input n elements, output world_size * n: rank r's input lands at output[r * n, (r + 1) * n).
  virtual void all_gather(const at::Tensor& input, at::Tensor& output) = 0;
  // tensor <- root's tensor.
  virtual void broadcast(at::Tensor& tensor, int root) = 0;
  virtual void barrier() = 0;

  // Host-side bookkeeping over the bootstrap channel (MPI, or nothing for world size 1); not
  // counted in stats(). Every rank gets every rank's string, in rank order.
  virtual std::vector<std::string> all_gather_strings(const std::string& value) = 0;

  CommStats& stats() { return stats_; }
  const CommStats& stats() const { return stats_; }

 protected:
  CommStats stats_;
};

// World size 1. Collectives copy (reduce_scatter/all_gather) or do nothing, and are counted.
std::unique_ptr<Communicator> make_single_process_communicator();

// Sums a list of tensors (any shapes; same dtype and device within a bucket) across ranks in
// buckets of at most `bucket_bytes` (one tensor larger than that is its own bucket): each bucket
// is packed into one contiguous buffer, all-reduced in one call and unpacked, so many small
// tensors do not each pay a call's latency.
void all_reduce_sum_bucketed(Communicator& comm, const std::vector<at::Tensor>& tensors,
                             int64_t bucket_bytes);

}  // namespace tailor::dist
