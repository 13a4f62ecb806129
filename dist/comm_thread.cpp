#include "dist/comm_thread.h"

namespace tailor::dist {

CommThread::CommThread() : thread_([this] { loop(); }) {}

CommThread::~CommThread() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

std::shared_future<void> CommThread::submit(std::function<void()> work) {
  // An error is kept for drain() as well as delivered through the item's own future.
  std::packaged_task<void()> task([this, work = std::move(work)] {
    try {
      work();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      throw;
    }
  });
  std::shared_future<void> done = task.get_future().share();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(task));
    last_ = done;
  }
  wake_.notify_one();
  return done;
}

void CommThread::drain() {
  std::shared_future<void> last;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    last = last_;
  }
  // Work runs in order: the last queued item finishing means everything before it has.
  if (last.valid()) last.wait();
  std::lock_guard<std::mutex> lock(mutex_);
  if (error_) std::rethrow_exception(error_);
}

void CommThread::loop() {
  for (;;) {
    std::packaged_task<void()> task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and nothing left
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();  // exceptions land in the task's future
  }
}

}  // namespace tailor::dist
