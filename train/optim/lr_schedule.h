// Learning-rate schedules: linear warmup from 0, then constant, linear decay or cosine decay
// towards min_lr_ratio * base_lr. The formulas follow Hugging Face transformers
// (src/transformers/optimization.py):
//   get_constant_schedule_with_warmup:  f = s / max(1, W) for s < W, else 1
//   get_linear_schedule_with_warmup:    f = s / max(1, W) for s < W,
//                                       else max(0, (N - s) / max(1, N - W))
//   get_cosine_schedule_with_warmup:    p = (s - W) / max(1, N - W),
//                                       f = max(0, 0.5 * (1 + cos(pi * p)))   (num_cycles = 0.5)
//   get_cosine_with_min_lr_schedule_with_warmup: f = f_cos * (1 - r) + r
// where s is the 0-based optimizer step, W = warmup_steps, N = total_steps, r = min_lr_ratio.
// The linear schedule gets the same floor: f = r + (1 - r) * f_lin (HF has no min-lr variant;
// with r = 0 both are HF's formulas exactly). Like HF, step 0 of a warmup runs at lr 0.
// Past the end (s > N) the decayed schedules stay at their floor; HF's cosine would rise again.
#pragma once

#include <cstdint>
#include <string>

namespace tailor {

enum class ScheduleType { kConstant, kLinear, kCosine };

// "constant" | "linear" | "cosine"; anything else throws tailor::Error("schedule", ...).
ScheduleType parse_schedule_type(const std::string& name);
std::string to_string(ScheduleType type);

struct ScheduleConfig {
  ScheduleType type = ScheduleType::kCosine;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double min_lr_ratio = 0.0;  // in [0, 1]; ignored by kConstant
  double base_lr = 1e-3;
};

class LrSchedule {
 public:
  // Validates the config (warmup_steps in [0, total_steps], total_steps >= 1, ratio in [0, 1],
  // base_lr >= 0); throws tailor::Error("schedule", ...) naming the field otherwise.
  explicit LrSchedule(const ScheduleConfig& config);

  // The multiplier of base_lr at 0-based optimizer step `step` (step >= 0).
  double factor_at(int64_t step) const;
  // base_lr * factor_at(step).
  double lr_at(int64_t step) const { return config_.base_lr * factor_at(step); }
  const ScheduleConfig& config() const { return config_; }

 private:
  ScheduleConfig config_;
};

}  // namespace tailor
