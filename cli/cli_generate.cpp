// tailor generate --model DIR [--adapter DIR] --input prompts.jsonl [--output FILE] [options]
//
// Text generation with any causal LM directory (models/generation/generate.h). Each input line is
// {"prompt": text} (tokenized with the tokenizer in the model directory or --tokenizer, special
// tokens in the text recognised and the tokenizer's own special tokens, e.g. Mistral's BOS,
// added, as HF's tokenizer(text) does) or {"ids": [...]} (used as they are; no tokenizer needed).
// A text prompt may carry {"system": text}, a system text placed as --template places it (zephyr:
// a <|system|> turn). Other keys are ignored; blank lines are skipped. Each prompt gives
// --num-return-sequences output lines, in input order:
//   {"prompt": <the text or ids as given>, "ids": [generated ids, EOS included when produced],
//    "completion": <the ids decoded, special tokens (EOS) skipped; only with a tokenizer>,
//    "finish_reason": "eos" | "length"}
// --template mistral_instruct wraps each text prompt as training does (the recipes'
// data.template; models/tokenizer/prompt_format.h: "<s>[INST] prompt [/INST]"), so a model or
// adapter trained with that template is sampled as it was trained; plain (default) leaves it.
// Every line is checked (JSON, keys, ids, length) before anything is generated; errors name the
// file and line.

#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/cli_args.h"
#include "cli/commands.h"
#include "cli/dtype_option.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "models/generation/generate.h"
#include "models/io/pretrained.h"
#include "models/tokenizer/prompt_format.h"
#include "models/tokenizer/tokenizer.h"

