// BPE tokenizer. Encoding: added tokens are cut out of the raw text, each remaining piece is
// normalized, normalized added tokens are cut out, the pre-tokenizer splits the rest, BPE merges
// each word, and the post-processor adds its special tokens; decoding maps ids back to token
// strings and runs the decoder chain. Behaviour follows openai/gpt-2 encoder.py for GPT-2 and
// Hugging Face tokenizers (TokenizerImpl::encode_single_sequence, AddedVocabulary, BPE) for
// tokenizer.json files; the string stages are in models/tokenizer/pipeline.cpp.
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
#include "models/tokenizer/pipeline.h"
#include "models/tokenizer/pretokenize.h"
#include "models/tokenizer/tokenizer_json.h"
#include "models/tokenizer/tokenizer_spec.h"

namespace tailor {

namespace fs = std::filesystem;
using nlohmann::json;
using tokenizer::AddedToken;
using tokenizer::DecoderStep;
using tokenizer::PreTokenizerKind;
using tokenizer::TokenizerSpec;

namespace {

// Words whose BPE result is remembered: like HF tokenizers' BPE cache, only words shorter than
// 256 bytes, and new entries are simply not stored once it is full, which keeps memory bounded.
constexpr size_t kCacheCapacity = 1 << 16;
constexpr size_t kCacheMaxWordBytes = 256;

Error tokenizer_error(const std::string& message) {
  return Error("tokenizer", message);
}

uint64_t pair_key(int32_t left, int32_t right) {
  return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
}

struct MergeRule {
  int32_t rank;
  int32_t merged_id;
};

}  // namespace

struct Tokenizer::Impl {
  TokenizerSpec spec;

