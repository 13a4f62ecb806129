// Process bootstrap: how this process was launched, and the process-wide communicator.
//
//   int main(...) { dist::Runtime runtime(argc, argv); ... dist::world() ... }
//
// Launched by mpirun/srun (OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_SIZE or SLURM_NTASKS/PMI in the
// environment), Runtime initializes MPI (MPI_THREAD_SERIALIZED) and world() is the MPI
// communicator; otherwise MPI is never initialized and world() is the single-process backend.
// The NCCL communicator for CUDA tensors is made on demand by make_device_communicator().
//
// Faults: a rank that throws calls abort_all(), which prints the error with the rank and calls
// MPI_Abort so every rank exits within bounded time instead of hanging in a collective; mpirun
// likewise tears down the job when any rank dies from a signal.
#pragma once

#include <memory>
#include <string>

#include "common/enum_names.h"
#include "dist/communicator.h"

namespace tailor::dist {

struct LaunchInfo {
  bool under_launcher = false;  // started by mpirun / srun with a process-manager environment
  int world_size = 1;
  int rank = 0;
  int local_rank = 0;  // from OMPI_COMM_WORLD_LOCAL_RANK / SLURM_LOCALID when present
  // Which environment was recognised: "mpirun" (OMPI_COMM_WORLD_*), "pmix" (PMIX_RANK), "pmi"
  // (PMI_SIZE/PMI_RANK), "srun" (SLURM_* inside a job step), or "" when none.
  std::string launcher;
};

// Reads the environment only (never initializes MPI).
LaunchInfo detect_launch();

class Runtime {
 public:
  // Initializes MPI when launched under a process manager; a second Runtime is an error.
  Runtime(int* argc, char*** argv);
  // MPI_Finalize (after a barrier) when MPI was initialized; skipped while an exception is in
  // flight, so that mpirun ends the job instead of ranks waiting in a collective forever.
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
};

// The process-wide CPU communicator (MPI or single). Works without a Runtime (then: single).
Communicator& world();

// Whether MPI was initialized by Runtime.
bool mpi_active();

// Prints "[rank R/N] error: <message>" to stderr and ends every rank: MPI_Abort(code) when MPI is
// active, std::exit(code) otherwise. Never returns.
[[noreturn]] void abort_all(const std::string& message, int code = 1);

// Where collectives run (recipe key dist.backend): auto (NCCL when CUDA is available and this
// build has it, else world()), mpi, nccl, or single (one process).
enum class Backend { kAuto, kMpi, kNccl, kSingle };
const EnumNames<Backend>& backend_names();  // "auto", "mpi", "nccl", "single"
const std::string& to_string(Backend backend);

// A communicator of `backend`. For NCCL: rank 0 creates the unique id, it is broadcast over MPI,
// every rank calls ncclCommInitRank on GPU local_rank. Throws Error("dist", ...) with a clear
// reason when the backend cannot be had (e.g. "nccl requested but this build has no CUDA" or "no
// GPU"). The returned communicator's collectives expect tensors on its device (device()).
std::shared_ptr<Communicator> make_device_communicator(Backend backend);

}  // namespace tailor::dist
