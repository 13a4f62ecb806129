// GPT-2 byte-level BPE. Encoding: text -> pre-tokens (models/tokenizer/pretokenize.h) -> bytes ->
// BPE merges -> ids; decoding maps ids back to bytes. Behaviour follows openai/gpt-2 encoder.py and
// Hugging Face tokenizers (BPE model + ByteLevel pre-tokenizer/decoder).
#include "models/tokenizer/tokenizer.h"

#include <array>
#include <climits>
#include <mutex>
#include <queue>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "models/tokenizer/byte_level.h"
#include "models/tokenizer/pretokenize.h"

namespace tailor {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kEndOfText = "<|endoftext|>";
constexpr int64_t kDefaultModelMaxLength = 1024;  // GPT-2's context length
// Pre-tokens whose BPE result is remembered; like HF tokenizers' BPE cache, new entries are
// simply not stored once it is full, which keeps memory bounded on endless streams.
constexpr size_t kCacheCapacity = 1 << 16;

Error tokenizer_error(const std::string& message) {
  return Error("tokenizer", message);
}

uint64_t pair_key(int32_t left, int32_t right) {
  return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
}

json parse_json_file(const fs::path& path) {
  const std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw tokenizer_error(path.string() + ": invalid JSON: " + e.what());
  }
}

std::string json_type(const json& j) {
  return j.type_name();
}

// A token that is matched in raw text before pre-tokenization (HF "added tokens").
struct AddedToken {
  std::string content;
  int32_t id;
  bool special;  // special tokens are matched only with allow_special
};

struct MergeRule {
  int32_t rank;
  int32_t merged_id;
};

// What a tokenizer is made of, as read from disk, before the lookup tables are built.
struct TokenizerSpec {
  std::unordered_map<std::string, int32_t> vocab;           // byte-symbol spelling -> id
  std::vector<std::pair<std::string, std::string>> merges;  // rank order
  std::vector<std::string> merge_where;  // "merges.txt:7" per merge, for error messages
  std::vector<AddedToken> added;
  int64_t model_max_length = kDefaultModelMaxLength;
  std::string eos_token = kEndOfText;
};

int32_t parse_id(const json& value, const std::string& where) {
  if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > INT32_MAX)
    throw tokenizer_error(where + ": expected a non-negative integer token id, got " +
                          value.dump());
  return value.get<int32_t>();
}

void read_vocab_object(const json& vocab, const std::string& where, TokenizerSpec& spec) {
  if (!vocab.is_object())
    throw tokenizer_error(where + ": expected an object {token: id}, got " + json_type(vocab));
  spec.vocab.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items())
    spec.vocab.emplace(token, parse_id(id, where + " key \"" + token + "\""));
}

// Splits "a b" into its two tokens (HF and OpenAI both split merges on a single space).
bool split_merge(std::string_view line, std::pair<std::string, std::string>& merge) {
  const size_t space = line.find(' ');
  if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
      line.find(' ', space + 1) != std::string_view::npos)
    return false;
  merge = {std::string(line.substr(0, space)), std::string(line.substr(space + 1))};
  return true;
}

void read_merges_txt(const fs::path& path, TokenizerSpec& spec) {
  const std::string text = read_file(path);
  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos <= text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // CRLF files
    lines.push_back(line);
    pos = end + 1;
  }
  while (!lines.empty() && lines.back().empty())
    lines.pop_back();  // trailing blank lines
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string where = path.string() + ":" + std::to_string(i + 1);
    if (i == 0 && lines[i].substr(0, 8) == "#version") continue;
    std::pair<std::string, std::string> merge;
    if (!split_merge(lines[i], merge))
      throw tokenizer_error(where + ": expected two tokens separated by one space, got \"" +
                            std::string(lines[i]) + "\"");
    spec.merges.push_back(std::move(merge));
    spec.merge_where.push_back(where);
  }
}

