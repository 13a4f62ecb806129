// What every data-parallel stage asks of its ranks besides training: that they run the same
// recipe, and sums of per-rank counts.
#pragma once

#include <string>

#include <ATen/Tensor.h>

namespace tailor {
namespace dist {
class Communicator;
}

// Throws Error("dist", ...) naming the first rank whose resolved recipe hashes differently from
// rank 0's: every rank must run the same recipe file and overrides.
void check_ranks_agree(dist::Communicator& comm, const std::string& recipe_hash);

// `values` summed over the ranks (through the communicator's device) as a new CPU tensor;
// `values` itself at world size 1. `values` is left as it was.
at::Tensor sum_over_ranks(dist::Communicator& comm, const at::Tensor& values);

}  // namespace tailor
