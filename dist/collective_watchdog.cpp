#include "dist/collective_watchdog.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "common/error.h"
#include "dist/runtime.h"

namespace tailor::dist {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kCheckInterval = std::chrono::milliseconds(500);
// A check that comes this much later than planned means this process was not running (stopped
// by SIGSTOP, a suspended machine): that time is not counted as waiting. Otherwise a stopped
// rank, continued by mpirun's teardown (SIGCONT before SIGTERM), would report its own stop.
constexpr auto kLateCheck = std::chrono::seconds(1);
// MPI_Abort is called from the checking thread while another thread is inside MPI, which the
// thread level tailor asks for does not promise to allow. If it has not ended the process by
// then, exit anyway: mpirun ends the job when a rank exits without MPI_Finalize.
constexpr auto kAbortBackstop = std::chrono::seconds(10);
constexpr int kExitCode = 1;

struct Waiting {
  const char* name;
  std::string operand;
  // When it started; moved later when the last UnboundedWait ends, and by the time this process
  // did not run.
  Clock::time_point since;
};

struct Watchdog {
  std::mutex mutex;
  double timeout_s = 0;                 // 0 = no limit
  int unbounded = 0;                    // live UnboundedWait objects
  bool thread_started = false;          // the checking thread runs (it never stops)
  uint64_t started = 0;                 // collectives started while a timeout was set
  std::map<uint64_t, Waiting> waiting;  // by number: the oldest first
};

// Never destroyed: the detached checking thread may still look at it while the process exits.
Watchdog& watchdog() {
  static auto* state = new Watchdog;
  return *state;
}

std::string timeout_message(uint64_t number, const Waiting& w, double waited_s, double timeout_s) {
  char waited[32];
  char timeout[32];
  std::snprintf(waited, sizeof(waited), "%.1f", waited_s);
  std::snprintf(timeout, sizeof(timeout), "%g", timeout_s);
  return std::string("collective ") + w.name + " #" + std::to_string(number) +
         (w.operand.empty() ? "" : " (" + w.operand + ")") + " waited " + waited +
         " s for the other ranks (dist.collective_timeout_s = " + timeout +
         "); a rank is stuck or dead";
}

[[noreturn]] void end_job(const std::string& message) {
  std::thread([] {
    std::this_thread::sleep_for(kAbortBackstop);
    std::_Exit(kExitCode);
  }).detach();
  abort_all(message, kExitCode);
}

// The checking thread: every kCheckInterval, the oldest collective past the timeout ends the job.
[[noreturn]] void check_forever() {
  Watchdog& w = watchdog();
  auto planned = Clock::now() + kCheckInterval;
  for (;;) {
    std::this_thread::sleep_until(planned);
    std::string message;
    {
      std::lock_guard<std::mutex> lock(w.mutex);
      const auto now = Clock::now();
      const auto late = now - planned;
      planned = now + kCheckInterval;
      if (late > kLateCheck) {
        for (auto& item : w.waiting)
          item.second.since = std::min(item.second.since + late, now);
      }
      if (w.timeout_s <= 0 || w.unbounded > 0) continue;
      for (const auto& [number, waiting] : w.waiting) {
        const double waited_s = std::chrono::duration<double>(now - waiting.since).count();
        if (waited_s > w.timeout_s) {
          message = timeout_message(number, waiting, waited_s, w.timeout_s);
          break;
        }
      }
    }
    if (!message.empty()) end_job(message);
  }
}

// Starts the checking thread at the first watched collective (so a process that never waits in
// one, e.g. a single-process run, has none); the caller holds w.mutex.
void start_thread_locked(Watchdog& w) {
  if (w.thread_started) return;
  std::thread(check_forever).detach();
  w.thread_started = true;
}

}  // namespace

void set_collective_timeout(double seconds) {
  if (!(seconds >= 0)) {
    throw Error("dist", "collective timeout must be >= 0 seconds (0 = no limit), got " +
                            std::to_string(seconds));
  }
  Watchdog& w = watchdog();
  std::lock_guard<std::mutex> lock(w.mutex);
  w.timeout_s = seconds;
}

double collective_timeout() {
  Watchdog& w = watchdog();
  std::lock_guard<std::mutex> lock(w.mutex);
  return w.timeout_s;
}

CollectiveWatch::CollectiveWatch(const char* name, std::string operand) {
  Watchdog& w = watchdog();
  std::lock_guard<std::mutex> lock(w.mutex);
  if (w.timeout_s <= 0) return;
  start_thread_locked(w);
  number_ = ++w.started;
  w.waiting.emplace(number_, Waiting{name, std::move(operand), Clock::now()});
}

CollectiveWatch::~CollectiveWatch() {
  if (number_ == 0) return;
  Watchdog& w = watchdog();
  std::lock_guard<std::mutex> lock(w.mutex);
  w.waiting.erase(number_);
}

UnboundedWait::UnboundedWait() {
  Watchdog& w = watchdog();
  std::lock_guard<std::mutex> lock(w.mutex);
  ++w.unbounded;
}

UnboundedWait::~UnboundedWait() {
  Watchdog& w = watchdog();
  std::lock_guard<std::mutex> lock(w.mutex);
  if (--w.unbounded > 0) return;
  const auto now = Clock::now();
  for (auto& item : w.waiting)
    item.second.since = now;
}

}  // namespace tailor::dist
