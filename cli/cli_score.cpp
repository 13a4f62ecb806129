// tailor score --model DIR [--adapter DIR] --input FILE.jsonl [--output FILE.jsonl]
//              [--template plain|mistral_instruct]
//
// For each input line writes {"tokens": n, "nll": x}: x is the summed negative log-likelihood
// (natural log, float64 accumulation) of tokens 2..n given their prefixes. Input lines are
// {"text": ...}, {"prompt": ..., "response": ...} (only response tokens scored; prompt and
// response are tokenized separately and concatenated) or {"ids": [...]} (used as they are).
// {"prompt": ..., "chosen": ..., "rejected": ...} lines (preference pairs) get
// {"chosen": lc, "rejected": lr, "margin": lc - lr, "tokens_chosen": nc, "tokens_rejected": nr}:
// lc is the summed log-probability (natural log, float64 accumulation of float32 log_softmax) of
// the chosen response's tokens and the EOS closing it, each given its prefix, with the ids the
// DPO stage trains on (data/preferences/user_pairs.h: prompt ++ response ++ EOS; no EOS for a
// response marked "chosen_truncated"/"rejected_truncated": true); nc counts
// those tokens (response tokens + 1; one less when the prompt has no tokens, as the first token
// of a sequence is never scored). Each sequence is scored on its own, without padding.
// --per-token adds "log_probs": the float32 log-probability of each scored token given its
// prefix (log_softmax of the logits, gathered at the next token), in order, so that
// -sum(log_probs) = nll; a Hugging Face model gives the same from its logits. Pair lines get
// "log_probs_chosen" and "log_probs_rejected" instead, summing to lc and lr.
// Text gets the special tokens the tokenizer's post-processor adds (Mistral: <s> first; GPT-2:
// none), as training does (models/tokenizer/prompt_format.h). --template (the recipes'
// data.template, default plain) wraps every "prompt" field: mistral_instruct scores
// "<s>[INST] prompt [/INST]" ++ response, as a model trained with that template saw it.
//
// When --model is a reward-model directory (config.json architectures *ForSequenceClassification,
// see models/io/reward_export.h), or with --reward, each line gets the reward head's K outputs
// instead: {"text"}, {"prompt", "response"} or {"ids"} -> {"tokens": n, "reward": [K floats]};
// {"prompt", "chosen", "rejected"} -> {"chosen": [...], "rejected": [...], "margin": r_c0 - r_r0}.
// Prompt and response are tokenized separately and concatenated (no EOS), with the plain
// template, as the reward stage does.
//
// --profile FILE (a user's profile.json from an elicit run, stages/elicit/elicit_session.h) with
// --model the run's multi-reward export: {"prompt", "response"} -> {"reward": w . h(x, y)};
// {"prompt", "chosen", "rejected"} -> {"chosen", "rejected", "margin"}. A profile made with
// another reward model (its reward_model_id) is refused.

#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli/cli_args.h"
#include "cli/commands.h"
#include "cli/dtype_option.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "data/sft/sft_dataset.h"
#include "data/store/jsonl_lines.h"
#include "models/io/multi_reward_export.h"
#include "models/io/pretrained.h"
#include "models/io/reward_export.h"
#include "models/tokenizer/prompt_format.h"
#include "models/tokenizer/tokenizer.h"
#include "stages/elicit/elicit_session.h"
#include "train/losses/lm_loss.h"

