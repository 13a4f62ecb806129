// The header of a Markdown table, as the stages' table.md files and `tailor sweep` write it:
//   | corner | column 1 | column 2 |
//   |---|---:|---:|
// The first column is left-aligned (names); the others take `align` ("---:" right-aligns
// numbers, "---" leaves them to the renderer).
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace tailor {

inline void write_markdown_header(std::ostream& out, const std::string& corner,
                                  const std::vector<std::string>& columns,
                                  const std::string& align = "---:") {
  out << "| " << corner << " |";
  for (const auto& column : columns)
    out << " " << column << " |";
  out << "\n|---|";
  for (size_t i = 0; i < columns.size(); ++i)
    out << align << "|";
  out << "\n";
}

}  // namespace tailor
