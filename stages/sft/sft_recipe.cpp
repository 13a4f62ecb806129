#include "stages/sft/sft_recipe.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <ATen/Context.h>

#include "common/atomic_file.h"
#include "common/device.h"
#include "common/error.h"
#include "dist/runtime.h"

namespace tailor {
namespace fs = std::filesystem;

namespace {

// Enum names of the sft-only keys; shared ones are in train/recipe/sections.h.
const EnumNames<DataFormat> kDataFormats = {{"text", DataFormat::kText},
                                            {"prompt_response", DataFormat::kPromptResponse}};

Schema<SftRecipe> build_sft_schema() {
  Schema<SftRecipe> s;

  s.choice(TAILOR_MEMBER(stage), std::vector<std::string>{"sft"})
      .doc("what to run: sft = supervised fine-tuning (causal LM loss)")
      .required();
  s.key(TAILOR_MEMBER(seed))
      .doc("seeds initialization, dropout and data order; same seed = same run")
      .default_value(1234)
      .at_least(0);
  s.key(TAILOR_MEMBER(output_dir))
      .doc("run directory: recipe.yaml, metrics.jsonl, checkpoints/, export/")
      .required();
  s.key(TAILOR_MEMBER(tokenizer))
      .doc("tokenizer directory: vocab.json + merges.txt, or tokenizer.json")
      .default_value(fs::path("assets/tokenizers/gpt2"));

  add_model_keys(s);
  add_lora_keys(s);

  s.section("data", "training and evaluation data");
  s.key(TAILOR_MEMBER(data.train)).doc("training data: .jsonl or HDF5 store (.h5)").required();
  s.key(TAILOR_MEMBER(data.eval))
      .doc("evaluation data (.jsonl or .h5); \"\" = none or data.eval_fraction")
      .default_value(fs::path());
  s.choice(TAILOR_MEMBER(data.format), kDataFormats)
      .doc("text: loss on all tokens of {text}; prompt_response: loss on {response} tokens only")
      .default_value(DataFormat::kText);
  s.choice(
       "data.template", [](auto& r) -> auto& { return r.data.prompt_template; },
       prompt_template_names())
      .doc(
          "plain: text as written (BOS first when the tokenizer adds one); mistral_instruct: "
          "<s>[INST] prompt [/INST] response</s>, Mistral-7B-Instruct's chat format")
      .default_value(PromptTemplate::kPlain);
  s.key(TAILOR_MEMBER(data.max_length))
      .doc("tokens per example; longer examples are truncated")
      .default_value(128)
      .at_least(2);
  s.key(TAILOR_MEMBER(data.eval_fraction))
      .doc("fraction of data.train held out for eval when data.eval is \"\"")
      .default_value(0.0)
      .at_least(0)
      .below(1);

  add_optimizer_keys(s);
  add_schedule_keys(s);

  s.section("train", "the training loop");
  s.key(TAILOR_MEMBER(train.max_steps)).doc("optimizer steps").default_value(200).at_least(1);
  s.key(TAILOR_MEMBER(train.micro_batch_size))
      .doc("examples per forward/backward pass")
      .default_value(8)
      .at_least(1);
  s.key(TAILOR_MEMBER(train.grad_accum))
      .doc("micro-batches per optimizer step on each rank (ignored when global_batch_size is set)")
      .default_value(1)
      .at_least(1);
  s.key(TAILOR_MEMBER(train.global_batch_size))
      .doc(
          "examples per optimizer step over all ranks; 0 = micro_batch_size * grad_accum * "
          "ranks. When set, grad_accum follows, so the run trains on the same batches at any "
          "world size that divides it")
      .default_value(0)
      .at_least(0);
  s.choice(TAILOR_MEMBER(train.precision), precision_names())
      .doc(
          "fp32 | bf16_autocast (fp32 weights) | bf16 (bf16 weights, fp32 master copies) | fp64 "
          "(float64 throughout, slow: for checking that two ways of running agree)")
      .default_value(Precision::kFp32);
  s.key(TAILOR_MEMBER(train.log_every))
      .doc("steps between progress lines and metrics.jsonl records")
      .default_value(10)
      .at_least(1);
  s.key(TAILOR_MEMBER(train.eval_every))
      .doc("steps between evaluations; 0 = only at the end")
      .default_value(50)
      .at_least(0);
  s.key(TAILOR_MEMBER(train.eval_batches))
      .doc("micro-batches per evaluation")
      .default_value(8)
      .at_least(1);
  s.key(TAILOR_MEMBER(train.checkpoint_every))
      .doc("steps between checkpoints; 0 = only at the end")
      .default_value(50)
      .at_least(0);
  s.key(TAILOR_MEMBER(train.keep_checkpoints))
      .doc("most recent checkpoints kept on disk")
      .default_value(2)
      .at_least(1);
  s.key(TAILOR_MEMBER(train.resume))
      .doc("continue from the latest checkpoint in output_dir")
      .default_value(false);

  s.section("dist", "data parallelism over the ranks of `mpirun -np N tailor run`");
  s.choice(TAILOR_MEMBER(dist.device), device_type_names())
      .doc("where tensors live: cpu, or cuda (the GPU of each rank's local rank; CUDA builds)")
      .default_value(DeviceType::kCpu);
  s.key(TAILOR_MEMBER(dist.zero_stage))
      .doc(
          "ZeRO stage: 0 replicated, 1 shards optimizer state, 2 also gradients, 3 also "
          "parameters")
      .default_value(0)
      .at_least(0)
      .at_most(3);
  s.choice(TAILOR_MEMBER(dist.backend), dist::backend_names())
      .doc("collectives: auto (NCCL on GPUs, else MPI), mpi, nccl or single (one process)")
      .default_value(dist::Backend::kAuto);
  s.key(TAILOR_MEMBER(dist.bucket_mb))
      .doc("MiB per gradient/parameter bucket at stages 0-2 (one collective per bucket)")
      .default_value(25.0)
      .above(0);
  s.key(TAILOR_MEMBER(dist.overlap))
      .doc(
          "ZeRO-3: gather the next blocks' parameters and reduce-scatter gradients on a "
          "communication thread while compute goes on; false = blocking collectives (faster on "
          "CPU ranks that use every core: docs/distributed.md#overlap)")
      .default_value(false);
  s.key(TAILOR_MEMBER(dist.prefetch))
      .doc("ZeRO-3 with overlap: how many hook groups ahead parameters are gathered")
      .default_value(1)
      .at_least(0)
      .at_most(8);
  s.key(TAILOR_MEMBER(dist.collective_timeout_s))
      .doc(
          "seconds a collective may wait for the other ranks before every rank exits naming it "
          "(a stuck or stopped rank); 0 = wait forever")
      .default_value(600.0)
      .at_least(0);

  // `export` is a C++ keyword, so its struct member is export_.
  s.section("samples",
            "greedy completions of eval prompts after training (prompt_response data), with the "
            "exact-match rate against the references, in output_dir/samples.jsonl");
  s.key(TAILOR_MEMBER(samples.prompts))
      .doc("eval prompts to complete (the first N of the eval data); 0 = none")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(samples.max_new_tokens))
      .doc("tokens generated per prompt at most (generation stops at EOS)")
      .default_value(48)
      .at_least(1);
  s.key(TAILOR_MEMBER(samples.show))
      .doc("completions printed next to their references")
      .default_value(5)
      .at_least(0);

