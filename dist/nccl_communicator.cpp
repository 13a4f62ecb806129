// NCCL backend (built only with TAILOR_WITH_NCCL; in the CPU build this file is empty).
//
// UNVERIFIED: written against the NCCL 2.x API (nccl.h: ncclGetUniqueId, ncclCommInitRank,
// ncclAllReduce, ncclReduceScatter, ncclAllGather, ncclBroadcast, ncclCommDestroy,
// ncclGetErrorString; ncclBfloat16 needs NCCL >= 2.10) and LibTorch's CUDA headers
// (c10::cuda::device_count / set_device, at::cuda::getCurrentCUDAStream). It was only
// syntax-checked (g++ -fsyntax-only against LibTorch 1.13's CUDA headers and NCCL 2.28's nccl.h),
// never linked or run: the machine it was written on has no GPU. The first CUDA build must run
// tests/mpi under mpirun on GPUs before it is trusted.
//
// Bootstrap over MPI (NCCL's documented pattern: one rank makes the unique id, MPI broadcasts it,
// every rank calls ncclCommInitRank; docs/distributed.md): every rank first reports whether it can
// take part (a GPU for its local rank), so a rank without one makes every rank throw instead of
// leaving the others waiting; then rank 0's ncclUniqueId reaches all ranks over the bootstrap
// communicator (MPI_Allgatherv underneath) and each rank calls ncclCommInitRank on GPU
// local_rank. Collectives run on the current CUDA stream of that GPU and return without waiting
// for it, as every CUDA op does; barrier() waits for the stream.
#ifdef TAILOR_WITH_NCCL

#include "dist/nccl_communicator.h"

#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <nccl.h>

#include "common/error.h"
#include "dist/collective_checks.h"
#include "dist/collective_watchdog.h"

namespace tailor::dist {
namespace {

void check_nccl(ncclResult_t result, const std::string& what) {
  if (result == ncclSuccess) return;
  throw Error("dist", what + " failed: " + ncclGetErrorString(result));
}

ncclDataType_t nccl_type(const std::string& collective, const at::Tensor& tensor, bool sum) {
  switch (tensor.scalar_type()) {
    case at::kFloat:
      return ncclFloat32;
    case at::kDouble:
      return ncclFloat64;
    case at::kHalf:
      return ncclFloat16;
    case at::kBFloat16:
      return ncclBfloat16;
    case at::kLong:
      return ncclInt64;
    case at::kInt:
      return ncclInt32;
    case at::kChar:
      return ncclInt8;
    case at::kByte:
      return ncclUint8;
    case at::kBool:
      if (!sum) return ncclUint8;
      break;
    default:
      break;
  }
  throw Error("dist", collective + ": " + detail::describe(tensor) +
                          ": the nccl backend handles float32, float64, float16, bfloat16 and "
                          "integer tensors only");
}

std::string host_name() {
  char name[256] = {0};
  if (gethostname(name, sizeof(name) - 1) != 0) return "<unknown host>";
  return name;
}

class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(Communicator& bootstrap)
      : bootstrap_(bootstrap),
        rank_(bootstrap.rank()),
        world_size_(bootstrap.world_size()),
        local_rank_(bootstrap.local_rank()),
        local_size_(bootstrap.local_size()) {
    // Phase 1: can every rank have a GPU? Any problem is reported on every rank.
    std::string problem;
    const int gpus = static_cast<int>(c10::cuda::device_count());
    if (gpus == 0) {
      problem = "rank " + std::to_string(rank_) + " on host " + host_name() +
                " sees no CUDA GPU; dist.backend=nccl needs one GPU per rank";
    } else if (local_rank_ >= gpus) {
      problem = "rank " + std::to_string(rank_) + " is process " + std::to_string(local_rank_ + 1) +
                " of " + std::to_string(local_size_) + " on host " + host_name() +
                " but it has only " + std::to_string(gpus) +
                " GPUs; NCCL needs one GPU per rank (launch at most " + std::to_string(gpus) +
                " ranks per host)";
    }
    std::string problems;
    for (const std::string& reported : bootstrap_.all_gather_strings(problem)) {
      if (!reported.empty()) problems += (problems.empty() ? "" : "; ") + reported;
    }
    if (!problems.empty()) throw Error("dist", "cannot start NCCL: " + problems);

    device_ = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(local_rank_));
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(local_rank_));