namespace tailor::cli {
namespace fs = std::filesystem;

namespace {

struct ScoreInput {
  std::vector<int64_t> ids;
  int64_t first_scored = 1;  // index of the first token whose NLL counts
  // A preference pair (ids empty): the prompt's ids and each response's ids, EOS included.
  bool pair = false;
  std::vector<int64_t> prompt, chosen, rejected;
};

std::string line_location(const fs::path& file, int64_t line) {
  return file.string() + ":" + std::to_string(line);
}

// One input line; `format` wraps "prompt" fields. With `pairs`, {"prompt", "chosen",
// "rejected"} lines are accepted too, each response closed by the tokenizer's EOS.
ScoreInput parse_line(const std::string& text, const fs::path& file, int64_t line,
                      const std::function<const Tokenizer&()>& tokenizer, PromptTemplate format,
                      bool pairs) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error("score", line_location(file, line) + ": invalid JSON: " + e.what());
  }
  auto string_field = [&](const char* key) {
    if (!j.at(key).is_string())
      throw Error("score", line_location(file, line) + ": \"" + key + "\" must be a string");
    return j.at(key).get<std::string>();
  };
  if (!j.is_object()) throw Error("score", line_location(file, line) + ": expected a JSON object");
  auto encode = [&](const char* key) {
    std::vector<int64_t> ids;
    for (auto id : encode_sft_field(tokenizer(), format, key, string_field(key)))
      ids.push_back(id);
    return ids;
  };
  ScoreInput in;
  if (pairs && j.contains("prompt") && j.contains("chosen") && j.contains("rejected")) {
    in.pair = true;
    in.prompt = encode("prompt");
    const int32_t eos = tokenizer().eos_id();
    // "chosen_truncated"/"rejected_truncated": true (a sample cut at max_new_tokens, as the dpo
    // stage marks it): that response is scored without the closing EOS, as the stage trains it.
    const auto truncated = [&](const char* key) {
      if (!j.contains(key)) return false;
      if (!j.at(key).is_boolean())
        throw Error("score", line_location(file, line) + ": \"" + key + "\" must be true or false");
      return j.at(key).get<bool>();
    };
    in.chosen = encode("chosen");
    if (!truncated("chosen_truncated")) in.chosen.push_back(eos);
    in.rejected = encode("rejected");
    if (!truncated("rejected_truncated")) in.rejected.push_back(eos);
  } else if (j.contains("ids")) {
    if (!j.at("ids").is_array())
      throw Error("score", line_location(file, line) + ": \"ids\" must be an array");
    for (const auto& v : j.at("ids")) {
      if (!v.is_number_integer())
        throw Error("score", line_location(file, line) + ": \"ids\" must hold integers");
      in.ids.push_back(v.get<int64_t>());
    }
  } else if (j.contains("text")) {
    in.ids = encode("text");
  } else if (j.contains("prompt") && j.contains("response")) {
    in.ids = encode("prompt");
    in.first_scored = std::max<int64_t>(1, static_cast<int64_t>(in.ids.size()));
    const auto response = encode("response");
    in.ids.insert(in.ids.end(), response.begin(), response.end());
  } else {
    throw Error("score",
                line_location(file, line) + ": expected {\"text\": ...}, " +
                    (pairs ? "{\"prompt\": ..., \"chosen\": ..., \"rejected\": ...}, " : "") +
                    "{\"prompt\": ..., \"response\": ...} or {\"ids\": [...]}");
  }
  return in;
}

// One reward-model input line: a single sequence, or a chosen/rejected pair sharing a prompt.
struct RewardInput {
  std::vector<int64_t> ids;               // single sequence
  std::vector<int64_t> chosen, rejected;  // pair (ids empty)
  bool pair = false;
};

