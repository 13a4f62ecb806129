#include "common/device.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/cuda.h>
#include <torch/version.h>

#ifdef TAILOR_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "common/error.h"

// LibTorch 2.4 replaced the per-device autocast setters with ones that take the device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define TAILOR_AUTOCAST_BY_DEVICE_TYPE 1
#endif

namespace tailor {

bool cuda_build() {
#ifdef TAILOR_WITH_CUDA
  return true;
#else
  return false;
#endif
}

bool cuda_usable() {
  return cuda_build() && torch::cuda::is_available();
}

const EnumNames<DeviceType>& device_type_names() {
  static const EnumNames<DeviceType> table = {{"cpu", DeviceType::kCpu},
                                              {"cuda", DeviceType::kCuda}};
  return table;
}

const std::string& to_string(DeviceType type) {
  return enum_name(device_type_names(), type);
}

DeviceType device_type_from_name(const std::string& name, const std::string& what) {
  if (const auto type = enum_from_name(device_type_names(), name)) return *type;
  throw Error("device", what + ": \"" + name + "\" is not a device; expected " +
                            enum_choices(device_type_names()));
}

c10::Device resolve_device(DeviceType type, int local_rank, const std::string& what) {
  if (type == DeviceType::kCpu) return c10::Device(c10::kCPU);
  if (!cuda_build())
    throw Error("device", what +
                              ": cuda: this tailor was built without CUDA (a CPU build); "
                              "rebuild with -DTAILOR_WITH_CUDA=ON against a CUDA LibTorch "
                              "(docs/gpu.md), or use cpu");
  const int64_t gpus = static_cast<int64_t>(torch::cuda::device_count());
  if (gpus == 0)
    throw Error("device", what +
                              ": cuda: no CUDA GPU is visible to this process (check "
                              "nvidia-smi and CUDA_VISIBLE_DEVICES), or use cpu");
  if (local_rank >= gpus)
    throw Error("device", what + ": cuda: this is local rank " + std::to_string(local_rank) +
                              " but only " + std::to_string(gpus) +
                              " GPU(s) are visible; launch at most one rank per GPU");
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
}

void synchronize(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

#ifdef TAILOR_WITH_CUDA
namespace {
// The caching allocator's statistics exist once CUDA is initialised, which LibTorch does lazily
// at the first CUDA tensor ("Invalid device argument ...: did you call init?" before that).
void initialise_cuda(const c10::Device& device) {
  (void)at::empty({0}, at::TensorOptions().device(device));
}
}  // namespace
#endif

double device_peak_allocated_mib(const c10::Device& device) {
#ifdef TAILOR_WITH_CUDA
  if (device.is_cuda()) {
    initialise_cuda(device);
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    // Index 0 is StatType::AGGREGATE in both LibTorch 1.13 and 2.x (the enum moved namespaces).
    return static_cast<double>(stats.allocated_bytes[0].peak) / (1024.0 * 1024.0);
  }
#endif
  return -1;
}

void reset_device_peak(const c10::Device& device) {
#ifdef TAILOR_WITH_CUDA
  if (device.is_cuda()) {
    initialise_cuda(device);
    c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
  }
#endif
}

AutocastScope::AutocastScope(bool enabled, const c10::Device& device)
    : enabled_(enabled), cuda_(device.is_cuda()) {
  if (!enabled_) return;
#ifdef TAILOR_AUTOCAST_BY_DEVICE_TYPE
  const auto type = cuda_ ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
  at::autocast::set_autocast_enabled(type, true);
  at::autocast::set_autocast_dtype(type, at::kBFloat16);
#else
  if (cuda_) {
    at::autocast::set_enabled(true);
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
  } else {
    at::autocast::set_cpu_enabled(true);
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  }
#endif
}

AutocastScope::~AutocastScope() {
  if (!enabled_) return;
#ifdef TAILOR_AUTOCAST_BY_DEVICE_TYPE
  at::autocast::set_autocast_enabled(cuda_ ? c10::DeviceType::CUDA : c10::DeviceType::CPU, false);
#else
  if (cuda_) {
    at::autocast::set_enabled(false);
  } else {
    at::autocast::set_cpu_enabled(false);
  }
#endif
  at::autocast::clear_cache();
}

}  // namespace tailor