    // Phase 2: rank 0's unique id to everyone (an empty string from rank 0 means it failed).
    ncclUniqueId id;
    std::memset(&id, 0, sizeof(id));
    std::string mine;
    std::string rank0_error;
    if (rank_ == 0) {
      const ncclResult_t result = ncclGetUniqueId(&id);
      if (result == ncclSuccess) {
        mine.assign(reinterpret_cast<const char*>(&id), sizeof(id));
      } else {
        rank0_error = std::string("ncclGetUniqueId failed: ") + ncclGetErrorString(result);
      }
    }
    const std::vector<std::string> ids = bootstrap_.all_gather_strings(mine);
    if (ids.at(0).size() != sizeof(id)) {
      throw Error("dist", "cannot start NCCL: rank 0 could not create the NCCL unique id" +
                              (rank0_error.empty() ? std::string() : " (" + rank0_error + ")"));
    }
    std::memcpy(&id, ids[0].data(), sizeof(id));
    check_nccl(ncclCommInitRank(&comm_, world_size_, id, rank_),
               "ncclCommInitRank (rank " + std::to_string(rank_) + " of " +
                   std::to_string(world_size_) + ", GPU " + std::to_string(local_rank_) + ")");
  }

  ~NcclCommunicator() override {
    if (comm_ != nullptr) ncclCommDestroy(comm_);
  }

  std::string backend() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  at::Device device() const override { return device_; }

  void all_reduce_sum(at::Tensor& tensor) override {
    const std::string name = "all_reduce_sum";
    check_device(name, "tensor", tensor);
    const ncclDataType_t type = nccl_type(name, tensor, true);
    detail::count_all_reduce(stats_, tensor);
    c10::cuda::CUDAGuard guard(device_);
    check_nccl(ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(),
                             static_cast<size_t>(tensor.numel()), type, ncclSum, comm_, stream()),
               "ncclAllReduce (" + name + " of " + detail::describe(tensor) + ")");
  }

  void reduce_scatter_sum(const at::Tensor& input, at::Tensor& output) override {
    const std::string name = "reduce_scatter_sum";
    check_device(name, "input", input);
    check_device(name, "output", output);
    detail::check_scatter_gather(name, input, "input", output, "output", world_size_);
    const ncclDataType_t type = nccl_type(name, input, true);
    detail::count_reduce_scatter(stats_, input);
    c10::cuda::CUDAGuard guard(device_);
    const int64_t n = output.numel();
    // NCCL's in-place form is output == this rank's block of the input; other overlaps go
    // through a temporary.
    const bool in_place = output.data_ptr() ==
                          static_cast<char*>(input.data_ptr()) + rank_ * n * input.element_size();
    at::Tensor target =
        !in_place && detail::overlaps(input, output) ? at::empty_like(output) : output;
    check_nccl(ncclReduceScatter(input.data_ptr(), target.data_ptr(), static_cast<size_t>(n), type,
                                 ncclSum, comm_, stream()),
               "ncclReduceScatter (" + name + " of " + detail::describe(input) + ")");
    if (!target.is_same(output)) output.copy_(target);
  }

  void all_gather(const at::Tensor& input, at::Tensor& output) override {
    const std::string name = "all_gather";
    check_device(name, "input", input);
    check_device(name, "output", output);
    detail::check_scatter_gather(name, output, "output", input, "input", world_size_);
    const ncclDataType_t type = nccl_type(name, input, false);
    detail::count_all_gather(stats_, output);
    c10::cuda::CUDAGuard guard(device_);
    const int64_t n = input.numel();
    const bool in_place = input.data_ptr() ==
                          static_cast<char*>(output.data_ptr()) + rank_ * n * input.element_size();
    at::Tensor source = !in_place && detail::overlaps(input, output) ? input.clone() : input;
    check_nccl(ncclAllGather(source.data_ptr(), output.data_ptr(), static_cast<size_t>(n), type,
                             comm_, stream()),
               "ncclAllGather (" + name + " into " + detail::describe(output) + ")");
  }

  void broadcast(at::Tensor& tensor, int root) override {
    const std::string name = "broadcast";
    detail::check_root(name, root, world_size_);
    check_device(name, "tensor", tensor);
    const ncclDataType_t type = nccl_type(name, tensor, false);
    detail::count_broadcast(stats_, tensor);
    c10::cuda::CUDAGuard guard(device_);
    check_nccl(ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(),
                             static_cast<size_t>(tensor.numel()), type, root, comm_, stream()),
               "ncclBroadcast (" + name + " of " + detail::describe(tensor) + ")");
  }

  void barrier() override {
    c10::cuda::CUDAGuard guard(device_);
    {
      // NCCL calls only enqueue; a rank that never joins shows as this wait for the stream.
      const CollectiveWatch watch("barrier", "waiting for the queued NCCL collectives");
      at::cuda::getCurrentCUDAStream(device_.index()).synchronize();
    }
    bootstrap_.barrier();
  }

  std::vector<std::string> all_gather_strings(const std::string& value) override {
    return bootstrap_.all_gather_strings(value);
  }

 private:
  cudaStream_t stream() const { return at::cuda::getCurrentCUDAStream(device_.index()).stream(); }

  void check_device(const std::string& collective, const std::string& role,
                    const at::Tensor& tensor) const {
    detail::check_contiguous(collective, role, tensor);
    if (tensor.device() != device_) {
      throw Error("dist", collective + ": " + role + " is " + detail::describe(tensor) +
                              "; the nccl backend of rank " + std::to_string(rank_) +
                              " takes tensors on " + device_.str());
    }
  }

  Communicator& bootstrap_;
  int rank_;
  int world_size_;
  int local_rank_;
  int local_size_;
  at::Device device_{at::kCUDA, 0};
  ncclComm_t comm_ = nullptr;
};

}  // namespace

std::shared_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap) {
  return std::make_shared<NcclCommunicator>(bootstrap);
}

}  // namespace tailor::dist

#endif  // TAILOR_WITH_NCCL