AddedToken read_added_token(const json& entry, const std::string& where, int32_t id) {
  if (!entry.is_object()) throw tokenizer_error(where + ": expected an object");
  if (!entry.contains("content") || !entry["content"].is_string())
    throw tokenizer_error(where + ".content: expected a string");
  const json special = entry.value("special", json(false));
  if (!special.is_boolean()) throw tokenizer_error(where + ".special: expected true or false");
  return {entry["content"].get<std::string>(), id, special.get<bool>()};
}

// tokenizer_config.json (optional next to vocab.json/merges.txt or tokenizer.json): the context
// length, the end-of-text token and added tokens as HF's `added_tokens_decoder` lists them.
void read_tokenizer_config(const fs::path& path, TokenizerSpec& spec) {
  const json config = parse_json_file(path);
  const std::string file = path.string();
  if (!config.is_object()) throw tokenizer_error(file + ": expected a JSON object");
  if (config.contains("model_max_length")) {
    const json& m = config["model_max_length"];
    if (!m.is_number() || m.get<double>() < 1)
      throw tokenizer_error(file + ": model_max_length: expected a positive number, got " +
                            m.dump());
    // HF writes 1e30 for "no limit".
    spec.model_max_length =
        m.get<double>() >= 9.2e18 ? INT64_MAX : static_cast<int64_t>(m.get<double>());
  }
  if (config.contains("eos_token") && !config["eos_token"].is_null()) {
    const json& eos = config["eos_token"];
    if (eos.is_string()) {
      spec.eos_token = eos.get<std::string>();
    } else if (eos.is_object() && eos.contains("content") && eos["content"].is_string()) {
      spec.eos_token = eos["content"].get<std::string>();
    } else {
      throw tokenizer_error(file + ": eos_token: expected a string or {\"content\": ...}");
    }
  }
  if (config.contains("added_tokens_decoder")) {
    const json& decoder = config["added_tokens_decoder"];
    if (!decoder.is_object())
      throw tokenizer_error(file + ": added_tokens_decoder: expected an object {id: token}");
    for (const auto& [key, entry] : decoder.items()) {
      const std::string where = file + ": added_tokens_decoder." + key;
      int64_t id = -1;
      try {
        size_t used = 0;
        id = std::stoll(key, &used);
        if (used != key.size()) id = -1;
      } catch (const std::exception&) {
      }
      if (id < 0 || id > INT32_MAX)
        throw tokenizer_error(where + ": expected a non-negative integer id as the key");
      spec.added.push_back(read_added_token(entry, where, int32_t(id)));
    }
  }
}

// Accepts GPT-2's pre-tokenizer: ByteLevel (add_prefix_space false, use_regex true), alone or
// as the only member of a Sequence. Anything else would split text differently, so refuse it.
void check_byte_level(const json& pre, const std::string& where) {
  if (!pre.is_object() || !pre.contains("type") || !pre["type"].is_string())
    throw tokenizer_error(where + ": expected a ByteLevel pre-tokenizer, got " + pre.dump());
  const std::string type = pre["type"].get<std::string>();
  if (type == "Sequence") {
    const json& members = pre.value("pretokenizers", json());
    if (!members.is_array() || members.empty())
      throw tokenizer_error(where + ".pretokenizers: expected a non-empty array");
    for (size_t i = 0; i < members.size(); ++i)
      check_byte_level(members[i], where + ".pretokenizers[" + std::to_string(i) + "]");
    return;
  }
  if (type != "ByteLevel")
    throw tokenizer_error(where + ": pre-tokenizer type \"" + type +
                          "\" is not supported (only GPT-2's ByteLevel)");
  if (pre.value("add_prefix_space", json(false)) != json(false))
    throw tokenizer_error(where + ".add_prefix_space: only false is supported (GPT-2)");
  if (pre.value("use_regex", json(true)) != json(true))
    throw tokenizer_error(where + ".use_regex: only true is supported (GPT-2)");
}