RewardInput parse_reward_line(const std::string& text, const fs::path& file, int64_t line,
                              const std::function<const Tokenizer&()>& tokenizer) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error("score", line_location(file, line) + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error("score", line_location(file, line) + ": expected a JSON object");
  auto tokens = [&](const char* key) {
    if (!j.at(key).is_string())
      throw Error("score", line_location(file, line) + ": \"" + key + "\" must be a string");
    std::vector<int64_t> ids;
    for (auto id :
         encode_sft_field(tokenizer(), PromptTemplate::kPlain, key, j.at(key).get<std::string>()))
      ids.push_back(id);
    return ids;
  };
  auto concat = [](std::vector<int64_t> a, const std::vector<int64_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  RewardInput in;
  if (j.contains("prompt") && j.contains("chosen") && j.contains("rejected")) {
    in.pair = true;
    const auto prompt = tokens("prompt");
    in.chosen = concat(prompt, tokens("chosen"));
    in.rejected = concat(prompt, tokens("rejected"));
  } else if (j.contains("ids") || j.contains("text") ||
             (j.contains("prompt") && j.contains("response"))) {
    in.ids = parse_line(text, file, line, tokenizer, PromptTemplate::kPlain, /*pairs=*/false).ids;
  } else {
    throw Error("score", line_location(file, line) +
                             ": expected {\"prompt\", \"chosen\", \"rejected\"}, {\"text\"}, "
                             "{\"prompt\", \"response\"} or {\"ids\"}");
  }
  return in;
}

// Checks a sequence against the model's limits (what forward would reject less clearly).
void check_ids(const std::vector<int64_t>& ids, int64_t vocab, int64_t max_len,
               const fs::path& input, int64_t line) {
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n > max_len)
    throw Error("score", line_location(input, line) + ": " + std::to_string(n) +
                             " tokens exceed the model's n_positions " + std::to_string(max_len));
  for (auto id : ids)
    if (id < 0 || id >= vocab)
      throw Error("score", line_location(input, line) + ": token id " + std::to_string(id) +
                               " outside the vocabulary [0, " + std::to_string(vocab) + ")");
}

// Rewards [K] of one unpadded sequence, as float64 values.
std::vector<double> reward_of(RewardModel& model, const std::vector<int64_t>& ids,
                              const fs::path& input, int64_t line) {
  if (ids.empty()) throw Error("score", line_location(input, line) + ": no tokens to score");
  const auto scores = model->forward(at::tensor(ids, at::kLong).unsqueeze(0)).to(at::kDouble);
  const double* p = scores.data_ptr<double>();
  return std::vector<double>(p, p + scores.numel());
}

// Summed NLL (float64 accumulation) of ids[first_scored..] given their prefixes under `model`,
// the number of those tokens and, with `per_token`, each one's float32 log-probability.
struct SequenceScore {
  double nll = 0;
  int64_t tokens = 0;
  std::vector<double> log_probs;
};

SequenceScore score_sequence(CausalLMImpl& model, const std::vector<int64_t>& sequence,
                             int64_t first_scored, bool per_token) {
  SequenceScore s;
  const int64_t n = static_cast<int64_t>(sequence.size());
  if (n < 2) return s;
  first_scored = std::max<int64_t>(1, first_scored);
  const auto ids = at::tensor(sequence, at::kLong).unsqueeze(0);
  auto labels = ids.clone();
  labels.slice(1, 0, first_scored).fill_(data::kIgnoreIndex);
  const auto logits = model.forward(ids);
  std::vector<int64_t> counts;
  s.nll = sequence_nll(logits, labels, &counts)[0];
  s.tokens = counts[0];
  if (per_token) {
    // Position t predicts token t + 1: the scored tokens first_scored..n-1 are rows
    // first_scored-1..n-2, computed as sequence_nll does.
    const auto picked = at::log_softmax(logits.slice(1, 0, -1).to(at::kFloat), /*dim=*/-1)
                            .gather(-1, ids.slice(1, 1).unsqueeze(-1))
                            .squeeze(-1)[0]
                            .slice(0, first_scored - 1)
                            .to(at::kDouble)
                            .contiguous();
    s.log_probs.assign(picked.data_ptr<double>(), picked.data_ptr<double>() + picked.numel());
  }
  return s;
}

