#include "data/preferences/rated_corpus.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "common/atomic_file.h"
#include "common/error.h"
#include "data/store/h5_file.h"
#include "data/store/jsonl_lines.h"

namespace tailor::data {
namespace fs = std::filesystem;
using nlohmann::json;

const std::vector<std::string>& ultrafeedback_aspects() {
  static const std::vector<std::string> aspects = {"helpfulness", "honesty",
                                                   "instruction_following", "truthfulness"};
  return aspects;
}

float RatedCorpus::rating(int64_t r, int64_t a) const {
  if (r < 0 || r >= num_responses() || a < 0 || a >= num_aspects()) {
    throw Error("data", "rating(" + std::to_string(r) + ", " + std::to_string(a) +
                            ") out of range for " + std::to_string(num_responses()) +
                            " responses x " + std::to_string(num_aspects()) + " aspects");
  }
  return ratings[static_cast<size_t>(r * num_aspects() + a)];
}

void RatedCorpus::validate() const {
  if (aspects.empty()) throw Error("data", "a rated corpus needs at least one aspect");
  std::set<std::string> distinct(aspects.begin(), aspects.end());
  if (distinct.size() != aspects.size()) throw Error("data", "aspect names repeat");
  const int64_t n = num_responses();
  if (static_cast<int64_t>(response_prompt.size()) != n) {
    throw Error("data", "response_prompt has " + std::to_string(response_prompt.size()) +
                            " entries for " + std::to_string(n) + " responses");
  }
  if (static_cast<int64_t>(ratings.size()) != n * num_aspects()) {
    throw Error("data", "ratings has " + std::to_string(ratings.size()) + " entries, expected " +
                            std::to_string(n) + " responses x " + std::to_string(num_aspects()) +
                            " aspects");
  }
  const int64_t p = static_cast<int64_t>(prompts.size());
  for (int64_t r = 0; r < n; ++r) {
    const int64_t index = response_prompt[static_cast<size_t>(r)];
    if (index < 0 || index >= p) {
      throw Error("data", "response " + std::to_string(r) + " points to prompt " +
                              std::to_string(index) + ", outside [0, " + std::to_string(p) + ")");
    }
  }
}

namespace {

using LineReader = JsonlReader;

std::string type_of(const json& value) {
  return value.type_name();
}

const json& member(const json& object, const std::string& key, const std::string& key_path,
                   const LineReader& reader) {
  auto it = object.find(key);
  if (it == object.end()) reader.fail(key_path, "missing");
  return *it;
}

const std::string& string_member(const json& object, const std::string& key,
                                 const std::string& key_path, const LineReader& reader) {
  const json& value = member(object, key, key_path, reader);
  if (!value.is_string()) reader.fail(key_path, "expected a string, got " + type_of(value));
  return value.get_ref<const std::string&>();
}

const float kNotRated = std::numeric_limits<float>::quiet_NaN();

// UltraFeedback's Rating: "1".."5" or "N/A" (NaN); a JSON number 1..5 is accepted as well.
float parse_rating(const json& value, const std::string& key_path, const LineReader& reader) {
  const std::string expected = "expected \"1\"..\"5\" or \"N/A\", got ";
  if (value.is_number()) {
    const double v = value.get<double>();
    if (!(v >= 1.0 && v <= 5.0)) reader.fail(key_path, expected + value.dump());
    return static_cast<float>(v);
  }
  if (!value.is_string()) reader.fail(key_path, expected + type_of(value));
  const std::string& s = value.get_ref<const std::string&>();
  if (s == "N/A") return kNotRated;
  if (s.size() == 1 && s[0] >= '1' && s[0] <= '5') return static_cast<float>(s[0] - '0');
  reader.fail(key_path, expected + value.dump());
}

// Content of the last assistant message of a chat message list.
const std::string& last_assistant(const json& object, const std::string& key,
                                  const LineReader& reader) {
  const json& messages = member(object, key, key, reader);
  if (!messages.is_array()) {
    reader.fail(key,
                "expected a list of {\"role\", \"content\"} messages, got " + type_of(messages));
  }
  const std::string* content = nullptr;
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string path = key + "[" + std::to_string(i) + "]";
    if (!messages[i].is_object())
      reader.fail(path, "expected a {\"role\", \"content\"} object, got " + type_of(messages[i]));
    const std::string& role = string_member(messages[i], "role", path + ".role", reader);
    const std::string& text = string_member(messages[i], "content", path + ".content", reader);
    if (role == "assistant") content = &text;
  }
  if (content == nullptr) reader.fail(key, "expected a message with role \"assistant\"");
  return *content;
}

float score_member(const json& object, const std::string& key, const LineReader& reader) {
  const json& value = member(object, key, key, reader);
  if (!value.is_number() || !std::isfinite(value.get<double>()))
    reader.fail(key, "expected a finite number, got " + value.dump());
  return value.get<float>();
}

void check_not_empty(const RatedCorpus& corpus, const fs::path& jsonl) {
  if (corpus.prompts.empty())
    throw Error("data", jsonl.string() + ": no records (the file is empty or blank)");
}

}  // namespace

