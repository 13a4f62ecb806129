// tailor export --checkpoint RUN_OR_CKPT_DIR --out DIR [--merge-lora] [--user NAME]
//
// A per-user DPO run holds one adapter per user: --user picks whose model to write (the base
// plus that user's PEFT adapter in out/adapter, or with --merge-lora that user's merged model).

#include <iostream>

#include "common/error.h"

#include "cli/cli_args.h"
#include "cli/commands.h"
#include "train/checkpoint/dpo_checkpoint.h"
#include "train/checkpoint/model_checkpoint.h"
#include "train/checkpoint/sharded_checkpoint.h"
#include "train/checkpoint/sharded_export.h"

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
  std::string user;
  app.add_option("--user", user,
                 "per-user DPO checkpoints: the user whose adapter to export (or merge)");
  if (auto code = parse_arguments(app, args)) return *code;
  const fs::path dir = resolve_checkpoint_dir(checkpoint);
  ModelProvenance provenance;
  const auto users = dpo_checkpoint_users(dir);
  if (!users.empty()) {
    if (user.empty()) {
      std::string names;
      for (const auto& u : users)
        names += (names.empty() ? "" : ", ") + u;
      throw Error("export", dir.string() +
                                " holds one adapter per user (a dpo run); name one with --user "
                                "(users: " +
                                names + ")");
    }
    CausalLM model = dpo_user_model(dir, user, &provenance);
    model->eval();
    export_model(*model, provenance, out, merge);
  } else if (!user.empty()) {
    throw Error("export",
                "--user: " + dir.string() + " is not a per-user DPO checkpoint (it has no users)");
  } else if (dist::is_sharded_checkpoint(dir)) {
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
