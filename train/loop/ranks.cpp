#include "train/loop/ranks.h"

#include <vector>

#include <ATen/ATen.h>

#include "common/error.h"
#include "dist/communicator.h"

namespace tailor {

void check_ranks_agree(dist::Communicator& comm, const std::string& recipe_hash) {
  const std::vector<std::string> hashes = comm.all_gather_strings(recipe_hash);
  for (size_t i = 1; i < hashes.size(); ++i)
    if (hashes[i] != hashes[0])
      throw Error("dist", "rank " + std::to_string(i) + " resolved a different recipe (hash " +
                              hashes[i] + ") than rank 0 (" + hashes[0] +
                              "); every rank must run the same recipe file and overrides");
}

at::Tensor sum_over_ranks(dist::Communicator& comm, const at::Tensor& values) {
  if (comm.world_size() == 1) return values;
  // A copy even on the communicator's device: the all-reduce is in place.
  at::Tensor on_comm = values.to(comm.device(), /*non_blocking=*/false, /*copy=*/true).contiguous();
  comm.all_reduce_sum(on_comm);
  return on_comm.cpu();
}

}  // namespace tailor
