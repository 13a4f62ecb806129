// Argument checks and traffic accounting shared by every Communicator backend, so that the
// single, MPI and NCCL backends reject the same misuse with the same message and count bytes by
// the same convention (communicator.h: ZeRO paper sec. 7).
#pragma once

#include <string>

#include <ATen/Tensor.h>

#include "dist/communicator.h"

namespace tailor::dist::detail {

// "float32", "bfloat16", ... (the names recipes use), else c10's name.
std::string dtype_name(at::ScalarType dtype);

// "float32 [2, 3] on cpu" for error messages.
std::string describe(const at::Tensor& tensor);

// Throws Error("dist", "<collective>: <role> ...") unless `tensor` is defined and contiguous.
void check_contiguous(const std::string& collective, const std::string& role,
                      const at::Tensor& tensor);

// reduce_scatter_sum / all_gather: `full` has world_size x the elements of `part`, both have the
// same dtype and device. `full_role`/`part_role` name them ("input"/"output").
void check_scatter_gather(const std::string& collective, const at::Tensor& full,
                          const std::string& full_role, const at::Tensor& part,
                          const std::string& part_role, int world_size);

// Whether the two tensors' bytes intersect: a collective that reads one while writing the other
// then needs a copy. Empty tensors overlap nothing.
bool overlaps(const at::Tensor& a, const at::Tensor& b);

// Throws unless 0 <= root < world_size.
void check_root(const std::string& collective, int root, int world_size);

// Accounting per communicator.h: all-reduce 2x, reduce-scatter its full input, all-gather its
// full output, broadcast its numel; each in bytes, one call each.
void count_all_reduce(CommStats& stats, const at::Tensor& tensor);
void count_reduce_scatter(CommStats& stats, const at::Tensor& input);
void count_all_gather(CommStats& stats, const at::Tensor& output);
void count_broadcast(CommStats& stats, const at::Tensor& tensor);

}  // namespace tailor::dist::detail
