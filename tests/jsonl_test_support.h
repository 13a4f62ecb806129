// Reading JSONL files in tests (run outputs: metrics.jsonl, pairs.jsonl, eval_pairs.jsonl, ...).
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tailor::testing {

// Every non-empty line of a JSONL file, parsed.
inline std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& file) {
  std::vector<nlohmann::json> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace tailor::testing
