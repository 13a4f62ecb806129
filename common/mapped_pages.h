// Reading a large file through a memory mapping leaves every page read resident in the reading
// process: RSS (and its peak, which tailor reports and a 24 GiB machine must respect) grows by
// the whole file although the pages are only page cache. Dropping the pages once copied keeps
// a streaming reader's RSS at what it holds; the page cache keeps them for the next reader.
#pragma once

#include <cstddef>

namespace tailor {

// Drops the whole pages of a read-only mapping that lie in [data, data + bytes) (the pages are
// read again from the file if touched later). A no-op for memory that is not a file mapping.
void drop_mapped_pages(const void* data, size_t bytes);

}  // namespace tailor
