#include "train/optim/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace tailor {

ScheduleType parse_schedule_type(const std::string& name) {
  if (name == "constant") return ScheduleType::kConstant;
  if (name == "linear") return ScheduleType::kLinear;
  if (name == "cosine") return ScheduleType::kCosine;
  throw Error("schedule",
              "unknown schedule type \"" + name + "\": expected one of constant, linear, cosine");
}

std::string to_string(ScheduleType type) {
  switch (type) {
    case ScheduleType::kConstant:
      return "constant";
    case ScheduleType::kLinear:
      return "linear";
    case ScheduleType::kCosine:
      return "cosine";
  }
  return "unknown";
}

LrSchedule::LrSchedule(const ScheduleConfig& config) : config_(config) {
  if (config.total_steps < 1) {
    throw Error("schedule", "total_steps must be >= 1, got " + std::to_string(config.total_steps));
  }
  if (config.warmup_steps < 0 || config.warmup_steps > config.total_steps) {
    throw Error("schedule",
                "warmup_steps must lie in [0, total_steps = " + std::to_string(config.total_steps) +
                    "], got " + std::to_string(config.warmup_steps));
  }
  if (!(config.min_lr_ratio >= 0.0 && config.min_lr_ratio <= 1.0)) {
    throw Error("schedule",
                "min_lr_ratio must lie in [0, 1], got " + std::to_string(config.min_lr_ratio));
  }
  if (!(config.base_lr >= 0.0) || !std::isfinite(config.base_lr)) {
    throw Error("schedule",
                "base_lr must be finite and >= 0, got " + std::to_string(config.base_lr));
  }
}

double LrSchedule::factor_at(int64_t step) const {
  if (step < 0) throw Error("schedule", "step must be >= 0, got " + std::to_string(step));
  const auto s = static_cast<double>(step);
  const auto warmup = static_cast<double>(config_.warmup_steps);
  const auto total = static_cast<double>(config_.total_steps);
  if (step < config_.warmup_steps) return s / std::max(1.0, warmup);
  const double r = config_.min_lr_ratio;
  switch (config_.type) {
    case ScheduleType::kConstant:
      return 1.0;
    case ScheduleType::kLinear:
      return r + (1.0 - r) * std::max(0.0, (total - s) / std::max(1.0, total - warmup));
    case ScheduleType::kCosine: {
      // Fraction of the decay phase done, clamped to 1 past the end.
      const double progress = std::min(1.0, (s - warmup) / std::max(1.0, total - warmup));
      const double cosine = std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
      return cosine * (1.0 - r) + r;
    }
  }
  return 1.0;
}

}  // namespace tailor
