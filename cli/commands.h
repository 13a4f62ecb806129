// The `tailor` subcommands. Each takes the arguments after the subcommand name
// (args[0] is "tailor <name>") and returns the process exit code.
#pragma once

#include <string>
#include <vector>

namespace tailor::cli {

int run_command(const std::vector<std::string>& args);       // tailor run RECIPE [k=v ...]
int tokenize_command(const std::vector<std::string>& args);  // tailor tokenize
int score_command(const std::vector<std::string>& args);     // tailor score
int generate_command(const std::vector<std::string>& args);  // tailor generate
int export_command(const std::vector<std::string>& args);    // tailor export
int data_command(const std::vector<std::string>& args);      // tailor data import ...
int bench_command(const std::vector<std::string>& args);     // tailor bench
int sweep_command(const std::vector<std::string>& args);     // tailor sweep RECIPE... --seeds
int report_command(const std::vector<std::string>& args);    // tailor report RUN_DIR [--out DIR]
int elicit_command(const std::vector<std::string>& args);    // tailor elicit --recipe R --user U

}  // namespace tailor::cli
