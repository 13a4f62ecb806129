// The --dtype option of `tailor score` and `tailor generate`: `auto` (the default) loads a model
// in the dtype it was saved in (saved_dtype, models/io/pretrained.h), so a bf16 Mistral-7B export
// is scored in bf16 (7.2 B parameters x 2 bytes), not widened to float32 (x 4 bytes).
#pragma once

#include <filesystem>
#include <string>

#include <c10/core/ScalarType.h>

#include "common/error.h"
#include "models/io/pretrained.h"

namespace tailor::cli {

inline at::ScalarType model_dtype(const std::string& option, const std::filesystem::path& model_dir,
                                  const char* scope) {
  if (option == "bfloat16" || option == "bf16") return at::kBFloat16;
  if (option == "float32" || option == "fp32") return at::kFloat;
  if (option != "auto")
    throw Error(scope, "--dtype: '" + option + "' is not auto, float32 or bfloat16");
  return saved_dtype(model_dir);
}

}  // namespace tailor::cli
