#include "train/recipe/sections.h"

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "common/error.h"

namespace tailor {
namespace fs = std::filesystem;

const std::string& to_string(ModelInit v) {
  return enum_name(model_init_names(), v);
}

const std::string& to_string(Precision v) {
  return enum_name(precision_names(), v);
}

c10::ScalarType weights_dtype(Precision precision) {
  switch (precision) {
    case Precision::kBf16:
      return c10::kBFloat16;
    case Precision::kFp64:
      return c10::kDouble;
    case Precision::kFp32:
    case Precision::kBf16Autocast:
      break;
  }
  return c10::kFloat;
}

ScheduleConfig schedule_config(const ScheduleSection& schedule, const OptimizerSection& optimizer,
                               int64_t max_steps) {
  ScheduleConfig out;
  out.type = schedule.type;
  out.warmup_steps = std::min(schedule.warmup_steps, max_steps);
  out.total_steps = max_steps;
  out.min_lr_ratio = schedule.min_lr_ratio;
  out.base_lr = optimizer.lr;
  return out;
}

void check_model_rules(const ResolvedConfig& c) {
  const bool pretrained = c.get<std::string>("model.init") == "pretrained";
  if (pretrained && c.get<std::string>("model.path").empty()) {
    c.fail("model.path", "required when model.init is 'pretrained' (a HF checkpoint directory)");
  }
  for (const char* key : {"model.n_layer", "model.n_head", "model.n_embd", "model.n_positions"}) {
    if (pretrained && c.get<int64_t>(key) != 0) {
      c.fail(key,
             "only applies to model.init 'random' (a pretrained model keeps its config.json "
             "shape); set it to 0");
    }
  }
  const int64_t n_head = c.get<int64_t>("model.n_head"), n_embd = c.get<int64_t>("model.n_embd");
  if (n_head > 0 && n_embd > 0 && n_embd % n_head != 0) {
    c.fail("model.n_embd", "expected a multiple of model.n_head (" + std::to_string(n_head) +
                               "), got " + std::to_string(n_embd));
  }
  // A stage with a frozen backbone (elicit) has no lora section.
  if (c.schema().find_key("lora.enabled") && c.get<bool>("lora.enabled") &&
      c.get<std::vector<std::string>>("lora.targets").empty()) {
    c.fail("lora.targets", "expected at least one module name when lora.enabled is true");
  }
}

void require_file(const std::string& key, const fs::path& path) {
  if (!fs::is_regular_file(path)) {
    throw Error("recipe", key + ": file not found: " + path.string() + " (relative paths are " +
                              "relative to the working directory " + fs::current_path().string() +
                              ")");
  }
}

void require_directory(const std::string& key, const fs::path& path,
                       const std::vector<std::vector<std::string>>& one_of_file_sets) {
  if (!fs::is_directory(path)) {
    throw Error("recipe", key + ": directory not found: " + path.string() +
                              " (relative paths are relative to the working directory " +
                              fs::current_path().string() + ")");
  }
  std::vector<std::string> alternatives;
  for (const auto& files : one_of_file_sets) {
    bool all = true;
    std::string names;
    for (const auto& f : files) {
      all = all && fs::is_regular_file(path / f);
      names += (names.empty() ? "" : " + ") + f;
    }
    if (all) return;
    alternatives.push_back(names);
  }
  std::string expected;
  for (size_t i = 0; i < alternatives.size(); ++i)
    expected += (i ? " or " : "") + alternatives[i];
  throw Error("recipe", key + ": " + path.string() + " has no " + expected);
}

void write_resolved_recipe(const ResolvedConfig& config, const fs::path& run_dir) {
  const fs::path file = run_dir / "recipe.yaml";
  const std::string header =
      "# Resolved recipe (every key set; hash " + config.hash() + "), written by tailor run.\n" +
      "# Repeat the run with: tailor run " + file.string() + "\n" +
      "# Relative paths are relative to the directory the run was started from.\n";
  fs::create_directories(run_dir);
  write_file_atomic(file, header + config.to_yaml(/*with_docs=*/true));
}

}  // namespace tailor
