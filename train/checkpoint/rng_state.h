// Random-number-generator state for bit-exact resume: torch's default generators (dropout,
// randn, randperm) and our own std::mt19937_64 samplers, as values that fit in
// trainer_state.json.
#pragma once

#include <random>
#include <string>

#include <ATen/Tensor.h>
#include <nlohmann/json_fwd.hpp>

namespace tailor {

// The default CPU generator's state (at::detail::getDefaultCPUGenerator().get_state()): a uint8
// tensor (5056 bytes for torch's mt19937 + normal-cache state).
at::Tensor get_torch_cpu_rng_state();
void set_torch_cpu_rng_state(const at::Tensor& state);

// Base64 (RFC 4648, with padding) of a uint8 tensor's bytes and back, for JSON.
std::string encode_base64(const at::Tensor& bytes);
at::Tensor decode_base64(const std::string& text);  // throws tailor::Error("rng", ...) if invalid

// mt19937_64 state as its standard text form (operator<<), and back; the standard guarantees
// the restored engine produces the same sequence.
std::string mt19937_to_string(const std::mt19937_64& engine);
std::mt19937_64 mt19937_from_string(const std::string& text);

// {"torch_cpu": "<base64>", "torch_cuda": ["<base64>", ...] (only when CUDA is present)}.
nlohmann::json capture_torch_rng_states();
// Restores what capture_torch_rng_states() produced. CUDA states are restored for the devices
// present in both the capture and this process.
void restore_torch_rng_states(const nlohmann::json& states);

}  // namespace tailor
