// `tailor report RUN_DIR`: reads a run directory (recipe.yaml, metrics.jsonl, summary.json),
// decides which figures its stage gets, and writes them as SVG plus an index.html that shows
// them all. docs/report.md lists the figures per stage.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/report/charts.h"

namespace tailor::report {

struct MetricsRecord {
  int64_t line = 0;  // 1-based line in metrics.jsonl
  double step = 0;
  nlohmann::json values;  // the whole record (including "step" and "time")
};

struct MetricsLog {
  std::filesystem::path path;
  std::vector<MetricsRecord> records;
  std::vector<std::string> notes;  // e.g. an incomplete last line that was skipped
};

// Parses metrics.jsonl. Blank lines are skipped; a line that is not a JSON object with a numeric
// "step" throws tailor::Error naming "path:line", except an unterminated last line (a run writing
// it right now), which is skipped with a note.
MetricsLog read_metrics(const std::filesystem::path& path);

// A series over every record that has `key`: a number is a point (x = step), null is a gap (the
// line breaks there); records without the key, or with a non-number, are not part of it.
Series metric_series(const MetricsLog& log, const std::string& key, const std::string& name);

// The names u, in order of first appearance, for which some record has the key prefix + u + suffix
// (u non-empty), e.g. users_in(log, "users/", "/loss").
std::vector<std::string> users_in(const MetricsLog& log, const std::string& prefix,
                                  const std::string& suffix);

struct Figure {
  std::string file;   // e.g. "loss.svg"
  std::string title;  // also the caption in index.html
  std::string svg;
};

struct RunReport {
  std::string stage;
  std::vector<Figure> figures;
  std::vector<std::string> notes;  // what was skipped and why
  std::string index_html;
};

// Reads the run and builds every figure and the index page; writes nothing. Throws tailor::Error
// naming the path for a missing RUN_DIR or metrics.jsonl, a malformed metrics line (path:line),
// an unreadable recipe.yaml or summary.json.
RunReport build_report(const std::filesystem::path& run_dir);

struct WrittenReport {
  std::vector<std::filesystem::path> files;  // the SVGs in figure order, then index.html
  std::vector<std::string> notes;
};

// build_report, then writes each file into out_dir (created if needed) via a temporary + rename.
WrittenReport write_report(const std::filesystem::path& run_dir,
                           const std::filesystem::path& out_dir);

}  // namespace tailor::report
