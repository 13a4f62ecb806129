// The --dtype option of `tailor score` and `tailor generate`: `auto` (the default) loads a model
// in the dtype it was saved in, as its config.json says (`torch_dtype`, or `dtype` from newer
// transformers), so a bf16 Mistral-7B export is scored in bf16 (7.2 B parameters x 2 bytes),
// not widened to float32 (x 4 bytes). Only bfloat16 is kept: float16 weights are widened to
// float32, which holds them exactly (fp16 arithmetic is slow or missing on CPUs), as is a config
// that names no dtype.
#pragma once

#include <filesystem>
#include <string>

#include <c10/core/ScalarType.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"

namespace tailor::cli {

inline at::ScalarType model_dtype(const std::string& option, const std::filesystem::path& model_dir,
                                  const char* scope) {
  if (option == "bfloat16" || option == "bf16") return at::kBFloat16;
  if (option == "float32" || option == "fp32") return at::kFloat;
  if (option != "auto")
    throw Error(scope, "--dtype: '" + option + "' is not auto, float32 or bfloat16");
  const std::filesystem::path file = model_dir / "config.json";
  if (!std::filesystem::is_regular_file(file)) return at::kFloat;  // the loader names the problem
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(read_file(file));
  } catch (const nlohmann::json::exception& e) {
    throw Error(scope, file.string() + ": not valid JSON (" + e.what() + ")");
  }
  for (const char* key : {"torch_dtype", "dtype"})
    if (config.contains(key) && config[key].is_string())
      return config[key].get<std::string>() == "bfloat16" ? at::kBFloat16 : at::kFloat;
  return at::kFloat;
}

}  // namespace tailor::cli
