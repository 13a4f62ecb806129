// Helpers that many tests share: the message of an expected error, fresh temporary directories,
// running a shell command, and comparisons of tensors and of flat vectors. Header-only, in
// tailor::test, and always called qualified (test::error_of, tailor::test::fresh_dir): the tests
// also build as one translation unit (a unity build), where the files' own helpers, in anonymous
// namespaces, may have the same names and must neither clash with these nor be shadowed by them.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "models/core/lora.h"

// Checks that `haystack` contains `needle` (both strings or string literals); each is evaluated
// once, and a failure shows both. A macro, as gtest's own checks are, so that the failure names
// the test's line.
#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_PRED_FORMAT2(::tailor::test::assert_contains, haystack, needle)

namespace tailor::test {

// EXPECT_CONTAINS's predicate.
inline ::testing::AssertionResult assert_contains(const char* haystack_expr,
                                                  const char* needle_expr,
                                                  const std::string& haystack,
                                                  const std::string& needle) {
  if (haystack.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << haystack_expr << " lacks " << needle_expr << "\n"
                                       << "expected to find: " << needle << "\n"
                                       << "              in: " << haystack;
}

// The message of the `E` (tailor::Error unless given) that `fn` throws. For calls that must
// throw: when `fn` throws nothing, that is a test failure, reported at the caller's line, and
// the result is "". Any other exception propagates and fails the test.
template <typename E = Error, typename Fn>
std::string error_of(Fn&& fn, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE_AT(file, line) << "expected an exception, but none was thrown";
  return "";
}

// The message of the `E` that `fn` throws, or "" when it throws none: for calls that should
// succeed, where the test checks the message (EXPECT_EQ(test::error_or_empty(...), "") shows it)
// or must clean up before it fails.
template <typename E = Error, typename Fn>
std::string error_or_empty(Fn&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

// <system temp dir>/tailor_<name>, with whatever an earlier run left there removed, so that a
// test sees only what it writes itself. Not created: for code under test that must create it.
inline std::filesystem::path fresh_path(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("tailor_" + name);
  std::filesystem::remove_all(dir);
  return dir;
}

// fresh_path(name), created empty.
inline std::filesystem::path fresh_dir(const std::string& name) {
  const std::filesystem::path dir = fresh_path(name);
  std::filesystem::create_directories(dir);
  return dir;
}

// fresh_dir(name + "_<pid>"): for tests that may run at the same time in separate processes
// (ctest runs one per suite), which must not remove each other's directories.
inline std::filesystem::path fresh_process_dir(const std::string& name) {
  return fresh_dir(name + "_" + std::to_string(::getpid()));
}

// A shell command's exit status (pclose's: 0 is success, -1 when it could not start) and what it
// printed, stdout and stderr together.
struct CommandResult {
  int status = 0;
  std::string output;
};

inline CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return {-1, ""};
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe))
    r.output.append(buffer, n);
  r.status = pclose(pipe);
  return r;
}

// The output of a command that must succeed: a non-zero exit is a test failure showing the
// command and its output.
inline std::string run_ok(const std::string& command) {
  const CommandResult r = run_command(command);
  EXPECT_EQ(r.status, 0) << command << "\n" << r.output;
  return r.output;
}

// Every non-empty line of `text`, parsed as JSON (a command's JSONL output).
inline std::vector<nlohmann::json> parse_lines(const std::string& text) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// `text` as a JSON string literal, escaped down to ASCII: failure output that shows every byte.
inline std::string show(const std::string& text) {
  return nlohmann::json(text).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

inline bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// The elements of `t`, in float64, flattened in row-major order.
inline std::vector<double> to_vec(const at::Tensor& t) {
  const at::Tensor d = t.detach().to(at::kDouble).contiguous().reshape({-1});
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

// sum a[i] b[i] (over a's size: b must be as long).
inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i)
    s += a[i] * b[i];
  return s;
}

// max |a - b| over the elements, in float64.
inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// max |a[i] - b[i]|; vectors of different sizes are a test failure (compared as far as both go).
inline double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// max |a[i]|.
inline double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double x : a)
    m = std::max(m, std::abs(x));
  return m;
}

// `count` token ids below `vocab`, from a 64-bit LCG seeded with `seed`: the same ids on every
// platform and libtorch version.
inline std::vector<int64_t> random_ids(int64_t count, int64_t vocab, uint64_t seed) {
  std::vector<int64_t> ids(count);
  uint64_t state = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  for (auto& id : ids) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    id = static_cast<int64_t>((state >> 33) % static_cast<uint64_t>(vocab));
  }
  return ids;
}

// `values` as a [B, T] int64 tensor.
inline at::Tensor as_tensor(const std::vector<int64_t>& values, int64_t B, int64_t T) {
  return torch::tensor(values, torch::kLong).view({B, T});
}

// Gives every LoRA factor of `model` N(0, 0.3^2) values (B too, so the adapter changes the
// output), from a generator seeded with `seed`: the default generator is untouched.
inline void randomize_lora(torch::nn::Module& model, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  for (auto& item : lora_parameters(model))
    item.value().copy_(at::normal(0.0, 0.3, item.value().sizes(), gen));
}

}  // namespace tailor::test
