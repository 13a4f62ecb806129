// Where a run's tensors live (recipe key dist.device, `tailor bench --device`), and the few
// device operations the trainer needs that differ between CPU and CUDA: waiting for queued work,
// peak memory, and bf16 autocast. Compiles against CPU-only LibTorch 1.13 and CUDA LibTorch 2.x;
// the CUDA parts are built only with TAILOR_WITH_CUDA (CMake option of the same name).
#pragma once

#include <string>

#include <c10/core/Device.h>

#include "common/enum_names.h"

namespace tailor {

// Whether this binary was built with the CUDA path (TAILOR_WITH_CUDA) and sees a GPU now.
bool cuda_build();
bool cuda_usable();

enum class DeviceType { kCpu, kCuda };
// "cpu", "cuda": the names recipes (dist.device) and `--device` flags use.
const EnumNames<DeviceType>& device_type_names();
const std::string& to_string(DeviceType type);
// The device named `name`; Error("device", ...) naming `what` and the allowed names otherwise.
DeviceType device_type_from_name(const std::string& name, const std::string& what);

// kCpu -> CPU; kCuda -> the GPU of this process's local rank (local_rank modulo the visible GPUs
// is not done: a rank without its own GPU is an error naming `what`, e.g. "dist.device").
// Throws Error("device", ...) when this build has no CUDA or no GPU is visible.
c10::Device resolve_device(DeviceType type, int local_rank, const std::string& what);

// Waits for the work queued on `device` (no-op on CPU): host timers read after this are honest.
void synchronize(const c10::Device& device);

// CUDA caching allocator: peak bytes held by tensors on `device` since the last reset, in MiB
// (-1 on CPU; use peak_rss_mib() there).
double device_peak_allocated_mib(const c10::Device& device);
void reset_device_peak(const c10::Device& device);

// bf16 autocast for the forward/backward passes on `device` (CPU or CUDA), as a scope: float32
// weights, matmuls in bfloat16. Disabled guards do nothing.
class AutocastScope {
 public:
  AutocastScope(bool enabled, const c10::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_;
  bool cuda_;
};

}  // namespace tailor