  s.section("export", "Hugging Face export at the end of the run, into output_dir/export");
  s.key(
       "export.enabled", [](auto& r) -> auto& { return r.export_.enabled; })
      .doc("write a HF model directory (and a PEFT adapter for LoRA runs)")
      .default_value(true);
  s.key(
       "export.merge_lora", [](auto& r) -> auto& { return r.export_.merge_lora; })
      .doc("export the merged model W + (alpha/r) B A instead of base + adapter")
      .default_value(false);

  s.spec().check_complete();
  return s;
}

// Rules that span several keys; each names the key to change.
void check_sft_rules(const ResolvedConfig& c) {
  const int64_t global = c.get<int64_t>("train.global_batch_size");
  const int64_t micro = c.get<int64_t>("train.micro_batch_size");
  if (global > 0 && global % micro != 0) {
    c.fail("train.global_batch_size", "expected a multiple of train.micro_batch_size (" +
                                          std::to_string(micro) + "), got " +
                                          std::to_string(global));
  }
  check_model_rules(c);
  if (c.get<bool>("export.merge_lora") && !c.get<bool>("lora.enabled")) {
    c.fail("export.merge_lora", "needs lora.enabled: true (there is no adapter to merge)");
  }
  const std::string train = c.get<std::string>("data.train");
  const std::string ext = fs::path(train).extension().string();
  if (ext != ".jsonl" && ext != ".h5") {
    c.fail("data.train", "expected a .jsonl or .h5 file, got \"" + train + "\"");
  }
  const std::string eval = c.get<std::string>("data.eval");
  if (!eval.empty()) {
    const std::string eval_ext = fs::path(eval).extension().string();
    if (eval_ext != ".jsonl" && eval_ext != ".h5") {
      c.fail("data.eval", "expected a .jsonl or .h5 file or \"\", got \"" + eval + "\"");
    }
    if (c.get<double>("data.eval_fraction") != 0.0) {
      c.fail("data.eval_fraction",
             "must be 0 when data.eval is set (eval data comes from \"" + eval + "\")");
    }
  }
}

}  // namespace

