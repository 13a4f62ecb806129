#include "dist/collective_checks.h"

#include <cstdint>

#include <c10/core/ScalarType.h>

#include "common/error.h"
#include "common/shape_string.h"

namespace tailor::dist::detail {

std::string dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat:
      return "float32";
    case at::kDouble:
      return "float64";
    case at::kHalf:
      return "float16";
    case at::kBFloat16:
      return "bfloat16";
    case at::kLong:
      return "int64";
    case at::kInt:
      return "int32";
    case at::kShort:
      return "int16";
    case at::kChar:
      return "int8";
    case at::kByte:
      return "uint8";
    case at::kBool:
      return "bool";
    default:
      return c10::toString(dtype);
  }
}

std::string describe(const at::Tensor& tensor) {
  if (!tensor.defined()) return "undefined tensor";
  return dtype_name(tensor.scalar_type()) + " " + shape_string(tensor.sizes()) + " on " +
         tensor.device().str();
}

void check_contiguous(const std::string& collective, const std::string& role,
                      const at::Tensor& tensor) {
  if (!tensor.defined()) throw Error("dist", collective + ": " + role + " is an undefined tensor");
  if (!tensor.is_contiguous()) {
    throw Error("dist", collective + ": " + role + " (" + describe(tensor) +
                            ") is not contiguous; collectives need contiguous tensors "
                            "(call .contiguous() and copy back)");
  }
}

void check_scatter_gather(const std::string& collective, const at::Tensor& full,
                          const std::string& full_role, const at::Tensor& part,
                          const std::string& part_role, int world_size) {
  check_contiguous(collective, full_role, full);
  check_contiguous(collective, part_role, part);
  if (full.scalar_type() != part.scalar_type() || full.device() != part.device()) {
    throw Error("dist", collective + ": " + full_role + " is " + describe(full) + " but " +
                            part_role + " is " + describe(part) +
                            "; they must have the same dtype and device");
  }
  if (full.numel() != static_cast<int64_t>(world_size) * part.numel()) {
    throw Error("dist", collective + ": " + full_role + " (" + describe(full) + ") has " +
                            std::to_string(full.numel()) + " elements, expected world_size " +
                            std::to_string(world_size) + " x " + std::to_string(part.numel()) +
                            " (the " + part_role + "'s " + describe(part) + ")");
  }
}

bool overlaps(const at::Tensor& a, const at::Tensor& b) {
  const auto a_begin = reinterpret_cast<uintptr_t>(a.data_ptr());
  const auto b_begin = reinterpret_cast<uintptr_t>(b.data_ptr());
  const auto a_end = a_begin + static_cast<uintptr_t>(a.numel() * a.element_size());
  const auto b_end = b_begin + static_cast<uintptr_t>(b.numel() * b.element_size());
  return a.numel() > 0 && b.numel() > 0 && a_begin < b_end && b_begin < a_end;
}

void check_root(const std::string& collective, int root, int world_size) {
  if (root < 0 || root >= world_size) {
    throw Error("dist", collective + ": root " + std::to_string(root) + " is not a rank in [0, " +
                            std::to_string(world_size) + ")");
  }
}

namespace {
int64_t bytes_of(const at::Tensor& tensor) {
  return tensor.numel() * static_cast<int64_t>(tensor.element_size());
}
}  // namespace

void count_all_reduce(CommStats& stats, const at::Tensor& tensor) {
  stats.all_reduce_bytes += 2 * bytes_of(tensor);
  stats.calls += 1;
}
void count_reduce_scatter(CommStats& stats, const at::Tensor& input) {
  stats.reduce_scatter_bytes += bytes_of(input);
  stats.calls += 1;
}
void count_all_gather(CommStats& stats, const at::Tensor& output) {
  stats.all_gather_bytes += bytes_of(output);
  stats.calls += 1;
}
void count_broadcast(CommStats& stats, const at::Tensor& tensor) {
  stats.broadcast_bytes += bytes_of(tensor);
  stats.calls += 1;
}

}  // namespace tailor::dist::detail