void read_tokenizer_json(const fs::path& path, TokenizerSpec& spec) {
  const json root = parse_json_file(path);
  const std::string file = path.string();
  if (!root.is_object()) throw tokenizer_error(file + ": expected a JSON object");
  if (root.contains("normalizer") && !root["normalizer"].is_null())
    throw tokenizer_error(file + ": normalizer: expected null (GPT-2 has none), got " +
                          root["normalizer"].dump().substr(0, 200));
  if (!root.contains("pre_tokenizer"))
    throw tokenizer_error(file + ": pre_tokenizer: missing (expected ByteLevel)");
  check_byte_level(root["pre_tokenizer"], file + ": pre_tokenizer");

  if (!root.contains("model") || !root["model"].is_object())
    throw tokenizer_error(file + ": model: expected an object");
  const json& model = root["model"];
  if (model.contains("type") && model["type"] != json("BPE"))
    throw tokenizer_error(file + ": model.type: expected \"BPE\", got " + model["type"].dump());
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() && model[key] != json(""))
      throw tokenizer_error(file + ": model." + key + ": only null or \"\" is supported (GPT-2)");
  }
  if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"] != json(0.0))
    throw tokenizer_error(file + ": model.dropout: only null is supported");
  if (model.value("ignore_merges", json(false)) != json(false))
    throw tokenizer_error(file + ": model.ignore_merges: only false is supported (GPT-2)");

  if (!model.contains("vocab")) throw tokenizer_error(file + ": model.vocab: missing");
  read_vocab_object(model["vocab"], file + ": model.vocab", spec);
  if (!model.contains("merges") || !model["merges"].is_array())
    throw tokenizer_error(file + ": model.merges: expected an array");
  const json& merges = model["merges"];
  spec.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string where = file + ": model.merges[" + std::to_string(i) + "]";
    const json& m = merges[i];
    std::pair<std::string, std::string> merge;
    bool ok = false;
    if (m.is_string()) {
      ok = split_merge(m.get_ref<const std::string&>(), merge);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merge = {m[0].get<std::string>(), m[1].get<std::string>()};
      ok = !merge.first.empty() && !merge.second.empty();
    }
    if (!ok) throw tokenizer_error(where + ": expected \"a b\" or [\"a\", \"b\"], got " + m.dump());
    spec.merges.push_back(std::move(merge));
    spec.merge_where.push_back(where);
  }

  if (root.contains("added_tokens") && !root["added_tokens"].is_null()) {
    const json& added = root["added_tokens"];
    if (!added.is_array()) throw tokenizer_error(file + ": added_tokens: expected an array");
    for (size_t i = 0; i < added.size(); ++i) {
      const std::string where = file + ": added_tokens[" + std::to_string(i) + "]";
      if (!added[i].is_object() || !added[i].contains("id"))
        throw tokenizer_error(where + ".id: missing");
      spec.added.push_back(
          read_added_token(added[i], where, parse_id(added[i]["id"], where + ".id")));
    }
  }
}

}  // namespace

struct Tokenizer::Impl {
  TokenizerSpec spec;

  // Lookup tables built from `spec` by build().
  std::unordered_map<uint64_t, MergeRule> merge_rules;  // (left id, right id) -> rule
  std::array<int32_t, 256> byte_ids{};                  // id of each single-byte token
  std::vector<std::string> id_token;                    // vocab.json spelling per id
  std::vector<std::string> id_bytes;                    // decoded bytes per id
  std::vector<bool> id_assigned;
  int32_t eos = -1;

  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  void build(const std::string& where);
  void encode_ordinary(std::string_view text, std::vector<int32_t>& ids) const;
  void encode_piece(std::string_view piece, std::vector<int32_t>& ids) const;
  std::vector<int32_t> bpe(std::string_view piece) const;
};

