// Hang detection for collectives: a rank that is alive but stuck (stopped, deadlocked, spinning)
// never arrives at the next collective, so the other ranks would wait in it forever. Every
// blocking collective of a backend is wrapped in a CollectiveWatch; a watchdog thread (one per
// process, started by the first watched collective) looks every 0.5 s at the collectives in
// progress on every thread, and when one has waited longer than the timeout it prints one line
// and ends the job:
//
//   [rank 0/2] error: collective all_gather #123 (bfloat16 [4096]) waited 10.0 s for the other
//   ranks (dist.collective_timeout_s = 10); a rank is stuck or dead
//
// through abort_all() (MPI_Abort: mpirun then kills every rank, a stopped one included). So a
// waiting rank reports within timeout + 0.5 s. Time during which this process itself was not
// running (a check more than 1 s late: it was stopped, or starved of CPU) does not count as
// waiting, so a stopped rank that is continued does not blame the others. `#123` counts the
// collectives this process started since a timeout was set (1, 2, ...); ranks that issue their
// collectives in the same order number them alike.
//
//   void MpiCommunicator::barrier() { CollectiveWatch watch("barrier"); MPI_Barrier(...); }
//
//   {
//     UnboundedWait rank0_alone;  // rank 0 exports for minutes while the others wait
//     if (rank == 0) export_model(...);
//     comm.barrier();
//   }
#pragma once

#include <cstdint>
#include <string>

namespace tailor::dist {

// Seconds a collective may wait before the job is ended; 0 = no limit (the default until set;
// `tailor run` sets the recipe's dist.collective_timeout_s). Thread-safe. Collectives that started
// while no timeout was set are never watched; the others are measured against the current value
// at each check. Negative is an error.
void set_collective_timeout(double seconds);
double collective_timeout();

// Marks the enclosing scope as one blocking collective on this thread: `name` is the operation
// ("all_gather"), `operand` what it moves ("bfloat16 [4096]", may be empty). Cheap (one mutex
// lock at each end); does nothing while no timeout is set.
class CollectiveWatch {
 public:
  explicit CollectiveWatch(const char* name, std::string operand = {});
  ~CollectiveWatch();
  CollectiveWatch(const CollectiveWatch&) = delete;
  CollectiveWatch& operator=(const CollectiveWatch&) = delete;

 private:
  uint64_t number_ = 0;  // 0: not registered (no timeout was set)
};

// While any UnboundedWait exists in this process, no collective times out: for phases in which
// ranks legitimately wait long for one rank (rank 0 writing samples and exporting a 7B model
// while the others sit in a barrier). Process-wide rather than per thread, because collectives
// may run on a communication thread on behalf of the thread that opened the phase. When the last
// one ends, collectives still waiting get the full timeout again from that moment. Nestable.
class UnboundedWait {
 public:
  UnboundedWait();
  ~UnboundedWait();
  UnboundedWait(const UnboundedWait&) = delete;
  UnboundedWait& operator=(const UnboundedWait&) = delete;
};

}  // namespace tailor::dist
