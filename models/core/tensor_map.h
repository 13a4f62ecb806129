// Named tensors, ordered by name: the currency between checkpoints, models and exporters.
// Names are Hugging Face names (e.g. "transformer.h.0.attn.c_attn.weight").
#pragma once

#include <map>
#include <string>

#include <ATen/Tensor.h>

namespace tailor {

using TensorMap = std::map<std::string, at::Tensor>;

}  // namespace tailor
