// `tailor tokenize`: text <-> token ids, one JSON value per line so it composes with shell
// pipelines and JSONL tooling. Encoding gives what Hugging Face's `tokenizer(text)["input_ids"]`
// gives: special tokens written in the text ("<|endoftext|>", "<s>") are recognised, and the
// tokenizer's post-processor adds its special tokens (GPT-2: none; Mistral/Llama: <s> first).
//
//   tailor tokenize --tokenizer DIR --text "Hello world"              -> [15496, 995] (GPT-2)
//   tailor tokenize --tokenizer MISTRAL --text "Hello world"          -> [1, 22557, 1526]
//   tailor tokenize --tokenizer MISTRAL --no-special-tokens --text "Hello world" -> [22557, 1526]
//   tailor tokenize --tokenizer DIR --input lines.txt                 -> one array per line
//   tailor tokenize --tokenizer DIR --decode --text "[15496, 995]"    -> Hello world (raw)
//   tailor tokenize --tokenizer DIR --decode --input ids.jsonl        -> one JSON string per line
//
// --no-special-tokens leaves out the post-processor's tokens (HF add_special_tokens=False);
// --split-special-tokens encodes special-token text as plain text (HF split_special_tokens=True);
// --decode --skip-special-tokens drops special tokens (HF skip_special_tokens=True).
// Formats (stable): an id array is printed as "[" ids joined by ", " "]" (json.dumps style),
// followed by a newline. --input splits its file (or stdin for "-") on '\n'; the newline is not
// part of the line, a '\r' before it is (CRLF files keep their "\r" -> GPT-2 id 201); a final
// line without '\n' still counts. Decoding --text prints the bytes exactly, with no newline
// added. Decoding --input prints JSON strings so newlines survive; byte sequences that are not
// valid UTF-8 (ids that split a character) become U+FFFD there.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "models/tokenizer/tokenizer.h"

namespace tailor::cli {

namespace {

std::string format_ids(const std::vector<int32_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(ids[i]);
  }
  out += "]";
  return out;
}

// Parses one JSON array of token ids; `where` names the source ("--text" or "FILE:LINE").
std::vector<int32_t> parse_ids(const std::string& line, const std::string& where,
                               int64_t vocab_size) {
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error("tokenize", where + ": expected a JSON array of token ids: " + e.what());
  }
  if (!value.is_array())
    throw Error("tokenize",
                where + ": expected a JSON array of token ids, got " + value.type_name());
  std::vector<int32_t> ids;
  ids.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const nlohmann::json& id = value[i];
    if (!id.is_number_integer())
      throw Error("tokenize",
                  where + ": element " + std::to_string(i) + " is not an integer: " + id.dump());
    const int64_t v = id.get<int64_t>();
    if (v < 0 || v >= vocab_size)
      throw Error("tokenize", where + ": token id " + id.dump() + " is out of range [0, " +
                                  std::to_string(vocab_size) + ")");
    ids.push_back(int32_t(v));
  }
  return ids;
}

std::string decode_at(const Tokenizer& tokenizer, const std::vector<int32_t>& ids,
                      bool skip_special, const std::string& where) {
  try {
    return tokenizer.decode(ids, skip_special);
  } catch (const Error& e) {
    throw Error("tokenize", where + ": " + e.what());
  }
}

void write_out(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
}

}  // namespace

int tokenize_command(const std::vector<std::string>& args) {
  CLI::App app{
      "Encode text to token ids (a JSON array per line), as Hugging Face's "
      "tokenizer(text)[\"input_ids\"] does, or decode ids to text.",
      args.empty() ? "tailor tokenize" : args[0]};
  std::string tokenizer_dir, text, input;
  bool decode = false, no_special = false, split_special = false, skip_special = false;
  app.add_option("--tokenizer", tokenizer_dir,
                 "directory with tokenizer.json, or vocab.json + merges.txt "
                 "(+ tokenizer_config.json)")
      ->required();
  auto* source = app.add_option_group("source", "exactly one of --text / --input");
  source->add_option("--text", text,
                     "text to encode; with --decode a JSON array of ids, printed back raw");
  source->add_option("--input", input,
                     "file ('-' for stdin) processed line by line: encode prints one JSON array "
                     "per line; with --decode each line is a JSON array, printed as a JSON "
                     "string");
  source->require_option(1);
  app.add_flag("--decode", decode, "ids -> text instead of text -> ids");
  auto* no_special_flag = app.add_flag(
      "--no-special-tokens", no_special,
      "leave out the special tokens the tokenizer's post-processor adds (Mistral's <s>; GPT-2 "
      "adds none), as HF add_special_tokens=False");
  auto* split_flag =
      app.add_flag("--split-special-tokens", split_special,
                   "encode special-token text such as <s> or <|endoftext|> as plain text (HF "
                   "split_special_tokens=True); by default it becomes the special token");
  auto* skip_flag =
      app.add_flag("--skip-special-tokens", skip_special,
                   "with --decode: drop special tokens (HF skip_special_tokens=True)");
  app.footer(
      "Id arrays print as [15496, 995]. --input lines exclude the '\\n' but keep a '\\r'.\n"
      "Decoded JSON strings replace bytes that are not valid UTF-8 with U+FFFD.");

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  if (!reversed.empty()) reversed.pop_back();  // args[0] is the program name
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  if (decode && (*no_special_flag || *split_flag)) {
    std::fprintf(stderr,
                 "tailor tokenize: --no-special-tokens and --split-special-tokens "
                 "apply to encoding, not to --decode\n");
    return 2;
  }
  if (!decode && *skip_flag) {
    std::fprintf(stderr, "tailor tokenize: --skip-special-tokens applies to --decode only\n");
    return 2;
  }

  const Tokenizer tokenizer = Tokenizer::from_dir(tokenizer_dir);
  const bool from_text = !source->get_option("--text")->empty();
  const auto encode = [&](const std::string& s) {
    std::vector<int32_t> ids = tokenizer.encode(s, /*allow_special=*/!split_special);
    if (!no_special) {
      ids.insert(ids.begin(), tokenizer.special_prefix().begin(), tokenizer.special_prefix().end());
      ids.insert(ids.end(), tokenizer.special_suffix().begin(), tokenizer.special_suffix().end());
    }
    return ids;
  };

  if (from_text) {
    if (decode) {
      write_out(decode_at(tokenizer, parse_ids(text, "--text", tokenizer.vocab_size()),
                          skip_special, "--text"));
    } else {
      write_out(format_ids(encode(text)) + "\n");
    }
    std::fflush(stdout);
    return 0;
  }

  std::string contents;
  if (input == "-") {
    contents.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    contents = read_file(input);
  }
  const std::string name = input == "-" ? "<stdin>" : input;
  std::string out;
  size_t line_number = 0;
  for (size_t pos = 0; pos < contents.size();) {
    size_t end = contents.find('\n', pos);
    if (end == std::string::npos) end = contents.size();
    const std::string line = contents.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (decode) {
      const std::string where = name + ":" + std::to_string(line_number);
      const std::string decoded =
          decode_at(tokenizer, parse_ids(line, where, tokenizer.vocab_size()), skip_special, where);
      out += nlohmann::json(decoded).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } else {
      out += format_ids(encode(line));
    }
    out += '\n';
    if (out.size() > (1 << 20)) {
      write_out(out);
      out.clear();
    }
  }
  write_out(out);
  std::fflush(stdout);
  return 0;
}

}  // namespace tailor::cli
