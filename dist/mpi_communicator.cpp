#include "dist/mpi_communicator.h"

#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>
#include <mpi.h>

#include "common/error.h"
#include "common/shape_string.h"
#include "dist/collective_checks.h"
#include "dist/collective_watchdog.h"

namespace tailor::dist {

struct MpiCommunicator::State {
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Op bf16_sum = MPI_OP_NULL;
};

namespace {

void check_mpi(int code, const std::string& what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw Error("dist", what + " failed: " + std::string(text, static_cast<size_t>(length)));
}

// MPI_User_function for bfloat16 sums: inout[i] <- in[i] + inout[i], computed in float and
// rounded to nearest even by c10::BFloat16's float constructor, i.e. the same result as adding
// two at::kBFloat16 tensors. Addition is commutative, so MPI may apply it in any order.
void bf16_sum(void* in, void* inout, int* length, MPI_Datatype* /*type*/) {
  const auto* a = static_cast<const c10::BFloat16*>(in);
  auto* b = static_cast<c10::BFloat16*>(inout);
  for (int i = 0; i < *length; ++i) {
    b[i] = c10::BFloat16(static_cast<float>(a[i]) + static_cast<float>(b[i]));
  }
}

void check_cpu(const std::string& collective, const std::string& role, const at::Tensor& tensor) {
  detail::check_contiguous(collective, role, tensor);
  if (!tensor.device().is_cpu()) {
    throw Error("dist", collective + ": " + role + " is " + detail::describe(tensor) +
                            "; the mpi backend takes CPU tensors (GPU tensors go through "
                            "dist.backend=nccl)");
  }
}

// The MPI element type of a tensor. Sums are defined for float32, float64, int64 and bfloat16;
// the copying collectives also move the other fixed-size types bit for bit.
MPI_Datatype element_type(const std::string& collective, const at::Tensor& tensor, bool sum) {
  switch (tensor.scalar_type()) {
    case at::kFloat:
      return MPI_FLOAT;
    case at::kDouble:
      return MPI_DOUBLE;
    case at::kLong:
      return MPI_INT64_T;
    case at::kBFloat16:
      return MPI_UINT16_T;
    default:
      break;
  }
  if (!sum) {
    switch (tensor.scalar_type()) {
      case at::kHalf:
        return MPI_UINT16_T;
      case at::kInt:
        return MPI_INT32_T;
      case at::kShort:
        return MPI_INT16_T;
      case at::kChar:
        return MPI_INT8_T;
      case at::kByte:
        return MPI_UINT8_T;
      case at::kBool:
        return MPI_UINT8_T;
      default:
        break;
    }
  }
  throw Error("dist", collective + ": " + detail::describe(tensor) + ": the mpi backend " +
                          (sum ? "sums float32, float64, int64 and bfloat16"
                               : "moves float32, float64, bfloat16, float16 and integer/bool") +
                          " tensors only");
}

char* bytes(const at::Tensor& tensor) {
  return static_cast<char*>(tensor.data_ptr());
}

// "bfloat16 [4096]": what a collective moves, for the watchdog's timeout message.
std::string operand(const at::Tensor& tensor) {
  return detail::dtype_name(tensor.scalar_type()) + " " + shape_string(tensor.sizes());
}

}  // namespace

namespace detail {
std::vector<std::pair<int64_t, int64_t>> chunk_ranges(int64_t count, int64_t max_chunk) {
  if (max_chunk < 1) {
    throw Error("dist", "chunk size must be at least 1 element, got " + std::to_string(max_chunk));
  }
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (int64_t offset = 0; offset < count; offset += max_chunk) {
    ranges.emplace_back(offset, std::min(max_chunk, count - offset));
  }
  return ranges;
}
}  // namespace detail

MpiCommunicator::MpiCommunicator()
    : state_(std::make_unique<State>()), max_chunk_elements_(INT_MAX) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    throw Error("dist",
                "MpiCommunicator needs MPI to be initialized (construct dist::Runtime "
                "in main and launch with mpirun)");
  }
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &state_->comm), "MPI_Comm_dup");
  // Errors come back as codes, which check_mpi turns into tailor::Error naming the call.
  MPI_Comm_set_errhandler(state_->comm, MPI_ERRORS_RETURN);
  check_mpi(MPI_Comm_rank(state_->comm, &rank_), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(state_->comm, &world_size_), "MPI_Comm_size");
  MPI_Comm local = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split_type(state_->comm, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local),
            "MPI_Comm_split_type");
  MPI_Comm_rank(local, &local_rank_);
  MPI_Comm_size(local, &local_size_);
  MPI_Comm_free(&local);
  check_mpi(MPI_Op_create(&bf16_sum, /*commute=*/1, &state_->bf16_sum), "MPI_Op_create");
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  if (state_->bf16_sum != MPI_OP_NULL) MPI_Op_free(&state_->bf16_sum);
  if (state_->comm != MPI_COMM_NULL) MPI_Comm_free(&state_->comm);
}

