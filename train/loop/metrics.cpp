#include "train/loop/metrics.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"

namespace tailor {
namespace fs = std::filesystem;

double wall_clock_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

double steady_clock_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// ---- MetricsWriter ----

MetricsWriter::MetricsWriter(fs::path path, Clock wall_clock)
    : path_(std::move(path)), wall_clock_(std::move(wall_clock)) {
  open_for_append();
}

void MetricsWriter::open_for_append() {
  if (path_.has_parent_path()) fs::create_directories(path_.parent_path());
  // A run killed mid-line leaves no trailing newline: start our first record on a fresh line.
  bool needs_newline = false;
  if (fs::exists(path_) && fs::file_size(path_) > 0) {
    std::ifstream in(path_, std::ios::binary);
    in.seekg(-1, std::ios::end);
    needs_newline = in.get() != '\n';
  }
  out_.open(path_, std::ios::binary | std::ios::app);
  if (!out_) throw Error("metrics", "cannot open " + path_.string() + " for appending");
  if (needs_newline) out_ << '\n' << std::flush;
}

void MetricsWriter::log(int64_t step, const nlohmann::json& values) {
  if (!values.is_object()) {
    throw Error("metrics", "log(step " + std::to_string(step) + "): values must be a JSON object");
  }
  // Written by hand so "step" and "time" lead every line (nlohmann::json sorts keys).
  std::string line =
      "{\"step\":" + std::to_string(step) + ",\"time\":" + nlohmann::json(wall_clock_()).dump();
  for (const auto& item : values.items()) {
    if (item.key() == "step" || item.key() == "time") {
      throw Error("metrics",
                  "log(step " + std::to_string(step) + "): key \"" + item.key() + "\" is reserved");
    }
    line += "," + nlohmann::json(item.key()).dump() + ":" + item.value().dump();
  }
  line += "}\n";
  out_ << line << std::flush;
  if (!out_) throw Error("metrics", "failed writing " + path_.string());
}

void MetricsWriter::truncate_file_after(const fs::path& path, int64_t step) {
  if (!fs::exists(path)) return;
  std::istringstream in(read_file(path));
  std::string kept, line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const nlohmann::json record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (record.is_discarded() || !record.is_object()) continue;  // torn line of a killed run
    auto it = record.find("step");
    if (it != record.end() && it->is_number() && it->get<double>() > static_cast<double>(step)) {
      continue;
    }
    kept += line + "\n";
  }
  write_file_atomic(path, kept);
}

void MetricsWriter::truncate_after(int64_t step) {
  out_.close();
  truncate_file_after(path_, step);
  open_for_append();
}

// ---- formatting ----

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long long total = std::llround(seconds);
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", total / 3600, (total / 60) % 60,
                total % 60);
  return buf;
}

std::string format_thousands(double value) {
  if (!std::isfinite(value)) return "?";
  const long long v = std::llround(value);
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (v < 0 ? "-" : "") + out;
}

std::string format_lr(double lr) {
  if (lr == 0.0) return "0";
  if (!std::isfinite(lr)) return std::to_string(lr);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1e", lr);  // "2.9e-04"
  std::string s(buf);
  const size_t e = s.find('e');
  std::string mantissa = s.substr(0, e);
  if (mantissa.size() >= 2 && mantissa.compare(mantissa.size() - 2, 2, ".0") == 0) {
    mantissa.resize(mantissa.size() - 2);  // "1.0" -> "1"
  }
  const int exponent = std::stoi(s.substr(e + 1));
  return mantissa + "e" + std::to_string(exponent);
}

// ---- ProgressLine ----

ProgressLine::ProgressLine(Options options, std::ostream& out, Clock clock)
    : options_(options), out_(out), clock_(std::move(clock)) {
  if (options_.window < 1) options_.window = 1;
  start_time_ = clock_();
  last_print_time_ = start_time_;
  window_.push_back({start_time_, options_.start_step, 0});
}

bool ProgressLine::update(int64_t step, int64_t tokens, double loss, double lr, bool force) {
  const double now = clock_();
  cumulative_tokens_ += tokens;
  window_.push_back({now, step, cumulative_tokens_});
  while (window_.size() > options_.window + 1)
    window_.pop_front();
  if (!force && now - last_print_time_ < options_.min_interval_seconds) return false;
  out_ << format(step, loss, lr) << '\n' << std::flush;
  last_print_time_ = now;
  return true;
}

double ProgressLine::tokens_per_second() const {
  const double dt = window_.back().time - window_.front().time;
  if (!(dt > 0)) return 0.0;
  return static_cast<double>(window_.back().tokens - window_.front().tokens) / dt;
}

double ProgressLine::eta_seconds() const {
  const Sample& last = window_.back();
  if (options_.total_steps > 0 && last.step >= options_.total_steps) return 0.0;
  const double dt = last.time - window_.front().time;
  const int64_t steps = last.step - window_.front().step;
  if (!(dt > 0) || steps <= 0 || options_.total_steps <= 0) return -1.0;
  return static_cast<double>(options_.total_steps - last.step) * dt / static_cast<double>(steps);
}

std::string ProgressLine::format(int64_t step, double loss, double lr) const {
  std::ostringstream s;
  s << "step " << step;
  if (options_.total_steps > 0) s << "/" << options_.total_steps;
  char loss_buf[32];
  std::snprintf(loss_buf, sizeof(loss_buf), "%.3f", loss);
  s << " | loss " << loss_buf << " | lr " << format_lr(lr) << " | "
    << format_thousands(tokens_per_second()) << " tok/s | "
    << format_duration(window_.back().time - start_time_) << " elapsed | ETA "
    << format_duration(eta_seconds());
  return s.str();
}

}  // namespace tailor
