// Lists of names in error messages, kept short: "a, b, c, ... (40 in all)".
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace tailor {

// The first `limit` names joined with ", ", then how many there are in all when more.
std::string list_some(const std::vector<std::string>& names, size_t limit = 8);

}  // namespace tailor
