// `tailor tokenize`: text <-> GPT-2 token ids, one JSON value per line so it composes with
// shell pipelines and JSONL tooling.
//
//   tailor tokenize --tokenizer DIR --text "Hello world"              -> [15496, 995]
//   tailor tokenize --tokenizer DIR --input lines.txt                 -> one array per line
//   tailor tokenize --tokenizer DIR --decode --text "[15496, 995]"    -> Hello world (raw)
//   tailor tokenize --tokenizer DIR --decode --input ids.jsonl        -> one JSON string per line
//
// Formats (stable): an id array is printed as "[" ids joined by ", " "]" (json.dumps style),
// followed by a newline. --input splits its file (or stdin for "-") on '\n'; the newline is not
// part of the line, a '\r' before it is (CRLF files keep their "\r" -> id 201); a final line
// without '\n' still counts. Decoding --text prints the bytes exactly, with no newline added.
// Decoding --input prints JSON strings so newlines survive; byte sequences that are not valid
// UTF-8 (ids that split a character) become U+FFFD there.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "models/tokenizer/tokenizer.h"
#include "trainer/cli/commands.h"

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
                      const std::string& where) {
  try {
    return tokenizer.decode(ids);
  } catch (const Error& e) {
    throw Error("tokenize", where + ": " + e.what());
  }
}

void write_out(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
}

}  // namespace

int tokenize_command(const std::vector<std::string>& args) {
  CLI::App app{"Encode text to GPT-2 token ids (a JSON array per line) or decode ids to text.",
               args.empty() ? "tailor tokenize" : args[0]};
  std::string tokenizer_dir, text, input;
  bool decode = false, allow_special = false;
  app.add_option("--tokenizer", tokenizer_dir,
                 "directory with tokenizer.json, or vocab.json + merges.txt")
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
  app.add_flag("--allow-special", allow_special,
               "recognise special tokens such as <|endoftext|> in the text (otherwise they are "
               "encoded as plain text)");
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

  const Tokenizer tokenizer = Tokenizer::from_dir(tokenizer_dir);
  const bool from_text = !source->get_option("--text")->empty();

  if (from_text) {
    if (decode) {
      write_out(decode_at(tokenizer, parse_ids(text, "--text", tokenizer.vocab_size()), "--text"));
    } else {
      write_out(format_ids(tokenizer.encode(text, allow_special)) + "\n");
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
          decode_at(tokenizer, parse_ids(line, where, tokenizer.vocab_size()), where);
      out += nlohmann::json(decoded).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } else {
      out += format_ids(tokenizer.encode(line, allow_special));
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
