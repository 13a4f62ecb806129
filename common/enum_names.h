// The names of an enum's values as recipes and the command line spell them: one table per enum,
// from which come parsing, printing and the list of allowed names in error messages.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace tailor {

template <class E>
using EnumNames = std::vector<std::pair<std::string, E>>;

// The name of `value`; std::logic_error when the table lacks it (a programming error).
template <class E>
const std::string& enum_name(const EnumNames<E>& table, E value) {
  for (const auto& [name, v] : table)
    if (v == value) return name;
  throw std::logic_error("enum value without a name");
}

template <class E>
std::optional<E> enum_from_name(const EnumNames<E>& table, const std::string& name) {
  for (const auto& [n, v] : table)
    if (n == name) return v;
  return std::nullopt;
}

// The names in table order.
template <class E>
std::vector<std::string> enum_name_list(const EnumNames<E>& table) {
  std::vector<std::string> names;
  for (const auto& [n, v] : table)
    names.push_back(n);
  return names;
}

// "a | b | c", for messages.
template <class E>
std::string enum_choices(const EnumNames<E>& table) {
  std::string out;
  for (const auto& [n, v] : table)
    out += (out.empty() ? "" : " | ") + n;
  return out;
}

}  // namespace tailor
