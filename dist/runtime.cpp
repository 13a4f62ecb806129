#include "dist/runtime.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include <mpi.h>
#include <torch/cuda.h>

#include "common/error.h"
#include "dist/mpi_communicator.h"
#include "dist/nccl_communicator.h"

namespace tailor::dist {
namespace {

struct RuntimeState {
  bool constructed = false;  // a Runtime was made (only one per process)
  bool mpi_active = false;   // MPI is initialized and mpi_world is the world
  bool owns_mpi = false;     // Runtime called MPI_Init_thread, so it calls MPI_Finalize
  std::unique_ptr<MpiCommunicator> mpi_world;
};

RuntimeState& runtime_state() {
  static RuntimeState state;
  return state;
}

Communicator& single_process_world() {
  static const std::unique_ptr<Communicator> single = make_single_process_communicator();
  return *single;
}

std::optional<std::string> env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

// Strict decimal parse: a launcher variable that is not a number is a broken environment.
int env_int(const char* name, const std::string& value) {
  errno = 0;
  char* end = nullptr;
  const long parsed = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || errno != 0 || parsed < 0 || parsed > 1 << 30) {
    throw Error("dist", std::string("environment variable ") + name + "=\"" + value +
                            "\" is not a non-negative integer");
  }
  return static_cast<int>(parsed);
}

int env_int_or(const char* name, int fallback) {
  auto value = env(name);
  return value ? env_int(name, *value) : fallback;
}

// Whether Runtime starts MPI: any launch with more than one process, and mpirun/PMIx launches
// even with one (so `mpirun -np 1` runs the MPI backend, and PMIx launchers that export no size
// still get one from MPI).
bool should_start_mpi(const LaunchInfo& info) {
  return info.under_launcher &&
         (info.world_size > 1 || info.launcher == "mpirun" || info.launcher == "pmix");
}

}  // namespace

LaunchInfo detect_launch() {
  LaunchInfo info;
  const bool in_slurm_step = env("SLURM_STEP_ID").has_value();
  if (auto size = env("OMPI_COMM_WORLD_SIZE")) {
    // Open MPI's mpirun (and prterun, which exports the same names).
    info.launcher = "mpirun";
    info.world_size = env_int("OMPI_COMM_WORLD_SIZE", *size);
    info.rank = env_int_or("OMPI_COMM_WORLD_RANK", 0);
    info.local_rank = env_int_or("OMPI_COMM_WORLD_LOCAL_RANK", 0);
  } else if (auto rank = env("PMIX_RANK")) {
    // A PMIx launcher (e.g. srun --mpi=pmix); the size comes from SLURM when it exports one.
    info.launcher = "pmix";
    info.rank = env_int("PMIX_RANK", *rank);
    info.world_size = in_slurm_step ? env_int_or("SLURM_NTASKS", 1) : env_int_or("PMI_SIZE", 1);
    info.local_rank = in_slurm_step ? env_int_or("SLURM_LOCALID", 0) : 0;
  } else if (auto size = env("PMI_SIZE")) {
    // PMI-1/2 launchers: MPICH's hydra (mpiexec), srun --mpi=pmi2.
    info.launcher = "pmi";
    info.world_size = env_int("PMI_SIZE", *size);
    info.rank = env_int_or("PMI_RANK", 0);
    info.local_rank = env("MPI_LOCALRANKID") ? env_int_or("MPI_LOCALRANKID", 0)
                      : in_slurm_step        ? env_int_or("SLURM_LOCALID", 0)
                                             : 0;
  } else if (in_slurm_step && env("SLURM_NTASKS")) {
    // Inside srun (SLURM_STEP_ID is set only in a job step, not in the batch script itself).
    info.launcher = "srun";
    info.world_size = env_int_or("SLURM_NTASKS", 1);
    info.rank = env_int_or("SLURM_PROCID", 0);
    info.local_rank = env_int_or("SLURM_LOCALID", 0);
  } else {
    return info;
  }
  info.under_launcher = true;
  if (info.world_size < 1 || info.rank >= info.world_size) {
    throw Error("dist", "launcher environment (" + info.launcher + ") says rank " +
                            std::to_string(info.rank) + " of world size " +
                            std::to_string(info.world_size) + "; expected 0 <= rank < world size");
  }
  return info;
}