// --profile: one user's rewards under an elicit run's multi-reward model. Every line is read
// first (errors name the line), then all completions are scored in one batched pass.
int score_with_profile(const fs::path& model_dir, const fs::path& profile_file,
                       const fs::path& tokenizer_dir, const fs::path& input,
                       const fs::path& output) {
  if (!is_multi_reward_dir(model_dir))
    throw Error("score", model_dir.string() +
                             ": --profile needs --model to be an elicit run's multi-reward export "
                             "(OUTPUT_DIR/export, with multi_reward_config.json)");
  const UserProfile profile = read_profile(profile_file);
  MultiRewardExport model = load_multi_reward_export(model_dir);
  const Tokenizer tokenizer =
      Tokenizer::from_dir(tokenizer_dir.empty() ? model_dir / "backbone" : tokenizer_dir);
  data::JsonlReader reader(input);
  std::vector<std::string> prompts, completions;
  std::vector<bool> pair;
  for (std::string line; reader.next(line);) {
    const nlohmann::json j = reader.parse_object(line);
    const auto text = [&](const char* key) {
      if (!j.contains(key) || !j[key].is_string()) reader.fail(key, "expected a string");
      return j[key].get<std::string>();
    };
    const bool is_pair = j.contains("chosen");
    const std::string prompt = text("prompt");
    pair.push_back(is_pair);
    for (const char* key : is_pair ? std::vector<const char*>{"chosen", "rejected"}
                                   : std::vector<const char*>{"response"}) {
      prompts.push_back(prompt);
      completions.push_back(text(key));
    }
  }
  const std::vector<double> rewards =
      profile_rewards(model, tokenizer, profile, profile_file, prompts, completions);
  std::ostringstream out;
  out << std::setprecision(17);
  size_t r = 0;
  for (bool is_pair : pair) {
    if (is_pair) {
      out << nlohmann::json({{"chosen", rewards[r]},
                             {"rejected", rewards[r + 1]},
                             {"margin", rewards[r] - rewards[r + 1]}})
                 .dump()
          << "\n";
      r += 2;
    } else {
      out << nlohmann::json({{"reward", rewards[r++]}}).dump() << "\n";
    }
  }
  if (output.empty())
    std::cout << out.str() << std::flush;
  else
    write_file_atomic(output, out.str());
  return 0;
}

}  // namespace