PreferenceFormat detect_preference_format(const fs::path& jsonl) {
  LineReader reader(jsonl);
  std::string line;
  if (!reader.next(line))
    throw Error("data", jsonl.string() + ": no records (the file is empty or blank)");
  const json object = reader.parse_object(line);
  if (object.contains("completions")) return PreferenceFormat::ultrafeedback_raw;
  if (object.contains("score_chosen") || object.contains("score_rejected") ||
      (object.contains("chosen") && object["chosen"].is_array()))
    return PreferenceFormat::ultrafeedback_binarized;
  if (object.contains("chosen") && object.contains("rejected")) return PreferenceFormat::pairs;
  throw Error("data", reader.where() +
                          ": cannot tell the preference format; expected \"instruction\" + "
                          "\"completions\" (UltraFeedback raw), \"prompt\" + \"chosen\"/"
                          "\"rejected\" message lists + \"score_chosen\"/\"score_rejected\" "
                          "(binarized), or \"prompt\" + \"chosen\" + \"rejected\" strings (pairs)");
}

RatedCorpus read_ultrafeedback_raw(const fs::path& jsonl) {
  RatedCorpus corpus;
  corpus.aspects = ultrafeedback_aspects();
  corpus.source = jsonl.string();
  LineReader reader(jsonl);
  std::string line;
  while (reader.next(line)) {
    const json object = reader.parse_object(line);
    const std::string& instruction = string_member(object, "instruction", "instruction", reader);
    const json& completions = member(object, "completions", "completions", reader);
    if (!completions.is_array() || completions.empty()) {
      reader.fail("completions", "expected a non-empty list of completions, got " +
                                     (completions.is_array() ? "[]" : type_of(completions)));
    }
    // Parse the whole line before appending, so a failure leaves the corpus consistent.
    std::vector<std::string> responses;
    std::vector<float> ratings;
    for (size_t c = 0; c < completions.size(); ++c) {
      const std::string path = "completions[" + std::to_string(c) + "]";
      const json& completion = completions[c];
      if (!completion.is_object())
        reader.fail(path, "expected an object with \"response\" and \"annotations\"");
      responses.push_back(string_member(completion, "response", path + ".response", reader));
      const json& annotations = member(completion, "annotations", path + ".annotations", reader);
      if (!annotations.is_object())
        reader.fail(path + ".annotations", "expected an object, got " + type_of(annotations));
      for (const std::string& aspect : corpus.aspects) {
        const std::string aspect_path = path + ".annotations." + aspect;
        auto it = annotations.find(aspect);
        if (it == annotations.end() || it->is_null()) {
          ratings.push_back(kNotRated);  // aspect not annotated
          continue;
        }
        if (!it->is_object())
          reader.fail(aspect_path, "expected an object with \"Rating\", got " + type_of(*it));
        const json& rating = member(*it, "Rating", aspect_path + ".Rating", reader);
        ratings.push_back(parse_rating(rating, aspect_path + ".Rating", reader));
      }
    }
    const int64_t prompt = static_cast<int64_t>(corpus.prompts.size());
    corpus.prompts.push_back(instruction);
    for (std::string& response : responses) {
      corpus.responses.push_back(std::move(response));
      corpus.response_prompt.push_back(prompt);
    }
    corpus.ratings.insert(corpus.ratings.end(), ratings.begin(), ratings.end());
  }
  check_not_empty(corpus, jsonl);
  corpus.validate();
  return corpus;
}

