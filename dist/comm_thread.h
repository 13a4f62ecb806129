// A communication thread: collectives queued from the training thread run here one at a time,
// in the order they were queued, while the training thread goes on computing. Every rank queues
// the same collectives in the same order, so the ranks' threads meet in the same collectives as
// blocking calls from the main thread would.
//
// MPI is then called from two threads, never at once (MPI_THREAD_SERIALIZED): whoever queues
// work must drain() before calling the communicator directly.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

namespace tailor::dist {

class CommThread {
 public:
  CommThread();
  ~CommThread();  // runs what is queued, then joins
  CommThread(const CommThread&) = delete;
  CommThread& operator=(const CommThread&) = delete;

  // Queues `work`; the future becomes ready when it has run, and rethrows what it threw.
  std::shared_future<void> submit(std::function<void()> work);
  // Waits until everything queued so far has run; rethrows the first error of that work.
  void drain();

 private:
  void loop();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::packaged_task<void()>> queue_;
  std::shared_future<void> last_;
  std::exception_ptr error_;  // the first error of any queued work
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace tailor::dist
