// Bucketed all-reduce (communicator.h): consecutive tensors of one dtype and device are packed
// into a flat buffer of at most bucket_bytes, summed in one collective and copied back. Buckets
// follow the order of `tensors`, so every rank (same list, same shapes) forms the same buckets.
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "common/error.h"
#include "dist/communicator.h"

namespace tailor::dist {
namespace {

int64_t bytes_of(const at::Tensor& tensor) {
  return tensor.numel() * static_cast<int64_t>(tensor.element_size());
}

// Sums tensors[begin, end) across ranks in one collective.
void reduce_bucket(Communicator& comm, const std::vector<at::Tensor>& tensors, size_t begin,
                   size_t end) {
  if (end - begin == 1 && tensors[begin].is_contiguous()) {
    at::Tensor single = tensors[begin];  // a handle: reduces the caller's storage in place
    comm.all_reduce_sum(single);
    return;
  }
  int64_t total = 0;
  for (size_t i = begin; i < end; ++i)
    total += tensors[i].numel();
  at::Tensor flat = at::empty({total}, tensors[begin].options());
  int64_t offset = 0;
  for (size_t i = begin; i < end; ++i) {
    const int64_t n = tensors[i].numel();
    flat.narrow(0, offset, n).view(tensors[i].sizes()).copy_(tensors[i]);
    offset += n;
  }
  comm.all_reduce_sum(flat);
  offset = 0;
  for (size_t i = begin; i < end; ++i) {
    const int64_t n = tensors[i].numel();
    at::Tensor target = tensors[i];
    target.copy_(flat.narrow(0, offset, n).view(tensors[i].sizes()));
    offset += n;
  }
}

}  // namespace

void all_reduce_sum_bucketed(Communicator& comm, const std::vector<at::Tensor>& tensors,
                             int64_t bucket_bytes) {
  if (bucket_bytes < 1) {
    throw Error("dist", "all_reduce_sum_bucketed: bucket_bytes must be positive, got " +
                            std::to_string(bucket_bytes));
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!tensors[i].defined()) {
      throw Error("dist", "all_reduce_sum_bucketed: tensor " + std::to_string(i) +
                              " of the list is undefined");
    }
  }
  size_t begin = 0;
  while (begin < tensors.size()) {
    // Grow the bucket while the next tensor has the same dtype and device and still fits.
    size_t end = begin + 1;
    int64_t bytes = bytes_of(tensors[begin]);
    while (end < tensors.size() && tensors[end].scalar_type() == tensors[begin].scalar_type() &&
           tensors[end].device() == tensors[begin].device() &&
           bytes + bytes_of(tensors[end]) <= bucket_bytes) {
      bytes += bytes_of(tensors[end]);
      ++end;
    }
    reduce_bucket(comm, tensors, begin, end);
    begin = end;
  }
}

}  // namespace tailor::dist