int score_command(const std::vector<std::string>& args) {
  CLI::App app{
      "Summed negative log-likelihood of each JSONL line under a Hugging Face causal LM (GPT-2, "
      "Mistral), the summed log-probabilities of preference pairs' responses, or rewards under a "
      "reward model (sequence-classification directory).",
      args[0]};
  fs::path model_dir, adapter_dir, tokenizer_dir, input, output;
  std::string dtype_name = "auto";
  app.add_option("--model", model_dir, "Hugging Face model directory (config.json + safetensors)")
      ->required();
  app.add_option("--adapter", adapter_dir, "PEFT LoRA adapter directory to apply");
  app.add_option("--tokenizer", tokenizer_dir,
                 "tokenizer directory (default: the model directory)");
  app.add_option("--input", input,
                 "JSONL: {\"text\"} | {\"prompt\",\"response\"} | {\"ids\"} | "
                 "{\"prompt\",\"chosen\",\"rejected\"} per line; a pair gets {\"chosen\", "
                 "\"rejected\", \"margin\", \"tokens_chosen\", \"tokens_rejected\"}: each "
                 "response's summed log-probability with its closing EOS (a reward model: its "
                 "rewards)")
      ->required();
  app.add_option("--output", output, "output JSONL (default: stdout)");
  app.add_option("--dtype", dtype_name,
                 "auto (default: the dtype config.json's torch_dtype names; bfloat16 stays "
                 "bfloat16, anything else is float32) | float32 | bfloat16")
      ->check(CLI::IsMember({"auto", "float32", "bfloat16"}));
  bool per_token = false;
  app.add_flag("--per-token", per_token,
               "also write \"log_probs\": the log-probability of each scored token given its "
               "prefix (float32 log_softmax of the logits), whose sum is -nll (pairs: "
               "\"log_probs_chosen\" and \"log_probs_rejected\")");
  PromptTemplate format = PromptTemplate::kPlain;
  app.add_option("--template", format,
                 "how \"prompt\" fields are wrapped, as the recipes' data.template: plain | "
                 "mistral_instruct (<s>[INST] prompt [/INST]); causal LMs only")
      ->transform(CLI::CheckedTransformer(enum_map(prompt_template_names())));
  bool reward = false;
  app.add_flag("--reward", reward,
               "score with a reward model's head (the default when --model is a "
               "*ForSequenceClassification directory)");
  fs::path profile_file;
  app.add_option("--profile", profile_file,
                 "a user's profile.json from an elicit run: score {\"prompt\",\"response\"} "
                 "or {\"prompt\",\"chosen\",\"rejected\"} lines with that user's reward w . "
                 "h(x, y); --model is the run's multi-reward export (OUTPUT_DIR/export)");
  if (auto code = parse_arguments(app, args)) return *code;
  if (!profile_file.empty())
    return score_with_profile(model_dir, profile_file, tokenizer_dir, input, output);

  const at::ScalarType dtype = model_dtype(dtype_name, model_dir, "score");
  const bool reward_dir = is_reward_model_dir(model_dir);
  if (per_token && reward_dir)
    throw Error("score", (model_dir / "config.json").string() +
                             ": --per-token needs a causal LM, not a reward model directory");
  if (reward && !reward_dir)
    throw Error("score", (model_dir / "config.json").string() +
                             ": --reward needs a *ForSequenceClassification model directory");
  if (format != PromptTemplate::kPlain && reward_dir)
    throw Error("score", (model_dir / "config.json").string() + ": --template " +
                             to_string(format) +
                             " needs a causal LM; the reward stage tokenizes with plain");

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
  auto emit = [&](const nlohmann::json& j) {
    out << j.dump() << "\n";
    if (output.empty()) {
      std::cout << out.str() << std::flush;
      out.str("");
    }
  };

  if (reward_dir) {
    RewardModel model = load_reward_model(model_dir, adapter_dir, dtype);
    model->eval();
    const CausalLMImpl& backbone = *model->backbone;
    for (int64_t line = 1; std::getline(in, text); ++line) {
      if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
      const RewardInput r = parse_reward_line(text, input, line, get_tokenizer);
      for (const auto* ids : {&r.ids, &r.chosen, &r.rejected})
        check_ids(*ids, backbone.vocab_size(), backbone.max_positions(), input, line);
      if (r.pair) {
        const auto chosen = reward_of(model, r.chosen, input, line);
        const auto rejected = reward_of(model, r.rejected, input, line);
        emit({{"chosen", chosen}, {"rejected", rejected}, {"margin", chosen[0] - rejected[0]}});
      } else {
        emit({{"tokens", r.ids.size()}, {"reward", reward_of(model, r.ids, input, line)}});
      }
    }
    if (!output.empty()) write_file_atomic(output, out.str());
    return 0;
  }

  CausalLM model = load_pretrained(model_dir, dtype);
  if (!adapter_dir.empty()) load_peft_adapter(adapter_dir, *model);
  model->eval();
  const int64_t vocab = model->vocab_size(), max_len = model->max_positions();
  for (int64_t line = 1; std::getline(in, text); ++line) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    const ScoreInput s = parse_line(text, input, line, get_tokenizer, format, /*pairs=*/true);
    if (s.pair) {
      // Each response scored on its own: prompt ++ response ++ EOS, the prompt's tokens unscored.
      auto score_response = [&](const std::vector<int64_t>& response) {
        std::vector<int64_t> ids = s.prompt;
        ids.insert(ids.end(), response.begin(), response.end());
        check_ids(ids, vocab, max_len, input, line);
        return score_sequence(*model, ids, static_cast<int64_t>(s.prompt.size()), per_token);
      };
      const SequenceScore chosen = score_response(s.chosen);
      const SequenceScore rejected = score_response(s.rejected);
      nlohmann::json j{{"chosen", -chosen.nll},
                       {"rejected", -rejected.nll},
                       {"margin", rejected.nll - chosen.nll},
                       {"tokens_chosen", chosen.tokens},
                       {"tokens_rejected", rejected.tokens}};
      if (per_token) {
        j["log_probs_chosen"] = chosen.log_probs;
        j["log_probs_rejected"] = rejected.log_probs;
      }
      emit(j);
      continue;
    }
    check_ids(s.ids, vocab, max_len, input, line);
    const SequenceScore score = score_sequence(*model, s.ids, s.first_scored, per_token);
    nlohmann::json j{{"tokens", s.ids.size()}, {"nll", score.nll}};
    if (per_token) j["log_probs"] = score.log_probs;
    emit(j);
  }
  if (!output.empty()) write_file_atomic(output, out.str());
  return 0;
}

}  // namespace tailor::cli
