// Training telemetry: metrics.jsonl (one JSON object per line, for tools) and a human progress
// line on stderr. Clocks are injectable so tests control time.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iosfwd>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace tailor {

// Seconds; wall clock (since the Unix epoch) for MetricsWriter, any monotonic origin for
// ProgressLine.
using Clock = std::function<double()>;
double wall_clock_seconds();
double steady_clock_seconds();

// Appends records to a JSONL file, flushing after every line so a killed run loses nothing
// already logged. Each record is {"step": step, "time": wall seconds, ...values}; values are
// written as given (nlohmann writes non-finite floats as null).
class MetricsWriter {
 public:
  explicit MetricsWriter(std::filesystem::path path, Clock wall_clock = wall_clock_seconds);

  // `values` must be a JSON object; its keys must not be "step" or "time".
  void log(int64_t step, const nlohmann::json& values);

  // For resume: atomically rewrites the file keeping only records with step <= `step` (and
  // dropping a torn last line of a killed run), so replayed steps are not logged twice.
  void truncate_after(int64_t step);
  static void truncate_file_after(const std::filesystem::path& path, int64_t step);

  const std::filesystem::path& path() const { return path_; }

 private:
  void open_for_append();

  std::filesystem::path path_;
  Clock wall_clock_;
  std::ofstream out_;
};

// "1:02:03" (hours unbounded, "27:00:00"); negative or non-finite input gives "?".
std::string format_duration(double seconds);
// "5,120" (rounded to an integer, thousands separated by commas).
std::string format_thousands(double value);
// Compact scientific notation with two significant digits: 2.9e-4, 1e-3, 0 -> "0".
std::string format_lr(double lr);

// A progress line, printed at most every `min_interval_seconds` (and always when forced, e.g.
// on log steps and the last step):
//   step 120/1000 | loss 2.314 | lr 2.9e-4 | 5,120 tok/s | 0:01:42 elapsed | ETA 0:12:33
// Rates (tokens/s, steps/s for the ETA) come from a moving window over the last `window`
// updates, so a slow first step (allocation, page faults) fades out of the estimate.
class ProgressLine {
 public:
  struct Options {
    int64_t total_steps = 0;
    int64_t start_step = 0;  // resumed runs start here; elapsed counts from construction
    double min_interval_seconds = 10.0;
    size_t window = 20;
  };
  ProgressLine(Options options, std::ostream& out, Clock clock = steady_clock_seconds);

  // Records that optimizer step `step` (1-based count of steps done) finished after processing
  // `tokens` tokens; prints when due or `force`. Returns whether a line was printed.
  bool update(int64_t step, int64_t tokens, double loss, double lr, bool force = false);

  // The line for the latest update (without newline).
  std::string format(int64_t step, double loss, double lr) const;

  double tokens_per_second() const;  // 0 until the window spans some time
  double eta_seconds() const;        // negative when unknown

 private:
  struct Sample {
    double time;
    int64_t step;
    int64_t tokens;  // cumulative since construction
  };
  Options options_;
  std::ostream& out_;
  Clock clock_;
  double start_time_;
  double last_print_time_;
  bool printed_ = false;
  int64_t cumulative_tokens_ = 0;
  std::deque<Sample> window_;
};

}  // namespace tailor