void Tokenizer::Impl::build(const std::string& where) {
  int64_t size = 0;
  for (const auto& [token, id] : spec.vocab)
    size = std::max<int64_t>(size, int64_t(id) + 1);
  for (const AddedToken& t : spec.added)
    size = std::max<int64_t>(size, int64_t(t.id) + 1);
  id_token.assign(size, "");
  id_bytes.assign(size, "");
  id_assigned.assign(size, false);
  for (const auto& [token, id] : spec.vocab) {
    if (id_assigned[id])
      throw tokenizer_error(where + ": id " + std::to_string(id) + " is assigned to both \"" +
                            id_token[id] + "\" and \"" + token + "\"");
    id_assigned[id] = true;
    id_token[id] = token;
    // HF's ByteLevel decoder: a token with a character outside the byte table is emitted as its
    // own UTF-8 text.
    id_bytes[id] = byte_level::symbols_to_bytes(token).value_or(token);
  }

  // Added tokens: drop repeats (GPT-2's <|endoftext|> may arrive from vocab.json and from
  // tokenizer_config.json); the same content must not carry two ids.
  std::vector<AddedToken> added;
  for (const AddedToken& t : spec.added) {
    bool repeat = false;
    for (AddedToken& seen : added) {
      if (seen.content != t.content && seen.id != t.id) continue;
      if (seen.content != t.content || seen.id != t.id)
        throw tokenizer_error(where + ": added token \"" + t.content + "\" (id " +
                              std::to_string(t.id) + ") conflicts with \"" + seen.content +
                              "\" (id " + std::to_string(seen.id) + ")");
      seen.special = seen.special || t.special;
      repeat = true;
    }
    if (repeat) continue;
    auto in_vocab = spec.vocab.find(t.content);
    if (in_vocab != spec.vocab.end() && in_vocab->second != t.id)
      throw tokenizer_error(where + ": added token \"" + t.content + "\" has id " +
                            std::to_string(t.id) + " but the vocabulary gives it id " +
                            std::to_string(in_vocab->second));
    if (id_assigned[t.id] && in_vocab == spec.vocab.end())
      throw tokenizer_error(where + ": added token \"" + t.content + "\" reuses id " +
                            std::to_string(t.id) + " of \"" + id_token[t.id] + "\"");
    id_assigned[t.id] = true;
    id_token[t.id] = t.content;
    id_bytes[t.id] = t.content;  // added tokens decode to their content verbatim (HF)
    added.push_back(t);
  }
  spec.added = std::move(added);

  for (int b = 0; b < 256; ++b) {
    const std::string symbol = byte_level::bytes_to_symbols(std::string(1, char(b)));
    auto it = spec.vocab.find(symbol);
    if (it == spec.vocab.end()) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02X", b);
      throw tokenizer_error(where + ": vocabulary lacks \"" + symbol +
                            "\", the byte-level symbol for byte " + hex +
                            " (not a byte-level BPE vocabulary?)");
    }
    byte_ids[b] = it->second;
  }

  merge_rules.reserve(spec.merges.size());
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const auto& [left, right] = spec.merges[rank];
    const auto id_of = [&](const std::string& token, const char* what) {
      auto it = spec.vocab.find(token);
      if (it == spec.vocab.end())
        throw tokenizer_error(spec.merge_where[rank] + ": " + what + " \"" + token +
                              "\" is not in the vocabulary");
      return it->second;
    };
    const int32_t a = id_of(left, "token"), b = id_of(right, "token");
    const int32_t merged = id_of(left + right, "merged token");
    // A repeated pair takes its last rank, as dict(zip(merges, range(n))) in openai/gpt-2 and
    // HF's HashMap collect do.
    merge_rules[pair_key(a, b)] = {int32_t(rank), merged};
  }

  for (const AddedToken& t : spec.added)
    if (t.content == spec.eos_token) eos = t.id;
  if (eos < 0) {
    auto it = spec.vocab.find(spec.eos_token);
    if (it != spec.vocab.end()) eos = it->second;
  }
}