void MpiCommunicator::set_max_chunk_elements(int64_t elements) {
  if (elements < 1 || elements > INT_MAX) {
    throw Error("dist",
                "max_chunk_elements must be in [1, INT_MAX], got " + std::to_string(elements));
  }
  max_chunk_elements_ = elements;
}

void MpiCommunicator::all_reduce_sum(at::Tensor& tensor) {
  const std::string name = "all_reduce_sum";
  check_cpu(name, "tensor", tensor);
  MPI_Datatype type = element_type(name, tensor, true);
  MPI_Op op = tensor.scalar_type() == at::kBFloat16 ? state_->bf16_sum : MPI_SUM;
  detail::count_all_reduce(stats_, tensor);
  const CollectiveWatch watch("all_reduce_sum", operand(tensor));
  const int64_t size = tensor.element_size();
  for (auto [offset, length] : detail::chunk_ranges(tensor.numel(), max_chunk_elements_)) {
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, bytes(tensor) + offset * size, static_cast<int>(length),
                            type, op, state_->comm),
              "MPI_Allreduce (" + name + " of " + detail::describe(tensor) + ")");
  }
}

void MpiCommunicator::reduce_scatter_sum(const at::Tensor& input, at::Tensor& output) {
  const std::string name = "reduce_scatter_sum";
  check_cpu(name, "input", input);
  check_cpu(name, "output", output);
  detail::check_scatter_gather(name, input, "input", output, "output", world_size_);
  MPI_Datatype type = element_type(name, input, true);
  MPI_Op op = input.scalar_type() == at::kBFloat16 ? state_->bf16_sum : MPI_SUM;
  detail::count_reduce_scatter(stats_, input);
  const CollectiveWatch watch("reduce_scatter_sum", operand(input));
  const int64_t n = output.numel();
  const int64_t size = input.element_size();
  // MPI forbids the receive buffer to alias the send buffer: sum into a temporary then.
  at::Tensor target = detail::overlaps(input, output) ? at::empty_like(output) : output;
  const std::string what =
      "MPI_Reduce_scatter_block (" + name + " of " + detail::describe(input) + ")";
  if (n <= max_chunk_elements_) {
    if (n > 0) {
      check_mpi(MPI_Reduce_scatter_block(bytes(input), bytes(target), static_cast<int>(n), type, op,
                                         state_->comm),
                what);
    }
  } else {
    // Piece [c, c + len) of every rank's block, packed contiguously: (world, len).
    const at::Tensor blocks = input.view({world_size_, n});
    for (auto [offset, length] : detail::chunk_ranges(n, max_chunk_elements_)) {
      at::Tensor packed = blocks.narrow(1, offset, length).contiguous();
      check_mpi(MPI_Reduce_scatter_block(bytes(packed), bytes(target) + offset * size,
                                         static_cast<int>(length), type, op, state_->comm),
                what);
    }
  }
  if (!target.is_same(output)) output.copy_(target);
}

