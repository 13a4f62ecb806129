// "[2, 3, 4]" for error messages about tensor shapes.
#pragma once

#include <string>

#include <c10/util/ArrayRef.h>

namespace tailor {

std::string shape_string(c10::IntArrayRef shape);

}  // namespace tailor