// BPE over the bytes of one pre-token: repeatedly merge the adjacent pair with the lowest rank
// (openai/gpt-2 encoder.py `bpe`). A min-heap of candidate pairs ordered by (rank, position)
// makes this O(n log n) instead of O(n^2), as in HF tokenizers' Word::merge_all; with
// well-formed merges (a merged token only appears in later merges) the result is identical.
std::vector<int32_t> Tokenizer::Impl::bpe(std::string_view piece) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // neighbours in the linked list, -1 at the ends
    bool alive;          // false once merged into its left neighbour
  };
  struct Candidate {
    int32_t rank, pos, merged_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  const int32_t n = int32_t(piece.size());
  std::vector<Symbol> symbols(n);
  for (int32_t i = 0; i < n; ++i)
    symbols[i] = {byte_ids[static_cast<unsigned char>(piece[i])], i - 1, i + 1 < n ? i + 1 : -1,
                  true};
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  const auto push_pair = [&](int32_t left) {
    const int32_t right = symbols[left].next;
    if (right < 0) return;
    auto it = merge_rules.find(pair_key(symbols[left].id, symbols[right].id));
    if (it != merge_rules.end()) heap.push({it->second.rank, left, it->second.merged_id});
  };
  for (int32_t i = 0; i + 1 < n; ++i)
    push_pair(i);
  while (!heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    // Skip stale candidates: either side may have changed since the pair was queued.
    auto it = merge_rules.find(pair_key(left.id, symbols[left.next].id));
    if (it == merge_rules.end() || it->second.merged_id != top.merged_id) continue;
    Symbol& right = symbols[left.next];
    left.id = top.merged_id;
    left.next = right.next;
    right.alive = false;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }
  std::vector<int32_t> ids;
  for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = symbols[i].next)
    ids.push_back(symbols[i].id);
  return ids;
}

