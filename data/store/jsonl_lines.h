// Reading JSONL input for the importers: non-blank lines with their 1-based numbers, and each
// parsed as a JSON object, with errors that name "<file>:<line>".
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace tailor::data {

class JsonlReader {
 public:
  // Throws Error("data", ...) naming the file when it cannot be opened.
  explicit JsonlReader(const std::filesystem::path& path);
  // Next non-blank line (without a trailing '\r'); false at end of file.
  bool next(std::string& line);
  int64_t line_number() const { return line_number_; }
  std::string where() const { return path_.string() + ":" + std::to_string(line_number_); }
  // `line` as a JSON object; throws "<file>:<line>: invalid JSON (...)" or "... expected a JSON
  // object, got <type>".
  nlohmann::json parse_object(const std::string& line) const;
  // Throws Error("data", "<file>:<line>: <key>: <expected>").
  [[noreturn]] void fail(const std::string& key, const std::string& expected) const;

 private:
  std::filesystem::path path_;
  std::ifstream in_;
  int64_t line_number_ = 0;
};

}  // namespace tailor::data
