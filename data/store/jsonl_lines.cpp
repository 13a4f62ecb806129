#include "data/store/jsonl_lines.h"

#include "common/error.h"

namespace tailor::data {

JsonlReader::JsonlReader(const std::filesystem::path& path)
    : path_(path), in_(path, std::ios::binary) {
  if (!in_) throw Error("data", path.string() + ": cannot open for reading");
}

bool JsonlReader::next(std::string& line) {
  while (std::getline(in_, line)) {
    ++line_number_;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t\r\n\f\v") != std::string::npos) return true;
  }
  if (in_.bad())
    throw Error("data", path_.string() + ": read error after line " + std::to_string(line_number_));
  return false;
}

nlohmann::json JsonlReader::parse_object(const std::string& line) const {
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at ..."; keep the readable part.
    std::string what = e.what();
    const size_t tag_end = what.find("] ");
    if (tag_end != std::string::npos) what = what.substr(tag_end + 2);
    throw Error("data", where() + ": invalid JSON (" + what + ")");
  }
  if (!value.is_object())
    throw Error("data",
                where() + ": expected a JSON object, got " + std::string(value.type_name()));
  return value;
}

void JsonlReader::fail(const std::string& key, const std::string& expected) const {
  throw Error("data", where() + ": " + key + ": " + expected);
}

}  // namespace tailor::data