void MpiCommunicator::all_gather(const at::Tensor& input, at::Tensor& output) {
  const std::string name = "all_gather";
  check_cpu(name, "input", input);
  check_cpu(name, "output", output);
  detail::check_scatter_gather(name, output, "output", input, "input", world_size_);
  MPI_Datatype type = element_type(name, input, false);
  detail::count_all_gather(stats_, output);
  const int64_t n = input.numel();
  const int64_t size = input.element_size();
  if (n == 0) return;
  const CollectiveWatch watch("all_gather", operand(output));
  // The input already sitting at this rank's block of the output is MPI_IN_PLACE; any other
  // overlap is copied out first (MPI forbids aliasing).
  const bool in_place = input.data_ptr() == bytes(output) + rank_ * n * size;
  at::Tensor source = !in_place && detail::overlaps(input, output) ? input.clone() : input;
  const std::string what = "MPI_Allgather (" + name + " into " + detail::describe(output) + ")";
  if (n <= max_chunk_elements_) {
    check_mpi(MPI_Allgather(in_place ? MPI_IN_PLACE : bytes(source), static_cast<int>(n), type,
                            bytes(output), static_cast<int>(n), type, state_->comm),
              what);
    return;
  }
  for (auto [offset, length] : detail::chunk_ranges(n, max_chunk_elements_)) {
    // One receive element = `length` values whose extent is a whole block (n values), so rank
    // r's piece lands at output[r * n + offset, ...) without a copy.
    MPI_Datatype piece = MPI_DATATYPE_NULL;
    MPI_Datatype strided = MPI_DATATYPE_NULL;
    check_mpi(MPI_Type_contiguous(static_cast<int>(length), type, &piece), "MPI_Type_contiguous");
    check_mpi(MPI_Type_create_resized(piece, 0, static_cast<MPI_Aint>(n * size), &strided),
              "MPI_Type_create_resized");
    MPI_Type_commit(&strided);
    const int code = MPI_Allgather(in_place ? MPI_IN_PLACE : bytes(source) + offset * size,
                                   static_cast<int>(length), type, bytes(output) + offset * size, 1,
                                   strided, state_->comm);
    MPI_Type_free(&strided);
    MPI_Type_free(&piece);
    check_mpi(code, what);
  }
}

void MpiCommunicator::broadcast(at::Tensor& tensor, int root) {
  const std::string name = "broadcast";
  detail::check_root(name, root, world_size_);
  check_cpu(name, "tensor", tensor);
  MPI_Datatype type = element_type(name, tensor, false);
  detail::count_broadcast(stats_, tensor);
  const CollectiveWatch watch("broadcast", operand(tensor) + " from rank " + std::to_string(root));
  const int64_t size = tensor.element_size();
  for (auto [offset, length] : detail::chunk_ranges(tensor.numel(), max_chunk_elements_)) {
    check_mpi(MPI_Bcast(bytes(tensor) + offset * size, static_cast<int>(length), type, root,
                        state_->comm),
              "MPI_Bcast (" + name + " of " + detail::describe(tensor) + ")");
  }
}

void MpiCommunicator::barrier() {
  const CollectiveWatch watch("barrier");
  check_mpi(MPI_Barrier(state_->comm), "MPI_Barrier");
}

std::vector<std::string> MpiCommunicator::all_gather_strings(const std::string& value) {
  if (value.size() > static_cast<size_t>(INT_MAX)) {
    throw Error("dist", "all_gather_strings: a string of " + std::to_string(value.size()) +
                            " bytes exceeds MPI's int count");
  }
  const int length = static_cast<int>(value.size());
  const CollectiveWatch watch("all_gather_strings", std::to_string(length) + " bytes");
  std::vector<int> lengths(static_cast<size_t>(world_size_));
  check_mpi(MPI_Allgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, state_->comm),
            "MPI_Allgather (all_gather_strings lengths)");
  std::vector<int> offsets(lengths.size());
  int64_t total = 0;
  for (size_t r = 0; r < lengths.size(); ++r) {
    offsets[r] = static_cast<int>(total);
    total += lengths[r];
    if (total > INT_MAX) {
      throw Error("dist",
                  "all_gather_strings: the strings of all ranks total more than INT_MAX "
                  "bytes");
    }
  }
  std::string joined(static_cast<size_t>(total), '\0');
  check_mpi(MPI_Allgatherv(value.data(), length, MPI_CHAR, joined.data(), lengths.data(),
                           offsets.data(), MPI_CHAR, state_->comm),
            "MPI_Allgatherv (all_gather_strings)");
  std::vector<std::string> values;
  values.reserve(lengths.size());
  for (size_t r = 0; r < lengths.size(); ++r) {
    values.push_back(
        joined.substr(static_cast<size_t>(offsets[r]), static_cast<size_t>(lengths[r])));
  }
  return values;
}

}  // namespace tailor::dist
