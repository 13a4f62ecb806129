// Shared command-line parsing for the subcommands (CLI11).
#pragma once

#include <CLI/CLI.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/enum_names.h"

namespace tailor::cli {

// Parses args (args[0] = "tailor <command>"). Returns an exit code when the command must stop
// here (--help printed: 0; usage error printed: non-zero), nullopt to go on.
inline std::optional<int> parse_arguments(CLI::App& app, const std::vector<std::string>& args) {
  std::vector<std::string> reversed(args.rbegin(), args.rend() - 1);  // CLI11 pops from the back
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return std::nullopt;
}

// For CLI::CheckedTransformer: an option bound to an enum, spelled as in recipes; an unknown
// name is a usage error listing the allowed ones.
template <class E>
std::map<std::string, E> enum_map(const EnumNames<E>& names) {
  return std::map<std::string, E>(names.begin(), names.end());
}

}  // namespace tailor::cli
