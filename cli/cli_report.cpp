// tailor report RUN_DIR [--out DIR]
//
// Draws a run's curves and tables as SVG files plus an index.html showing them all, written by
// tailor itself into RUN_DIR/report/ (or --out DIR), and prints the written paths. Which figures a
// stage gets: docs/report.md. Pieces a run does not have yet (no summary.json, no eval records)
// are skipped with a note, printed to stderr and listed in index.html.
#include <iostream>
#include <string>
#include <vector>

#include "cli/cli_args.h"
#include "cli/commands.h"
#include "cli/report/run_report.h"

namespace tailor::cli {

int report_command(const std::vector<std::string>& args) {
  CLI::App app{"Draw a run's curves and tables as SVG files plus an index.html (RUN_DIR/report/).",
               args.at(0)};
  std::string run_dir, out_dir;
  app.add_option("run_dir", run_dir, "run directory (recipe.yaml, metrics.jsonl, summary.json)")
      ->required();
  app.add_option("--out", out_dir, "where to write the report (default RUN_DIR/report)");
  if (auto code = parse_arguments(app, args)) return *code;
  if (out_dir.empty()) out_dir = (std::filesystem::path(run_dir) / "report").string();
  const report::WrittenReport written = report::write_report(run_dir, out_dir);
  for (const auto& note : written.notes)
    std::cerr << "note: " << note << "\n";
  for (const auto& path : written.files)
    std::cout << path.string() << "\n";
  return 0;
}

}  // namespace tailor::cli
