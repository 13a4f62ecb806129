// tailor: one binary, one subcommand per job. See README.md.
#include <malloc.h>

#include <ATen/Parallel.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "common/crash_report.h"
#include "common/error.h"
#include "dist/runtime.h"

namespace {

struct Subcommand {
  std::function<int(const std::vector<std::string>&)> run;
  const char* summary;
};

const std::map<std::string, Subcommand>& subcommands() {
  static const std::map<std::string, Subcommand> table = {
      {"run", {tailor::cli::run_command, "run a recipe: tailor run RECIPE.yaml [key=value ...]"}},
      {"tokenize", {tailor::cli::tokenize_command, "text <-> GPT-2 token ids as JSON"}},
      {"score", {tailor::cli::score_command, "summed negative log-likelihood per JSONL line"}},
      {"generate", {tailor::cli::generate_command, "text generation with a KV cache"}},
      {"export",
       {tailor::cli::export_command, "checkpoint -> Hugging Face directory / PEFT adapter"}},
      {"data", {tailor::cli::data_command, "import JSONL into an HDF5 store"}},
      {"elicit",
       {tailor::cli::elicit_command,
        "ask a user (a person: --interactive) an elicit recipe's questions"}},
      {"bench", {tailor::cli::bench_command, "GPT-2 124M training-step benchmark"}},
      {"sweep",
       {tailor::cli::sweep_command,
        "run recipes over seeds, print the accuracy/convergence table"}},
      {"report",
       {tailor::cli::report_command, "draw a run's curves and tables: SVG files + index.html"}},
  };
  return table;
}

void usage(std::FILE* out) {
  std::fprintf(out, "usage: tailor <command> [options]\n\ncommands:\n");
  for (const auto& [name, cmd] : subcommands())
    std::fprintf(out, "  %-10s %s\n", name.c_str(), cmd.summary);
  std::fprintf(out, "\n`tailor <command> --help` describes each command.\n");
}

}  // namespace

int main(int argc, char** argv) {
  tailor::install_crash_report();
  // Training allocates and frees vocabulary-sized buffers ([B, T, V] logits and their grads) every
  // step. glibc serves those with fresh mmaps and page-faults them in each time (measured: over
  // half of a small model's step time); keeping freed memory in the heap avoids that.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  // Debian's LibTorch starts with one intra-op thread; use every core unless the user chose.
  if (std::getenv("OMP_NUM_THREADS") == nullptr) {
    at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  }
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const std::string name = argv[1];
  if (name == "-h" || name == "--help" || name == "help") {
    usage(stdout);
    return 0;
  }
  auto it = subcommands().find(name);
  if (it == subcommands().end()) {
    std::fprintf(stderr, "tailor: unknown command '%s'\n\n", name.c_str());
    usage(stderr);
    return 2;
  }
  std::vector<std::string> args{"tailor " + name};
  for (int i = 2; i < argc; ++i)
    args.emplace_back(argv[i]);
  // Under mpirun this initializes MPI; one process alone never touches MPI.
  tailor::dist::Runtime runtime(&argc, &argv);
  try {
    return it->second.run(args);
  } catch (const std::exception& e) {
    // With several ranks, the others may be waiting in a collective: end them all.
    if (tailor::dist::world().world_size() > 1) tailor::dist::abort_all(e.what());
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
