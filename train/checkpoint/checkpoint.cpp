#include "train/checkpoint/checkpoint.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <regex>

#include "common/atomic_file.h"
#include "common/error.h"
#include "models/io/safetensors.h"

namespace tailor {
namespace fs = std::filesystem;

namespace {

constexpr const char* kModelFile = "model.safetensors";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kStateFile = "trainer_state.json";
constexpr const char* kLatestFile = "latest";
constexpr const char* kFormat = "tailor-checkpoint/1";

// The step of a directory name "step_<digits>", or -1 for anything else (including the hidden
// ".step_....tmp.<pid>" directories of saves in progress).
int64_t step_of(const std::string& name) {
  static const std::regex pattern("step_([0-9]{1,18})");
  std::smatch m;
  if (!std::regex_match(name, m, pattern)) return -1;
  return std::stoll(m[1].str());
}

// Either layout: single-process (model + optimizer + state) or sharded (manifest + state; see
// train/checkpoint/sharded_checkpoint.h, whose shard files the manifest names).
bool is_complete(const fs::path& dir) {
  if (!fs::is_regular_file(dir / kStateFile)) return false;
  return (fs::is_regular_file(dir / kModelFile) && fs::is_regular_file(dir / kOptimizerFile)) ||
         fs::is_regular_file(dir / "manifest.json");
}

int64_t get_int(const nlohmann::json& json, const char* key, const std::string& source) {
  auto it = json.find(key);
  if (it == json.end() || !it->is_number_integer()) {
    throw Error("checkpoint", source + ": \"" + key + "\" must be an integer");
  }
  return it->get<int64_t>();
}

// Removes leftovers of saves by processes that no longer exist (".step_X.tmp.<pid>",
// ".step_X.old.<pid>"); a 124M-parameter leftover is ~1.5 GB.
void remove_stale_temporaries(const fs::path& root) {
  static const std::regex pattern(R"(\.step_[0-9]+\.(tmp|old)\.([0-9]+))");
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    std::smatch m;
    if (!std::regex_match(name, m, pattern)) continue;
    const pid_t pid = static_cast<pid_t>(std::stoll(m[2].str()));
    const bool alive = ::kill(pid, 0) == 0 || errno == EPERM;
    if (!alive) fs::remove_all(entry.path(), ec);
  }
}

}  // namespace

nlohmann::json trainer_state_to_json(const TrainerState& state) {
  nlohmann::json json;
  json["format"] = kFormat;
  json["step"] = state.step;
  json["epoch"] = state.epoch;
  json["sample_position"] = state.sample_position;
  json["recipe_hash"] = state.recipe_hash;
  json["rng"] = state.rng;
  json["extra"] = state.extra;
  return json;
}

TrainerState trainer_state_from_json(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) throw Error("checkpoint", source + ": expected a JSON object");
  if (json.value("format", std::string()) != kFormat) {
    throw Error("checkpoint", source + ": \"format\" must be \"" + std::string(kFormat) + "\"");
  }
  TrainerState state;
  state.step = get_int(json, "step", source);
  state.epoch = get_int(json, "epoch", source);
  state.sample_position = get_int(json, "sample_position", source);
  auto hash = json.find("recipe_hash");
  if (hash == json.end() || !hash->is_string()) {
    throw Error("checkpoint", source + ": \"recipe_hash\" must be a string");
  }
  state.recipe_hash = hash->get<std::string>();
  state.rng = json.value("rng", nlohmann::json());
  state.extra = json.value("extra", nlohmann::json());
  return state;
}

std::string checkpoint_dir_name(int64_t step) {
  if (step < 0) throw Error("checkpoint", "step must be >= 0, got " + std::to_string(step));
  char buf[32];
  std::snprintf(buf, sizeof(buf), "step_%08lld", static_cast<long long>(step));
  return buf;
}

fs::path checkpoints_root(const fs::path& run_dir) {
  return run_dir / "checkpoints";
}

fs::path save_checkpoint(const fs::path& run_dir, const TensorMap& model,
                         const TensorMap& optimizer, const TrainerState& state,
                         const SaveCheckpointOptions& options) {
  const fs::path root = checkpoints_root(run_dir);
  const std::string name = checkpoint_dir_name(state.step);
  const fs::path dir = root / name;
  write_dir_atomic(dir, [&](const fs::path& tmp) {
    safetensors::save(tmp / kModelFile, model);
    safetensors::save(tmp / kOptimizerFile, optimizer);
    if (options.write_extra) options.write_extra(tmp);
    // Last, so a directory without it is recognisably incomplete even outside write_dir_atomic.
    write_file_atomic(tmp / kStateFile, trainer_state_to_json(state).dump(2) + "\n");
  });
  publish_checkpoint(run_dir, name, options.keep_last);
  return dir;
}

void publish_checkpoint(const fs::path& run_dir, const std::string& name, int keep_last) {
  const fs::path root = checkpoints_root(run_dir);
  write_file_atomic(root / kLatestFile, name + "\n");

  remove_stale_temporaries(root);
  if (keep_last > 0) {
    std::vector<fs::path> others;
    for (const auto& p : list_checkpoints(run_dir)) {
      if (p.filename() != name) others.push_back(p);
    }
    // Newest first; the one just written always stays.
    std::reverse(others.begin(), others.end());
    for (size_t i = static_cast<size_t>(keep_last) - 1; i < others.size(); ++i) {
      fs::remove_all(others[i]);
    }
  }
}

Checkpoint load_checkpoint(const fs::path& checkpoint_dir) {
  for (const char* file : {kModelFile, kOptimizerFile, kStateFile}) {
    if (!fs::is_regular_file(checkpoint_dir / file)) {
      throw Error("checkpoint", checkpoint_dir.string() + ": missing " + file);
    }
  }
  Checkpoint ckpt;
  ckpt.dir = checkpoint_dir;
  const fs::path state_path = checkpoint_dir / kStateFile;
  nlohmann::json json =
      nlohmann::json::parse(read_file(state_path), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) throw Error("checkpoint", state_path.string() + ": not valid JSON");
  ckpt.state = trainer_state_from_json(json, state_path.string());
  ckpt.model = safetensors::load(checkpoint_dir / kModelFile);
  ckpt.optimizer = safetensors::load(checkpoint_dir / kOptimizerFile);
  return ckpt;
}

std::vector<fs::path> list_checkpoints(const fs::path& run_dir) {
  std::vector<std::pair<int64_t, fs::path>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(checkpoints_root(run_dir), ec)) {
    const int64_t step = step_of(entry.path().filename().string());
    if (step >= 0 && entry.is_directory() && is_complete(entry.path())) {
      found.emplace_back(step, entry.path());
    }
  }
  std::sort(found.begin(), found.end());
  std::vector<fs::path> dirs;
  for (auto& f : found)
    dirs.push_back(std::move(f.second));
  return dirs;
}

std::optional<fs::path> latest_checkpoint(const fs::path& run_dir) {
  const fs::path root = checkpoints_root(run_dir);
  const fs::path latest = root / kLatestFile;
  if (fs::is_regular_file(latest)) {
    std::string name = read_file(latest);
    while (!name.empty() && (name.back() == '\n' || name.back() == '\r' || name.back() == ' ')) {
      name.pop_back();
    }
    // Only a plain "step_<digits>" name is trusted; anything else falls back to scanning.
    if (step_of(name) >= 0 && is_complete(root / name)) return root / name;
  }
  std::vector<fs::path> all = list_checkpoints(run_dir);
  if (all.empty()) return std::nullopt;
  return all.back();
}

}  // namespace tailor