Runtime::Runtime(int* argc, char*** argv) {
  RuntimeState& state = runtime_state();
  if (state.constructed) {
    throw Error("dist", "a second dist::Runtime was constructed; make exactly one, in main");
  }
  state.constructed = true;
  const LaunchInfo info = detect_launch();
  if (!should_start_mpi(info)) return;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    // SERIALIZED: MPI is called by the main thread and by the ZeRO engine's communication
    // thread (dist/comm_thread.h), never by both at once: the engine drains its thread before
    // the trainer issues a collective of its own.
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
      throw Error("dist", "MPI_Init_thread failed (launched by " + info.launcher + ")");
    }
    if (provided < MPI_THREAD_SERIALIZED) {
      throw Error("dist", "the MPI library provides thread level " + std::to_string(provided) +
                              " but tailor needs MPI_THREAD_SERIALIZED (" +
                              std::to_string(MPI_THREAD_SERIALIZED) +
                              "): collectives run on a communication thread");
    }
    state.owns_mpi = true;
  }
  state.mpi_world = std::make_unique<MpiCommunicator>();
  state.mpi_active = true;
}

Runtime::~Runtime() {
  RuntimeState& state = runtime_state();
  if (!state.mpi_active) return;
  if (std::uncaught_exceptions() > 0) {
    // Unwinding from an error: neither barrier nor MPI_Finalize, which would wait for ranks
    // that are still in a collective. A process that exits without MPI_Finalize makes mpirun
    // end the whole job, which is the bounded-time failure we want.
    return;
  }
  try {
    state.mpi_world->barrier();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s\n", error.what());
  }
  state.mpi_world.reset();  // frees its MPI handles while MPI is still up
  state.mpi_active = false;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (state.owns_mpi && !finalized) MPI_Finalize();
}

Communicator& world() {
  RuntimeState& state = runtime_state();
  return state.mpi_active ? *state.mpi_world : single_process_world();
}

bool mpi_active() {
  return runtime_state().mpi_active;
}

void abort_all(const std::string& message, int code) {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  const Communicator& comm = world();
  std::fprintf(stderr, "[rank %d/%d] error: %s\n", comm.rank(), comm.world_size(), message.c_str());
  std::fflush(stderr);
  if (mpi_active()) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

const EnumNames<Backend>& backend_names() {
  static const EnumNames<Backend> table = {{"auto", Backend::kAuto},
                                           {"mpi", Backend::kMpi},
                                           {"nccl", Backend::kNccl},
                                           {"single", Backend::kSingle}};
  return table;
}

const std::string& to_string(Backend backend) {
  return enum_name(backend_names(), backend);
}

std::shared_ptr<Communicator> make_device_communicator(Backend backend) {
  // world() lives until the Runtime ends; aliases of it do not own it.
  auto alias_of_world = [] {
    return std::shared_ptr<Communicator>(&world(), [](Communicator*) {});
  };
  if (backend == Backend::kSingle) {
    const int size = world().world_size();
    if (size > 1) {
      throw Error("dist", "dist.backend=single but " + std::to_string(size) +
                              " ranks were launched; use mpi or nccl, or launch one process");
    }
    return std::shared_ptr<Communicator>(make_single_process_communicator());
  }
  if (backend == Backend::kMpi) return alias_of_world();
  if (backend == Backend::kNccl) {
#ifdef TAILOR_WITH_NCCL
    return make_nccl_communicator(world());
#else
    throw Error("dist",
                "dist.backend=nccl, but this build has no CUDA/NCCL (configure with "
                "-DTAILOR_WITH_CUDA=ON against a CUDA LibTorch and NCCL), or use "
                "dist.backend=mpi for CPU training");
#endif
  }
  if (backend == Backend::kAuto) {
#ifdef TAILOR_WITH_NCCL
    if (torch::cuda::is_available()) return make_nccl_communicator(world());
#endif
    return alias_of_world();
  }
  throw std::logic_error("make_device_communicator: a Backend without a case");
}

}  // namespace tailor::dist
