// tailor score --model DIR [--adapter DIR] --input FILE.jsonl [--output FILE.jsonl]
//
// For each input line writes {"tokens": n, "nll": x}: x is the summed negative log-likelihood
// (natural log, float64 accumulation) of tokens 2..n given their prefixes. Input lines are
// {"text": ...}, {"prompt": ..., "response": ...} (only response tokens scored; prompt and
// response are tokenized separately and concatenated) or {"ids": [...]} (used as they are).
// No BOS is added.

#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "data/sft_dataset.h"
#include "models/pretrained.h"
#include "models/tokenizer.h"
#include "trainer/cli_args.h"
#include "trainer/commands.h"
#include "trainer/lm_loss.h"

namespace tailor::cli {
namespace fs = std::filesystem;

namespace {

struct ScoreInput {
  std::vector<int64_t> ids;
  int64_t first_scored = 1;  // index of the first token whose NLL counts
};

std::string location(const fs::path& file, int64_t line) {
  return file.string() + ":" + std::to_string(line);
}

ScoreInput parse_line(const std::string& text, const fs::path& file, int64_t line,
                      const std::function<const Tokenizer&()>& tokenizer) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error("score", location(file, line) + ": invalid JSON: " + e.what());
  }
  auto string_field = [&](const char* key) {
    if (!j.at(key).is_string())
      throw Error("score", location(file, line) + ": \"" + key + "\" must be a string");
    return j.at(key).get<std::string>();
  };
  ScoreInput in;
  if (!j.is_object()) throw Error("score", location(file, line) + ": expected a JSON object");
  if (j.contains("ids")) {
    if (!j.at("ids").is_array())
      throw Error("score", location(file, line) + ": \"ids\" must be an array");
    for (const auto& v : j.at("ids")) {
      if (!v.is_number_integer())
        throw Error("score", location(file, line) + ": \"ids\" must hold integers");
      in.ids.push_back(v.get<int64_t>());
    }
  } else if (j.contains("text")) {
    for (auto id : tokenizer().encode(string_field("text")))
      in.ids.push_back(id);
  } else if (j.contains("prompt") && j.contains("response")) {
    for (auto id : tokenizer().encode(string_field("prompt")))
      in.ids.push_back(id);
    in.first_scored = std::max<int64_t>(1, static_cast<int64_t>(in.ids.size()));
    for (auto id : tokenizer().encode(string_field("response")))
      in.ids.push_back(id);
  } else {
    throw Error(
        "score",
        location(file, line) +
            ": expected {\"text\": ...}, {\"prompt\": ..., \"response\": ...} or {\"ids\": [...]}");
  }
  return in;
}

}  // namespace

int score_command(const std::vector<std::string>& args) {
  CLI::App app{
      "Summed negative log-likelihood of each JSONL line under a Hugging Face GPT-2 model.",
      args[0]};
  fs::path model_dir, adapter_dir, tokenizer_dir, input, output;
  std::string dtype_name = "float32";
  app.add_option("--model", model_dir, "Hugging Face model directory (config.json + safetensors)")
      ->required();
  app.add_option("--adapter", adapter_dir, "PEFT LoRA adapter directory to apply");
  app.add_option("--tokenizer", tokenizer_dir,
                 "tokenizer directory (default: the model directory)");
  app.add_option("--input", input,
                 "JSONL: {\"text\"} | {\"prompt\",\"response\"} | {\"ids\"} per line")
      ->required();
  app.add_option("--output", output, "output JSONL (default: stdout)");
  app.add_option("--dtype", dtype_name, "float32 | bfloat16")
      ->check(CLI::IsMember({"float32", "bfloat16"}));
  if (auto code = parse_arguments(app, args)) return *code;

  const auto dtype = dtype_name == "bfloat16" ? at::kBFloat16 : at::kFloat;
  GPT2LMHead model = load_gpt2_pretrained(model_dir, dtype);
  if (!adapter_dir.empty()) load_peft_adapter(adapter_dir, *model);
  model->eval();
  const int64_t vocab = model->config().vocab_size, max_len = model->config().n_positions;

  std::optional<Tokenizer> tokenizer;
  auto get_tokenizer = [&]() -> const Tokenizer& {
    if (!tokenizer)
      tokenizer = Tokenizer::from_dir(tokenizer_dir.empty() ? model_dir : tokenizer_dir);
    return *tokenizer;
  };

  std::ifstream in(input);
  if (!in) throw Error("score", input.string() + ": cannot open");
  std::ostringstream out;
  out << std::setprecision(17);
  at::NoGradGuard no_grad;
  std::string text;
  for (int64_t line = 1; std::getline(in, text); ++line) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    ScoreInput s = parse_line(text, input, line, get_tokenizer);
    const int64_t n = static_cast<int64_t>(s.ids.size());
    if (n > max_len)
      throw Error("score", location(input, line) + ": " + std::to_string(n) +
                               " tokens exceed the model's n_positions " + std::to_string(max_len));
    for (auto id : s.ids)
      if (id < 0 || id >= vocab)
        throw Error("score", location(input, line) + ": token id " + std::to_string(id) +
                                 " outside the vocabulary [0, " + std::to_string(vocab) + ")");
    double nll = 0;
    if (n >= 2) {
      auto ids = at::tensor(s.ids, at::kLong).unsqueeze(0);
      auto labels = ids.clone();
      labels.slice(1, 0, s.first_scored).fill_(data::kIgnoreIndex);
      nll = sequence_nll(model->forward(ids), labels)[0];
    }
    out << nlohmann::json{{"tokens", n}, {"nll", nll}}.dump() << "\n";
    if (output.empty()) {
      std::cout << out.str() << std::flush;
      out.str("");
    }
  }
  if (!output.empty()) write_file_atomic(output, out.str());
  return 0;
}

}  // namespace tailor::cli
