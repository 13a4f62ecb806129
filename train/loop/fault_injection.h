// Testing aid for the fault-tolerance and resume tests: TAILOR_FAULT_RANK=R TAILOR_FAULT_STEP=S
// makes rank R throw Error("fault", ...) when it starts optimizer step S. The training stages call
// it at the top of every step.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/error.h"

namespace tailor {

inline void maybe_inject_fault(int rank, int64_t step) {
  const char* fault_rank = std::getenv("TAILOR_FAULT_RANK");
  const char* fault_step = std::getenv("TAILOR_FAULT_STEP");
  if (!fault_rank || !fault_step) return;
  if (std::atoi(fault_rank) == rank && std::atoll(fault_step) == step)
    throw Error("fault", "injected fault at step " + std::to_string(step) + " on rank " +
                             std::to_string(rank));
}

}  // namespace tailor
