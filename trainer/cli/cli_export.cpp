// tailor export --checkpoint RUN_OR_CKPT_DIR --out DIR [--merge-lora]

#include <iostream>

#include "dist/sharded_checkpoint.h"
#include "trainer/cli/cli_args.h"
#include "trainer/cli/commands.h"
#include "trainer/run/model_checkpoint.h"
#include "trainer/run/sharded_export.h"

namespace tailor::cli {
namespace fs = std::filesystem;

int export_command(const std::vector<std::string>& args) {
  CLI::App app{"Write a training checkpoint as a Hugging Face model directory (+ PEFT adapter).",
               args[0]};
  fs::path checkpoint, out;
  bool merge = false;
  app.add_option("--checkpoint", checkpoint,
                 "run directory (its latest checkpoint) or checkpoint directory")
      ->required();
  app.add_option("--out", out, "output directory (replaced whole)")->required();
  app.add_flag("--merge-lora", merge,
               "merge LoRA factors into the weights instead of writing an adapter");
  if (auto code = parse_arguments(app, args)) return *code;
  const fs::path dir = resolve_checkpoint_dir(checkpoint);
  ModelProvenance provenance;
  if (dist::is_sharded_checkpoint(dir)) {
    // Saved by several ranks, possibly too large for one: stream it tensor by tensor.
    export_checkpoint_streaming(dir, out, merge, &provenance);
  } else {
    CausalLM model = model_from_checkpoint(dir, &provenance);
    model->eval();
    export_model(*model, provenance, out, merge);
  }
  std::cout << "exported " << dir.string() << " -> " << out.string();
  if (provenance.lora && !merge)
    std::cout << " (PEFT adapter in " << (out / "adapter").string() << ")";
  std::cout << "\n";
  return 0;
}

}  // namespace tailor::cli
