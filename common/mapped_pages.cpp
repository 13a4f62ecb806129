#include "common/mapped_pages.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

namespace tailor {

void drop_mapped_pages(const void* data, size_t bytes) {
  if (bytes == 0) return;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t first = reinterpret_cast<uintptr_t>(data);
  // Only pages wholly inside the range: a neighbour's bytes may share the edge pages.
  const uintptr_t lo = (first + page - 1) / page * page;
  const uintptr_t hi = (first + bytes) / page * page;
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

}  // namespace tailor
