#include "train/checkpoint/rng_state.h"

#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace tailor {

namespace {

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

at::Tensor get_torch_cpu_rng_state() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_torch_cpu_rng_state(const at::Tensor& state) {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

std::string encode_base64(const at::Tensor& bytes) {
  const at::Tensor b = bytes.to(at::kCPU).contiguous();
  if (b.scalar_type() != at::kByte) throw Error("rng", "encode_base64 expects a uint8 tensor");
  const uint8_t* data = b.data_ptr<uint8_t>();
  const size_t n = static_cast<size_t>(b.numel());
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (size_t i = 0; i < n; i += 3) {
    const uint32_t chunk = (uint32_t{data[i]} << 16) |
                           (i + 1 < n ? uint32_t{data[i + 1]} << 8 : 0) |
                           (i + 2 < n ? uint32_t{data[i + 2]} : 0);
    out += kBase64Alphabet[(chunk >> 18) & 63];
    out += kBase64Alphabet[(chunk >> 12) & 63];
    out += i + 1 < n ? kBase64Alphabet[(chunk >> 6) & 63] : '=';
    out += i + 2 < n ? kBase64Alphabet[chunk & 63] : '=';
  }
  return out;
}

at::Tensor decode_base64(const std::string& text) {
  if (text.size() % 4 != 0) {
    throw Error("rng",
                "base64 text length " + std::to_string(text.size()) + " is not a multiple of 4");
  }
  std::vector<uint8_t> bytes;
  bytes.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    // Only the last group may end in "=" or "==".
    int pad = 0;
    if (i + 4 == text.size() && text[i + 3] == '=') pad = text[i + 2] == '=' ? 2 : 1;
    int v[4];
    for (int k = 0; k < 4; ++k) {
      v[k] = k >= 4 - pad ? 0 : base64_value(text[i + k]);
      if (v[k] < 0) {
        throw Error("rng", "invalid base64 character at offset " + std::to_string(i + k));
      }
    }
    const uint32_t chunk =
        (uint32_t(v[0]) << 18) | (uint32_t(v[1]) << 12) | (uint32_t(v[2]) << 6) | uint32_t(v[3]);
    bytes.push_back(static_cast<uint8_t>(chunk >> 16));
    if (pad < 2) bytes.push_back(static_cast<uint8_t>(chunk >> 8));
    if (pad < 1) bytes.push_back(static_cast<uint8_t>(chunk));
  }
  at::Tensor out = at::empty({static_cast<int64_t>(bytes.size())}, at::kByte);
  std::copy(bytes.begin(), bytes.end(), out.data_ptr<uint8_t>());
  return out;
}

std::string mt19937_to_string(const std::mt19937_64& engine) {
  std::ostringstream s;
  s << engine;
  return s.str();
}

std::mt19937_64 mt19937_from_string(const std::string& text) {
  std::istringstream s(text);
  std::mt19937_64 engine;
  s >> engine;
  if (s.fail()) throw Error("rng", "not a std::mt19937_64 state (expected 313 integers)");
  std::string rest;
  if (s >> rest)
    throw Error("rng", "trailing text after a std::mt19937_64 state: \"" + rest + "\"");
  return engine;
}

nlohmann::json capture_torch_rng_states() {
  nlohmann::json states;
  states["torch_cpu"] = encode_base64(get_torch_cpu_rng_state());
  if (at::hasCUDA()) {
    nlohmann::json cuda = nlohmann::json::array();
    for (int64_t i = 0; i < static_cast<int64_t>(torch::cuda::device_count()); ++i) {
      at::Generator gen = at::globalContext().defaultGenerator(
          c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(i)));
      std::lock_guard<std::mutex> lock(gen.mutex());
      cuda.push_back(encode_base64(gen.get_state()));
    }
    states["torch_cuda"] = cuda;
  }
  return states;
}

void restore_torch_rng_states(const nlohmann::json& states) {
  if (!states.is_object() || !states.contains("torch_cpu") || !states["torch_cpu"].is_string()) {
    throw Error("rng", "RNG state: expected an object with a string \"torch_cpu\"");
  }
  set_torch_cpu_rng_state(decode_base64(states["torch_cpu"].get<std::string>()));
  if (states.contains("torch_cuda") && at::hasCUDA()) {
    const auto& cuda = states["torch_cuda"];
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(cuda.size()),
                                        static_cast<int64_t>(torch::cuda::device_count()));
    for (int64_t i = 0; i < n; ++i) {
      at::Generator gen = at::globalContext().defaultGenerator(
          c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(i)));
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(decode_base64(cuda[i].get<std::string>()));
    }
  }
}

}  // namespace tailor
