// The NCCL backend: collectives on CUDA tensors, on the current CUDA stream of this rank's GPU.
// Compiled only when CMake found CUDA LibTorch and NCCL (TAILOR_WITH_NCCL); reached through
// dist::make_device_communicator("nccl" or "auto"), which explains the absence otherwise.
#pragma once

#include <memory>

#include "dist/communicator.h"

namespace tailor::dist {

#ifdef TAILOR_WITH_NCCL
// Collective over `bootstrap` (world(): MPI, or single for one process), which must outlive the
// result: picks GPU bootstrap.local_rank() (error when this host has fewer GPUs than ranks), rank
// 0 makes the ncclUniqueId, it reaches every rank over bootstrap.all_gather_strings, and every
// rank calls ncclCommInitRank. barrier() and all_gather_strings() go through `bootstrap`.
// Sums float32, float64, float16, bfloat16, int32, int64 (NCCL accumulates in the tensor's type).
std::shared_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap);
#endif

}  // namespace tailor::dist