void Tokenizer::Impl::encode_piece(std::string_view piece, std::vector<int32_t>& ids) const {
  if (piece.size() == 1) {
    ids.push_back(byte_ids[static_cast<unsigned char>(piece[0])]);
    return;
  }
  std::string key(piece);
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto it = cache.find(key);
    if (it != cache.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> result = bpe(piece);
  ids.insert(ids.end(), result.begin(), result.end());
  std::lock_guard<std::mutex> lock(cache_mutex);
  if (cache.size() < kCacheCapacity) cache.emplace(std::move(key), std::move(result));
}

void Tokenizer::Impl::encode_ordinary(std::string_view text, std::vector<int32_t>& ids) const {
  for (std::string_view piece : gpt2_pretokenize(text))
    encode_piece(piece, ids);
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_dir(const fs::path& dir) {
  auto impl = std::make_unique<Impl>();
  TokenizerSpec& spec = impl->spec;
  if (fs::exists(dir / "tokenizer.json")) {
    read_tokenizer_json(dir / "tokenizer.json", spec);
  } else if (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) {
    read_vocab_object(parse_json_file(dir / "vocab.json"), (dir / "vocab.json").string(), spec);
    read_merges_txt(dir / "merges.txt", spec);
    // GPT2Tokenizer treats <|endoftext|> as special (its bos/eos/unk token).
    auto eot = spec.vocab.find(kEndOfText);
    if (eot != spec.vocab.end()) spec.added.push_back({kEndOfText, eot->second, true});
  } else {
    throw tokenizer_error(dir.string() + ": expected tokenizer.json, or vocab.json and merges.txt");
  }
  if (fs::exists(dir / "tokenizer_config.json"))
    read_tokenizer_config(dir / "tokenizer_config.json", spec);
  impl->build(dir.string());
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(const std::string& text, bool allow_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  // Added tokens are cut out of the raw text first (HF AddedVocabulary): leftmost match wins,
  // the longest one among matches at the same position.
  std::vector<const AddedToken*> active;
  for (const AddedToken& t : impl_->spec.added)
    if (!t.content.empty() && (allow_special || !t.special)) active.push_back(&t);
  std::vector<size_t> next(active.size());  // next occurrence of each at or after `pos`
  for (size_t k = 0; k < active.size(); ++k)
    next[k] = text.find(active[k]->content);
  size_t pos = 0;
  while (!active.empty()) {
    size_t best_pos = std::string::npos;
    const AddedToken* best = nullptr;
    for (size_t k = 0; k < active.size(); ++k) {
      if (next[k] != std::string::npos && next[k] < pos)
        next[k] = text.find(active[k]->content, pos);
      if (next[k] != std::string::npos &&
          (next[k] < best_pos ||
           (next[k] == best_pos && active[k]->content.size() > best->content.size()))) {
        best_pos = next[k];
        best = active[k];
      }
    }
    if (!best) break;
    impl_->encode_ordinary(std::string_view(text).substr(pos, best_pos - pos), ids);
    ids.push_back(best->id);
    pos = best_pos + best->content.size();
  }
  impl_->encode_ordinary(std::string_view(text).substr(pos), ids);
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  for (int32_t id : ids) {
    if (id < 0 || id >= int64_t(impl_->id_bytes.size()) || !impl_->id_assigned[id])
      throw tokenizer_error("decode: token id " + std::to_string(id) +
                            " is not in the vocabulary (size " + std::to_string(vocab_size()) +
                            ")");
    text += impl_->id_bytes[id];
  }
  return text;
}

int64_t Tokenizer::vocab_size() const {
  return int64_t(impl_->id_bytes.size());
}

int32_t Tokenizer::eos_id() const {
  if (impl_->eos < 0)
    throw tokenizer_error("the vocabulary has no end-of-text token \"" + impl_->spec.eos_token +
                          "\"");
  return impl_->eos;
}

void Tokenizer::save(const fs::path& dir) const {
  const Impl& impl = *impl_;
  // vocab.json in id order; added tokens that are not in the model vocabulary are listed too so
  // that GPT2Tokenizer (which reads added_tokens_decoder below) finds every id.
  // Written by hand: nlohmann::ordered_json inserts in linear time, quadratic for 50k tokens.
  std::string vocab = "{";
  for (size_t id = 0; id < impl.id_token.size(); ++id) {
    if (!impl.id_assigned[id]) continue;
    if (vocab.size() > 1) vocab += ", ";
    vocab += json(impl.id_token[id]).dump() + ": " + std::to_string(id);
  }
  vocab += "}";
  write_file_atomic(dir / "vocab.json", vocab + "\n");

  std::string merges = "#version: 0.2\n";
  for (const auto& [left, right] : impl.spec.merges)
    merges += left + " " + right + "\n";
  write_file_atomic(dir / "merges.txt", merges);

  const std::string eos = impl.spec.eos_token;
  nlohmann::ordered_json added = nlohmann::ordered_json::object();
  for (const AddedToken& t : impl.spec.added) {
    added[std::to_string(t.id)] = {{"content", t.content},     {"lstrip", false},
                                   {"normalized", !t.special}, {"rstrip", false},
                                   {"single_word", false},     {"special", t.special}};
  }
  // clean_up_tokenization_spaces false keeps HF's decode exact (no " ." -> "." rewriting).
  nlohmann::ordered_json config = {{"tokenizer_class", "GPT2Tokenizer"},
                                   {"model_max_length", impl.spec.model_max_length},
                                   {"bos_token", eos},
                                   {"eos_token", eos},
                                   {"unk_token", eos},
                                   {"add_prefix_space", false},
                                   {"add_bos_token", false},
                                   {"clean_up_tokenization_spaces", false},
                                   {"added_tokens_decoder", added}};
  write_file_atomic(dir / "tokenizer_config.json", config.dump(2) + "\n");

  nlohmann::ordered_json special = {{"bos_token", eos}, {"eos_token", eos}, {"unk_token", eos}};
  write_file_atomic(dir / "special_tokens_map.json", special.dump(2) + "\n");
}

}  // namespace tailor
