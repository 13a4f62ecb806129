// World size 1: every sum is over one rank, so all_reduce and broadcast leave the tensor as it
// is and reduce_scatter / all_gather are copies. Arguments are checked exactly as the MPI and
// NCCL backends check them, and traffic is counted by the same convention, so code tested at
// world size 1 behaves the same (and reports the same bytes) at world size N.
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "dist/collective_checks.h"
#include "dist/communicator.h"

namespace tailor::dist {
namespace {

class SingleProcessCommunicator final : public Communicator {
 public:
  std::string backend() const override { return "single"; }
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }

  void all_reduce_sum(at::Tensor& tensor) override {
    detail::check_contiguous("all_reduce_sum", "tensor", tensor);
    detail::count_all_reduce(stats_, tensor);
  }

  void reduce_scatter_sum(const at::Tensor& input, at::Tensor& output) override {
    detail::check_scatter_gather("reduce_scatter_sum", input, "input", output, "output", 1);
    detail::count_reduce_scatter(stats_, input);
    if (!input.is_same(output)) output.view(-1).copy_(input.view(-1));
  }

  void all_gather(const at::Tensor& input, at::Tensor& output) override {
    detail::check_scatter_gather("all_gather", output, "output", input, "input", 1);
    detail::count_all_gather(stats_, output);
    if (!input.is_same(output)) output.view(-1).copy_(input.view(-1));
  }

  void broadcast(at::Tensor& tensor, int root) override {
    detail::check_root("broadcast", root, 1);
    detail::check_contiguous("broadcast", "tensor", tensor);
    detail::count_broadcast(stats_, tensor);
  }

  void barrier() override {}

  std::vector<std::string> all_gather_strings(const std::string& value) override { return {value}; }
};

}  // namespace

std::unique_ptr<Communicator> make_single_process_communicator() {
  return std::make_unique<SingleProcessCommunicator>();
}

}  // namespace tailor::dist
