// tailor bench --suite dpo_users: N users' per-user DPO on one base, two ways over the same pairs:
// one multi-adapter run (an adapter bank, each step one mixed batch of every user's pairs) and N
// single-adapter runs one after another (classic LoRA, each step that user's pairs alone).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace tailor::cli {

// Seconds on the monotonic clock, for the bench suites' timings.
inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct DpoUsersBench {
  std::string preset = "gpt2-tiny";
  int64_t users = 16;
  int64_t pairs_per_user = 2;  // per step
  int64_t steps = 4;
  int64_t prompt_tokens = 16;
  int64_t response_tokens = 16;
  std::string device = "cpu";  // cpu or cuda (CUDA builds)
};

// Prints a table and returns {multi: {...}, single: {...}} with seconds, tokens/s, peak memory
// (process peak RSS on the CPU, peak CUDA allocation on a GPU) and the parameter bytes each way
// holds.
nlohmann::json bench_dpo_users(const DpoUsersBench& options);

}  // namespace tailor::cli