  // Lookup tables built from `spec` by build().
  bool byte_level = true;  // words are byte strings spelled with the bytes_to_unicode table
  std::unordered_map<uint64_t, MergeRule> merge_rules;  // (left id, right id) -> rule
  // Byte-level: id of each byte's symbol. Otherwise: id of each <0xNN> token, -1 if absent.
  std::array<int32_t, 256> byte_ids{};
  std::unordered_map<char32_t, int32_t> char_ids;  // not byte-level: one-character tokens
  std::vector<std::string> id_token;               // model spelling or added content per id
  std::vector<std::string> id_bytes;               // byte-level decoding, per id
  std::vector<bool> id_assigned;
  std::vector<bool> id_special;
  bool byte_level_decoder = true;                  // the decoder is exactly ByteLevel: use id_bytes
  tokenizer::AddedTokenMatcher raw_tokens;         // added tokens with normalized=false
  tokenizer::AddedTokenMatcher normalized_tokens;  // normalized=true, matched after normalizing
  std::vector<int32_t> prefix, suffix;             // the post-processor's ids
  int32_t unk_model = -1;                          // model.unk_token's id
  int32_t eos = -1;
  std::optional<int32_t> bos, pad, unk;

  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  void build(const std::string& where);
  int32_t token_id(const std::string& token) const;
  std::vector<int32_t> bpe(std::vector<int32_t> symbols) const;
  std::vector<int32_t> initial_symbols(std::string_view word) const;
  void encode_word(std::string_view word, std::vector<int32_t>& ids) const;
  void encode_pretokenized(std::string_view piece, bool first, std::vector<int32_t>& ids) const;
  std::vector<int32_t> encode(std::string_view text, bool allow_special) const;
};

// The id of a token by its text: added tokens first, then the model vocabulary; -1 if absent.
int32_t Tokenizer::Impl::token_id(const std::string& token) const {
  for (const AddedToken& t : spec.added)
    if (t.content == token) return t.id;
  auto it = spec.vocab.find(token);
  return it == spec.vocab.end() ? -1 : it->second;
}

void Tokenizer::Impl::build(const std::string& where) {
  byte_level = spec.pre_tokenizer == PreTokenizerKind::kByteLevel;

  int64_t size = 0;
  for (const auto& [token, id] : spec.vocab)
    size = std::max<int64_t>(size, int64_t(id) + 1);
  for (const AddedToken& t : spec.added)
    size = std::max<int64_t>(size, int64_t(t.id) + 1);
  id_token.assign(size, "");
  id_bytes.assign(size, "");
  id_assigned.assign(size, false);
  id_special.assign(size, false);
  for (const auto& [token, id] : spec.vocab) {
    if (id_assigned[id])
      throw tokenizer_error(where + ": id " + std::to_string(id) + " is assigned to both \"" +
                            id_token[id] + "\" and \"" + token + "\"");
    id_assigned[id] = true;
    id_token[id] = token;
    // HF's ByteLevel decoder: a token with a character outside the byte table is emitted as its
    // own UTF-8 text.
    if (byte_level) id_bytes[id] = byte_level::symbols_to_bytes(token).value_or(token);
  }

  // tokenizer_config.json's special tokens become special added tokens (transformers adds
  // them to the backend tokenizer), unless they already are added tokens.
  for (const std::optional<std::string>& name :
       {std::optional<std::string>(spec.eos_token), spec.bos_token, spec.pad_token,
        spec.config_unk_token}) {
    if (!name || spec.tokenizer_config_text.empty()) continue;
    bool present = false;
    for (const AddedToken& t : spec.added)
      present = present || t.content == *name;
    auto it = spec.vocab.find(*name);
    if (!present && it != spec.vocab.end())
      spec.added.push_back({*name, it->second, true, false, false, false, false});
  }

  // Added tokens: a later entry with the same content and id replaces an earlier one (GPT-2's
  // <|endoftext|> may arrive from vocab.json and from tokenizer_config.json; transformers
  // re-adds tokens of added_tokens_decoder with their flags); the same content must not carry
  // two ids, nor two contents one id.
  std::vector<AddedToken> added;
  for (const AddedToken& t : spec.added) {
    bool repeat = false;
    for (AddedToken& seen : added) {
      if (seen.content != t.content && seen.id != t.id) continue;
      if (seen.content != t.content || seen.id != t.id)
        throw tokenizer_error(where + ": added token \"" + t.content + "\" (id " +
                              std::to_string(t.id) + ") conflicts with \"" + seen.content +
                              "\" (id " + std::to_string(seen.id) + ")");
      seen = t;
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
  std::vector<AddedToken> raw, normalized;
  std::vector<std::string> raw_patterns, normalized_patterns;
  for (const AddedToken& t : spec.added) {
    id_special[t.id] = t.special;
    if (t.normalized) {
      // HF matches a normalized token by its normalized content.
      normalized_patterns.push_back(tokenizer::normalize(spec.normalizers, t.content));
      normalized.push_back(t);
    } else {
      raw_patterns.push_back(t.content);
      raw.push_back(t);
    }
  }
  raw_tokens = tokenizer::AddedTokenMatcher(std::move(raw), std::move(raw_patterns));
  normalized_tokens =
      tokenizer::AddedTokenMatcher(std::move(normalized), std::move(normalized_patterns));

  if (byte_level) {
    for (int b = 0; b < 256; ++b) {
      const std::string symbol = byte_level::bytes_to_symbols(std::string(1, char(b)));
      auto it = spec.vocab.find(symbol);
      if (it == spec.vocab.end())
        throw tokenizer_error(where + ": vocabulary lacks \"" + symbol +
                              "\", the byte-level symbol for byte " +
                              tokenizer::byte_fallback_token(uint8_t(b)).substr(1, 4) +
                              " (not a byte-level BPE vocabulary?)");
      byte_ids[b] = it->second;
    }
  } else {
    for (int b = 0; b < 256; ++b) {
      auto it = spec.vocab.find(tokenizer::byte_fallback_token(uint8_t(b)));
      byte_ids[b] = it == spec.vocab.end() ? -1 : it->second;
    }
    for (const auto& [token, id] : spec.vocab) {
      char32_t cp = 0;
      if (!token.empty() && byte_level::decode_utf8(token, 0, cp) == token.size())
        char_ids.emplace(cp, id);
    }
  }
  if (spec.unk_token) {
    auto it = spec.vocab.find(*spec.unk_token);
    if (it != spec.vocab.end()) unk_model = it->second;
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

  eos = token_id(spec.eos_token);
  const auto optional_id = [&](const std::optional<std::string>& token) {
    std::optional<int32_t> id;
    if (token && token_id(*token) >= 0) id = token_id(*token);
    return id;
  };
  bos = optional_id(spec.bos_token);
  pad = optional_id(spec.pad_token);
  unk = optional_id(spec.config_unk_token);

  // Post-processor. LlamaTokenizerFast replaces tokenizer.json's with "<s> $A" or "$A </s>"
  // etc. from add_bos_token (default true) and add_eos_token (default false).
  const bool llama =
      spec.tokenizer_class == "LlamaTokenizer" || spec.tokenizer_class == "LlamaTokenizerFast";
  if (llama && !spec.tokenizer_json_path.empty()) {
    prefix.clear();
    suffix.clear();
    if (spec.add_bos_token.value_or(true)) {
      if (!bos)
        throw tokenizer_error(where +
                              ": add_bos_token is true but bos_token is not in the "
                              "vocabulary");
      prefix.push_back(*bos);
    }
    if (spec.add_eos_token.value_or(false)) {
      if (eos < 0)
        throw tokenizer_error(where + ": add_eos_token is true but eos_token \"" + spec.eos_token +
                              "\" is not in the vocabulary");
      suffix.push_back(eos);
    }
  } else {
    prefix = spec.template_prefix;
    suffix = spec.template_suffix;
  }
  for (int32_t id : prefix)
    if (id >= int64_t(id_assigned.size()) || !id_assigned[id])
      throw tokenizer_error(where + ": post_processor adds id " + std::to_string(id) +
                            ", which is not in the vocabulary");
  for (int32_t id : suffix)
    if (id >= int64_t(id_assigned.size()) || !id_assigned[id])
      throw tokenizer_error(where + ": post_processor adds id " + std::to_string(id) +
                            ", which is not in the vocabulary");

  byte_level_decoder = byte_level && spec.decoder && spec.decoder->size() == 1 &&
                       spec.decoder->front().kind == DecoderStep::Kind::kByteLevel;
}

// BPE over a word's initial symbols: repeatedly merge the adjacent pair with the lowest rank,
// the leftmost among equals (openai/gpt-2 encoder.py `bpe`, HF Word::merge_all). A min-heap of
// candidate pairs ordered by (rank, position) makes this O(n log n) instead of O(n^2); with
// well-formed merges (a merged token only appears in later merges) the result is identical.
std::vector<int32_t> Tokenizer::Impl::bpe(std::vector<int32_t> ids) const {
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
  const int32_t n = int32_t(ids.size());
  if (n < 2) return ids;
  std::vector<Symbol> symbols(n);
  for (int32_t i = 0; i < n; ++i)
    symbols[i] = {ids[i], i - 1, i + 1 < n ? i + 1 : -1, true};
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
  ids.clear();
  for (int32_t i = 0; i >= 0; i = symbols[i].next)
    ids.push_back(symbols[i].id);
  return ids;
}

// A word's symbols before merging. Byte-level: one per byte. Otherwise HF BPE::merge_word: one
// per character in the vocabulary; an unknown character becomes its UTF-8 bytes as <0xNN>
// tokens (byte_fallback, when all of them exist), else the unk token (consecutive ones fused
// with fuse_unk), else nothing. A byte that is not well-formed UTF-8 counts as a character.
std::vector<int32_t> Tokenizer::Impl::initial_symbols(std::string_view word) const {
  std::vector<int32_t> ids;
  ids.reserve(word.size());
  if (byte_level) {
    for (char c : word)
      ids.push_back(byte_ids[static_cast<unsigned char>(c)]);
    return ids;
  }
  bool pending_unk = false;
  for (size_t pos = 0; pos < word.size();) {
    char32_t cp = 0;
    size_t len = byte_level::decode_utf8(word, pos, cp);
    const bool valid = len > 0;
    if (!valid) len = 1;
    const std::string_view unit = word.substr(pos, len);
    pos += len;
    if (valid) {
      auto it = char_ids.find(cp);
      if (it != char_ids.end()) {
        if (pending_unk) ids.push_back(unk_model);
        pending_unk = false;
        ids.push_back(it->second);
        continue;
      }
    }
    if (spec.byte_fallback) {
      bool all = true;
      for (char c : unit)
        all = all && byte_ids[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        // HF leaves a pending unk after these bytes; emitting it first keeps the text order
        // (only reachable with a vocabulary that lacks some <0xNN> tokens).
        if (pending_unk) ids.push_back(unk_model);
        pending_unk = false;
        for (char c : unit)
          ids.push_back(byte_ids[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (!spec.unk_token) continue;  // HF drops the character
    if (unk_model < 0)
      throw tokenizer_error(
          "encode: unk_token \"" + *spec.unk_token + "\" is not in the vocabulary (needed for " +
          json(std::string(unit)).dump(-1, ' ', true, json::error_handler_t::replace) + ")");
    if (pending_unk && !spec.fuse_unk) ids.push_back(unk_model);
    pending_unk = true;
  }
  if (pending_unk) ids.push_back(unk_model);
  return ids;
}

// One pre-tokenized word through the BPE model (HF BPE::tokenize, with its cache).
void Tokenizer::Impl::encode_word(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (byte_level && word.size() == 1) {
    ids.push_back(byte_ids[static_cast<unsigned char>(word[0])]);
    return;
  }
  if (spec.ignore_merges) {
    auto it = spec.vocab.find(byte_level ? byte_level::bytes_to_symbols(word) : std::string(word));
    if (it != spec.vocab.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() < kCacheMaxWordBytes;
  std::string key;
  if (cacheable) {
    key.assign(word);
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto it = cache.find(key);
    if (it != cache.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> result = bpe(initial_symbols(word));
  ids.insert(ids.end(), result.begin(), result.end());
  if (!cacheable) return;
  std::lock_guard<std::mutex> lock(cache_mutex);
  if (cache.size() < kCacheCapacity) cache.emplace(std::move(key), std::move(result));
}

// A normalized piece through the pre-tokenizer and the model. `first`: the piece starts the
// input (Metaspace's prepend_scheme "first").
void Tokenizer::Impl::encode_pretokenized(std::string_view piece, bool first,
                                          std::vector<int32_t>& ids) const {
  switch (spec.pre_tokenizer) {
    case PreTokenizerKind::kNone:
      encode_word(piece, ids);
      break;
    case PreTokenizerKind::kByteLevel:
      for (std::string_view word : gpt2_pretokenize(piece))
        encode_word(word, ids);
      break;
    case PreTokenizerKind::kMetaspace:
      for (const std::string& word : tokenizer::metaspace_pretokenize(piece, spec.metaspace, first))
        encode_word(word, ids);
      break;
  }
}

// HF AddedVocabulary::extract_and_normalize, then pre-tokenizer and model per piece.
std::vector<int32_t> Tokenizer::Impl::encode(std::string_view text, bool allow_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  for (const tokenizer::Split& split : raw_tokens.split(text, allow_special)) {
    if (split.id >= 0) {
      ids.push_back(split.id);
      continue;
    }
    const std::string_view raw = text.substr(split.begin, split.end - split.begin);
    std::string normalized_storage;
    std::string_view normalized = raw;
    if (!spec.normalizers.empty()) {
      normalized_storage = tokenizer::normalize(spec.normalizers, raw);
      normalized = normalized_storage;
    }
    if (normalized_tokens.empty()) {
      if (!normalized.empty()) encode_pretokenized(normalized, split.begin == 0, ids);
      continue;
    }
    for (const tokenizer::Split& sub : normalized_tokens.split(normalized, allow_special)) {
      if (sub.id >= 0) {
        ids.push_back(sub.id);
      } else {
        encode_pretokenized(normalized.substr(sub.begin, sub.end - sub.begin),
                            split.begin == 0 && sub.begin == 0, ids);
      }
    }
  }
  return ids;
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_dir(const fs::path& dir) {
  auto impl = std::make_unique<Impl>();
  TokenizerSpec& spec = impl->spec;
  if (fs::exists(dir / "tokenizer.json")) {
    tokenizer::read_tokenizer_json(dir / "tokenizer.json", spec);
  } else if (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) {
    tokenizer::read_vocab_json(dir / "vocab.json", spec);
    tokenizer::read_merges_txt(dir / "merges.txt", spec);
    // GPT2Tokenizer: <|endoftext|> is its bos, eos and unk token, and special.
    spec.bos_token = spec.config_unk_token = tokenizer::kEndOfText;
    auto eot = spec.vocab.find(tokenizer::kEndOfText);
    if (eot != spec.vocab.end())
      spec.added.push_back({tokenizer::kEndOfText, eot->second, true, false, false, false, false});
  } else {
    throw tokenizer_error(dir.string() + ": expected tokenizer.json, or vocab.json and merges.txt");
  }
  if (fs::exists(dir / "tokenizer_config.json"))
    tokenizer::read_tokenizer_config(dir / "tokenizer_config.json", spec);
  impl->build(dir.string());
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(const std::string& text, bool allow_special) const {
  return impl_->encode(text, allow_special);
}

std::vector<int32_t> Tokenizer::encode_hf(const std::string& text, bool add_special_tokens) const {
  std::vector<int32_t> ids = impl_->encode(text, /*allow_special=*/true);
  if (add_special_tokens) {
    ids.insert(ids.begin(), impl_->prefix.begin(), impl_->prefix.end());
    ids.insert(ids.end(), impl_->suffix.begin(), impl_->suffix.end());
  }
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  const Impl& impl = *impl_;
  for (int32_t id : ids)
    if (id < 0 || id >= int64_t(impl.id_token.size()) || !impl.id_assigned[id])
      throw tokenizer_error("decode: token id " + std::to_string(id) +
                            " is not in the vocabulary (size " + std::to_string(vocab_size()) +
                            ")");
  const auto keep = [&](int32_t id) { return !skip_special_tokens || !impl.id_special[id]; };
  if (impl.byte_level_decoder) {
    std::string text;
    for (int32_t id : ids)
      if (keep(id)) text += impl.id_bytes[id];
    return text;
  }
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids)
    if (keep(id)) tokens.push_back(impl.id_token[id]);
  if (!impl.spec.decoder) {  // HF without a decoder: the tokens joined by spaces
    std::string text;
    for (size_t i = 0; i < tokens.size(); ++i)
      text += (i > 0 ? " " : "") + tokens[i];
    return text;
  }
  return tokenizer::run_decoders(*impl.spec.decoder, std::move(tokens));
}

int64_t Tokenizer::vocab_size() const {
  return int64_t(impl_->id_token.size());
}

int32_t Tokenizer::eos_id() const {
  if (impl_->eos < 0)
    throw tokenizer_error("the vocabulary has no end-of-text token \"" + impl_->spec.eos_token +
                          "\"");
  return impl_->eos;
}

std::optional<int32_t> Tokenizer::bos_id() const {
  return impl_->bos;
}

std::optional<int32_t> Tokenizer::pad_id() const {
  return impl_->pad;
}

std::optional<int32_t> Tokenizer::unk_id() const {
  return impl_->unk;
}

const std::vector<int32_t>& Tokenizer::special_prefix() const {
  return impl_->prefix;
}

const std::vector<int32_t>& Tokenizer::special_suffix() const {
  return impl_->suffix;
}

void Tokenizer::save(const fs::path& dir) const {
  const Impl& impl = *impl_;
  const TokenizerSpec& spec = impl.spec;
  nlohmann::ordered_json special_map = nlohmann::ordered_json::object();
  const auto add_special = [&](const char* key, const std::optional<std::string>& token) {
    if (token && impl.token_id(*token) >= 0) special_map[key] = *token;
  };

  if (!spec.tokenizer_json_path.empty()) {
    write_file_atomic(dir / "tokenizer.json", spec.tokenizer_json_text);
    std::string config = spec.tokenizer_config_text;
    if (config.empty()) {
      nlohmann::ordered_json c = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                                  {"model_max_length", spec.model_max_length},
                                  {"clean_up_tokenization_spaces", false}};
      if (impl.eos >= 0) c["eos_token"] = spec.eos_token;
      config = c.dump(2) + "\n";
    }
    write_file_atomic(dir / "tokenizer_config.json", config);
    add_special("bos_token", spec.bos_token);
    add_special("eos_token", spec.eos_token);
    add_special("unk_token", spec.config_unk_token);
    add_special("pad_token", spec.pad_token);
    write_file_atomic(dir / "special_tokens_map.json", special_map.dump(2) + "\n");
    return;
  }

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
  for (const auto& [left, right] : spec.merges)
    merges += left + " " + right + "\n";
  write_file_atomic(dir / "merges.txt", merges);

  const std::string eos = spec.eos_token;
  nlohmann::ordered_json added = nlohmann::ordered_json::object();
  for (const AddedToken& t : spec.added) {
    added[std::to_string(t.id)] = {{"content", t.content},         {"lstrip", t.lstrip},
                                   {"normalized", t.normalized},   {"rstrip", t.rstrip},
                                   {"single_word", t.single_word}, {"special", t.special}};
  }
  // clean_up_tokenization_spaces false keeps HF's decode exact (no " ." -> "." rewriting).
  nlohmann::ordered_json config = {{"tokenizer_class", "GPT2Tokenizer"},
                                   {"model_max_length", spec.model_max_length},
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