RatedCorpus read_ultrafeedback_binarized(const fs::path& jsonl) {
  RatedCorpus corpus;
  corpus.aspects = {"overall"};
  corpus.source = jsonl.string();
  LineReader reader(jsonl);
  std::string line;
  while (reader.next(line)) {
    const json object = reader.parse_object(line);
    const std::string& prompt = string_member(object, "prompt", "prompt", reader);
    const std::string& chosen = last_assistant(object, "chosen", reader);
    const std::string& rejected = last_assistant(object, "rejected", reader);
    const float score_chosen = score_member(object, "score_chosen", reader);
    const float score_rejected = score_member(object, "score_rejected", reader);
    const int64_t index = static_cast<int64_t>(corpus.prompts.size());
    corpus.prompts.push_back(prompt);
    corpus.responses.push_back(chosen);
    corpus.responses.push_back(rejected);
    corpus.response_prompt.insert(corpus.response_prompt.end(), {index, index});
    corpus.ratings.insert(corpus.ratings.end(), {score_chosen, score_rejected});
  }
  check_not_empty(corpus, jsonl);
  corpus.validate();
  return corpus;
}

void write_rated_store(const fs::path& h5, const RatedCorpus& corpus) {
  corpus.validate();
  write_atomic_with(h5, [&](const fs::path& tmp) {
    h5::File file = h5::File::create(tmp);
    file.set_attribute("schema", std::string(kRatedSchema));
    file.set_attribute("schema_version", kRatedSchemaVersion);
    file.set_attribute("kind", std::string("rated"));
    file.set_attribute("source", corpus.source);
    file.set_attribute("num_aspects", corpus.num_aspects());
    file.write_strings("aspects", corpus.aspects);
    file.write_strings("prompts", corpus.prompts);
    file.write_strings("responses", corpus.responses);
    file.write_int64("response_prompt", corpus.response_prompt);
    file.write_float32("ratings", corpus.ratings);
    file.close();  // surfaces flush errors before the rename
  });
}

RatedCorpus read_rated_store(const fs::path& h5) {
  h5::File file = h5::File::open_read_only(h5);
  const std::string where = h5.string() + ": ";
  if (!file.has_attribute("schema")) {
    throw Error("data", where + "not a rated corpus store (no 'schema' attribute; expected '" +
                            kRatedSchema + "')");
  }
  const std::string schema = file.string_attribute("schema");
  if (schema != kRatedSchema) {
    throw Error("data", where + "schema is '" + schema + "', expected '" + kRatedSchema + "'");
  }
  const int64_t version = file.int_attribute("schema_version");
  if (version > kRatedSchemaVersion || version < 1) {
    throw Error("data", where + "schema_version " + std::to_string(version) +
                            " is not one this build reads (1.." +
                            std::to_string(kRatedSchemaVersion) + ")");
  }
  RatedCorpus corpus;
  corpus.source = file.string_attribute("source");
  corpus.aspects = file.read_strings("aspects");
  corpus.prompts = file.read_strings("prompts");
  corpus.responses = file.read_strings("responses");
  corpus.response_prompt = file.read_int64("response_prompt");
  corpus.ratings = file.read_float32("ratings");
  const int64_t num_aspects = file.int_attribute("num_aspects");
  if (num_aspects != corpus.num_aspects()) {
    throw Error("data", where + "attribute num_aspects = " + std::to_string(num_aspects) +
                            " but /aspects has " + std::to_string(corpus.num_aspects()) + " names");
  }
  try {
    corpus.validate();
  } catch (const Error& e) {
    throw Error("data", where + std::string(e.what()).substr(e.scope().size() + 3));
  }
  return corpus;
}

RatedCorpus read_rated_corpus(const fs::path& path) {
  if (path.extension() == ".h5" || path.extension() == ".hdf5") return read_rated_store(path);
  switch (detect_preference_format(path)) {
    case PreferenceFormat::ultrafeedback_raw:
      return read_ultrafeedback_raw(path);
    case PreferenceFormat::ultrafeedback_binarized:
      return read_ultrafeedback_binarized(path);
    case PreferenceFormat::pairs:
      break;
  }
  throw Error("data", path.string() +
                          ": holds {prompt, chosen, rejected} pairs, which carry labels but no "
                          "per-aspect ratings; expected UltraFeedback raw or binarized JSONL");
}

}  // namespace tailor::data