const std::string& to_string(DataFormat v) {
  return enum_name(kDataFormats, v);
}

const Schema<SftRecipe>& sft_recipe_schema() {
  static const Schema<SftRecipe> schema = build_sft_schema();
  return schema;
}

ResolvedConfig resolve_sft_recipe(const std::string& yaml_text, const std::string& source,
                                  const std::vector<std::string>& overrides) {
  ResolvedConfig config = resolve_config(sft_recipe_schema().spec(), yaml_text, source, overrides);
  check_sft_rules(config);
  return config;
}

SftRecipe load_sft_recipe(const fs::path& file, const std::vector<std::string>& overrides) {
  return sft_recipe_from_config(resolve_sft_recipe(read_file(file), file.string(), overrides));
}

SftRecipe sft_recipe_from_config(const ResolvedConfig& config) {
  check_sft_rules(config);
  return sft_recipe_schema().bind(config);
}

ResolvedConfig sft_recipe_to_config(const SftRecipe& recipe) {
  return sft_recipe_schema().unbind(recipe, "(recipe)");
}

int64_t grad_accum_for_world(const SftRecipe& recipe, int world_size) {
  const int64_t global = recipe.train.global_batch_size;
  if (global == 0) return recipe.train.grad_accum;
  const int64_t per_step = recipe.train.micro_batch_size * world_size;
  if (global % per_step != 0) {
    throw Error("recipe", "train.global_batch_size " + std::to_string(global) +
                              " is not divisible by train.micro_batch_size " +
                              std::to_string(recipe.train.micro_batch_size) + " x " +
                              std::to_string(world_size) +
                              " ranks; choose a world size or micro-batch size that divides it");
  }
  return global / per_step;
}

void check_sft_inputs(const SftRecipe& r) {
  require_file("data.train", r.data.train);
  if (!r.data.eval.empty()) require_file("data.eval", r.data.eval);
  require_directory("tokenizer", r.tokenizer, {{"vocab.json", "merges.txt"}, {"tokenizer.json"}});
  if (r.model.init == ModelInit::kPretrained) {
    require_directory("model.path", r.model.path, {{"config.json"}});
  }
  if (fs::exists(r.output_dir) && !fs::is_directory(r.output_dir)) {
    throw Error("recipe",
                "output_dir: " + r.output_dir.string() + " exists and is not a directory");
  }
  // Refused here, before anything is written, rather than failing inside the first step.
  if (r.dist.device == DeviceType::kCuda) {
    resolve_device(DeviceType::kCuda, dist::detect_launch().local_rank, "dist.device");
    if (r.dist.overlap)
      throw Error("recipe",
                  "dist.overlap: true: the communication thread drives MPI on CPU tensors; on "
                  "dist.device: cuda collectives are NCCL calls queued on the compute stream "
                  "(set dist.overlap: false)");
  } else if (r.dist.backend == dist::Backend::kNccl) {
    // Refused here, before anything is written, rather than failing inside the first collective.
    throw Error("recipe",
                "dist.backend: nccl reduces CUDA tensors, but dist.device is cpu; use "
                "dist.backend: mpi (or auto), or dist.device: cuda");
  }
}

std::string resolved_recipe_yaml(const SftRecipe& recipe) {
  return sft_recipe_to_config(recipe).to_yaml(/*with_docs=*/true);
}

std::string recipe_hash(const SftRecipe& recipe) {
  return sft_recipe_to_config(recipe).hash();
}

void write_resolved_recipe(const SftRecipe& recipe, const fs::path& run_dir) {
  write_resolved_recipe(sft_recipe_to_config(recipe), run_dir);
}

}  // namespace tailor