namespace tailor::cli {
namespace fs = std::filesystem;

namespace {

struct Prompt {
  int64_t line = 0;              // 1-based line in the input file
  nlohmann::ordered_json given;  // the "prompt" text or the "ids" array, echoed in the output
  std::vector<int32_t> ids;
};

std::string location(const fs::path& file, int64_t line) {
  return file.string() + ":" + std::to_string(line);
}

bool has_tokenizer_files(const fs::path& dir) {
  return fs::exists(dir / "tokenizer.json") ||
         (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt"));
}

Prompt parse_line(const std::string& text, const fs::path& file, int64_t line,
                  const Tokenizer* tokenizer, const fs::path& tokenizer_dir, int64_t vocab,
                  PromptTemplate format) {
  const std::string where = location(file, line);
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error("generate", where + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error("generate", where + ": expected a JSON object");
  const bool has_prompt = j.contains("prompt"), has_ids = j.contains("ids");
  if (has_prompt == has_ids) {
    throw Error("generate", where + (has_prompt ? ": give \"prompt\" or \"ids\", not both"
                                                : ": expected {\"prompt\": text} or "
                                                  "{\"ids\": [...]}"));
  }
  Prompt p;
  p.line = line;
  if (has_ids) {
    p.given = j.at("ids");
    if (!p.given.is_array()) throw Error("generate", where + ": \"ids\" must be an array");
    for (const auto& v : p.given) {
      if (!v.is_number_integer())
        throw Error("generate", where + ": \"ids\" must hold integers, got " + v.dump());
      const int64_t id = v.get<int64_t>();
      if (id < 0 || id >= vocab)
        throw Error("generate", where + ": token id " + std::to_string(id) +
                                    " outside the vocabulary [0, " + std::to_string(vocab) + ")");
      p.ids.push_back(static_cast<int32_t>(id));
    }
  } else {
    p.given = j.at("prompt");
    if (!p.given.is_string()) throw Error("generate", where + ": \"prompt\" must be a string");
    if (tokenizer == nullptr) {
      throw Error("generate", where +
                                  ": a text prompt needs a tokenizer (tokenizer.json or "
                                  "vocab.json + merges.txt) in " +
                                  tokenizer_dir.string() + "; or give {\"ids\": [...]}");
    }
    std::string system;
    if (j.contains("system")) {
      if (!j["system"].is_string())
        throw Error("generate", where + ": \"system\" must be a string");
      system = j["system"].get<std::string>();
    }
    p.ids = format == PromptTemplate::kPlain && system.empty()
                ? tokenizer->encode_hf(p.given.get<std::string>(), /*add_special_tokens=*/true)
                : encode_prompt(*tokenizer, format, p.given.get<std::string>(), system);
    for (int32_t id : p.ids)
      if (id >= vocab)
        throw Error("generate", where + ": the tokenizer gave id " + std::to_string(id) +
                                    ", outside the model's vocabulary [0, " +
                                    std::to_string(vocab) + ")");
  }
  if (p.ids.empty()) throw Error("generate", where + ": the prompt has no tokens");
  return p;
}

}  // namespace

int generate_command(const std::vector<std::string>& args) {
  CLI::App app{
      "Generate text with a causal LM directory (GPT-2, Mistral), with a KV cache. Input lines "
      "are {\"prompt\": text} or {\"ids\": [...]}; each prompt gives --num-return-sequences "
      "output lines {\"prompt\", \"ids\", \"completion\" (with a tokenizer), \"finish_reason\": "
      "\"eos\"|\"length\"} in input order. Defaults follow Hugging Face's generate: greedy "
      "(--temperature 0), and when sampling top-k 50, top-p 1.",
      args[0]};
  fs::path model_dir, adapter_dir, tokenizer_dir, input, output;
  GenerationConfig config;
  std::string dtype_name = "auto";
  int64_t batch_size = 8;
  app.add_option("--model", model_dir, "Hugging Face model directory (config.json + safetensors)")
      ->required();
  app.add_option("--adapter", adapter_dir, "PEFT LoRA adapter directory to apply");
  app.add_option("--tokenizer", tokenizer_dir,
                 "tokenizer directory (default: the model directory; optional for {\"ids\"} "
                 "input)");
  app.add_option("--input", input, "JSONL: {\"prompt\": text} or {\"ids\": [...]} per line")
      ->required();
  app.add_option("--output", output, "output JSONL, written atomically (default: stdout)");
  app.add_option("--max-new-tokens", config.max_new_tokens,
                 "tokens to generate at most per sequence (default 128)")
      ->check(CLI::PositiveNumber);
  app.add_option("--temperature", config.temperature,
                 "0 = greedy (default); > 0 samples from softmax(logits / T)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--top-k", config.top_k,
                 "when sampling, keep the k most likely tokens (default 50; 0 = off)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--top-p", config.top_p,
                 "when sampling, keep the smallest set of most likely tokens with probability "
                 ">= p (default 1 = off); applied after --temperature and --top-k")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--seed", config.seed,
                 "sampling seed (default 0); each sequence draws from its own stream, so results "
                 "do not depend on --batch-size");
  app.add_option("--num-return-sequences", config.num_return_sequences,
                 "sequences per prompt (default 1; identical copies when greedy)")
      ->check(CLI::PositiveNumber);
  app.add_option("--dtype", dtype_name,
                 "the weights' and compute dtype: auto (default: as config.json's torch_dtype "
                 "says; bfloat16 stays bfloat16, anything else is float32) | fp32 | bf16")
      ->check(CLI::IsMember({"auto", "fp32", "bf16", "float32", "bfloat16"}));
  app.add_option("--batch-size", batch_size, "prompts generated together (default 8)")
      ->check(CLI::PositiveNumber);
  PromptTemplate prompt_template = PromptTemplate::kPlain;
  app.add_option("--template", prompt_template,
                 "how text prompts are wrapped, as the recipes' data.template: plain (default) | "
                 "mistral_instruct (<s>[INST] prompt [/INST]) | zephyr (<|user|> ... "
                 "<|assistant|>)")
      ->transform(CLI::CheckedTransformer(enum_map(prompt_template_names())));
  if (auto code = parse_arguments(app, args)) return *code;
  config.validate();
  if (config.temperature == 0 && (app.count("--top-k") > 0 || app.count("--top-p") > 0))
    std::cerr << "warning: --top-k/--top-p apply only when sampling (--temperature > 0)\n";

  const at::ScalarType dtype = model_dtype(dtype_name, model_dir, "generate");
  CausalLM model = load_pretrained(model_dir, dtype);
  if (!adapter_dir.empty()) load_peft_adapter(adapter_dir, *model);
  model->eval();

  if (tokenizer_dir.empty()) tokenizer_dir = model_dir;
  std::optional<Tokenizer> tokenizer;
  if (app.count("--tokenizer") > 0 || has_tokenizer_files(tokenizer_dir))
    tokenizer = Tokenizer::from_dir(tokenizer_dir);
  if (!model->eos_token_id() && tokenizer) {
    try {
      config.eos_token_id = tokenizer->eos_id();
    } catch (const Error&) {
      // Neither the model nor the tokenizer names an EOS token: sequences end at the length.
    }
  }

  // Read and check every line first, so a bad line fails before any generation.
  std::ifstream in(input);
  if (!in) throw Error("generate", input.string() + ": cannot open");
  const int64_t vocab = model->vocab_size();
  const int64_t max_prompt = model->max_positions() - config.max_new_tokens;
  std::vector<Prompt> prompts;
  std::string text;
  for (int64_t line = 1; std::getline(in, text); ++line) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    Prompt p = parse_line(text, input, line, tokenizer ? &*tokenizer : nullptr, tokenizer_dir,
                          vocab, prompt_template);
    const int64_t n = static_cast<int64_t>(p.ids.size());
    if (n > max_prompt) {
      throw Error("generate", location(input, line) + ": " + std::to_string(n) +
                                  " prompt tokens + --max-new-tokens " +
                                  std::to_string(config.max_new_tokens) +
                                  " exceed the model's max_positions " +
                                  std::to_string(model->max_positions()));
    }
    prompts.push_back(std::move(p));
  }

  std::ostringstream out;
  for (size_t start = 0; start < prompts.size(); start += batch_size) {
    const size_t end = std::min(prompts.size(), start + static_cast<size_t>(batch_size));
    std::vector<std::vector<int32_t>> batch;
    for (size_t i = start; i < end; ++i)
      batch.push_back(prompts[i].ids);
    GenerationConfig batch_config = config;
    batch_config.first_prompt_index = static_cast<int64_t>(start);
    for (const GeneratedSequence& seq : generate(*model, batch, batch_config)) {
      const Prompt& p = prompts[start + seq.prompt_index];
      nlohmann::ordered_json j = {{"prompt", p.given}, {"ids", seq.ids}};
      if (tokenizer) {
        try {
          j["completion"] = tokenizer->decode(seq.ids, /*skip_special_tokens=*/true);
        } catch (const Error& e) {
          throw Error("generate",
                      location(input, p.line) + ": decoding the completion: " + e.what());
        }
      }
      j["finish_reason"] = finish_reason_name(seq.finish_reason);
      // Raw bytes of a split UTF-8 character are replaced (U+FFFD) rather than aborting.
      out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
    if (output.empty()) {
      std::cout << out.str() << std::flush;
      out.str("");
    }
  }
  if (!output.empty()) write_file_atomic(output, out.str());
  return 0;
}

}  // namespace tailor::cli
