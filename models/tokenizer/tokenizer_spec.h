// What a tokenizer is made of, as read from disk (vocab.json + merges.txt, or a Hugging Face
// tokenizer.json, plus tokenizer_config.json), before Tokenizer builds its lookup tables. The
// pipeline mirrors Hugging Face tokenizers: added tokens -> normalizer -> pre-tokenizer -> BPE
// model -> post-processor; decoding runs the decoder chain. Only the component types below are
// supported; models/tokenizer/tokenizer_json.cpp refuses every other one by name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tailor::tokenizer {

inline constexpr const char* kEndOfText = "<|endoftext|>";
inline constexpr int64_t kDefaultModelMaxLength = 1024;  // GPT-2's context length

// A token matched in the text before the model runs (HF "added tokens"). Flags as in HF's
// AddedToken: `normalized` tokens are matched in the normalized text, the others in the raw
// text; lstrip/rstrip take the whitespace on that side into the match; single_word matches only
// when no word character (\w) touches either end.
struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;  // skipped by decode(skip_special_tokens); matched only if allowed
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

// HF normalizers: Prepend (to a non-empty string) and Replace of a literal string.
struct NormalizerStep {
  enum class Kind { kPrepend, kReplace };
  Kind kind = Kind::kPrepend;
  std::string pattern;  // Replace: the literal string replaced (non-empty)
  std::string content;  // Prepend: the prefix; Replace: the replacement
};

enum class PrependScheme { kAlways, kFirst, kNever };

// HF's Metaspace pre-tokenizer / decoder options.
struct MetaspaceOptions {
  std::string replacement = "\u2581";  // one character, UTF-8
  PrependScheme prepend_scheme = PrependScheme::kAlways;
  bool split = true;
};

enum class PreTokenizerKind {
  kNone,       // the whole (normalized) piece is one BPE word
  kByteLevel,  // GPT-2's regex, then bytes spelled with the bytes_to_unicode table
  kMetaspace,  // " " -> replacement, prepend per scheme, split before each replacement
};

// One step of HF's decoder chain; each maps a list of token strings to a new list.
struct DecoderStep {
  enum class Kind { kReplace, kByteFallback, kFuse, kStrip, kByteLevel, kMetaspace };
  Kind kind = Kind::kFuse;
  std::string pattern;  // Replace: literal pattern
  std::string content;  // Replace: replacement; Strip: the one character stripped
  size_t start = 0;     // Strip: at most this many leading `content` characters
  size_t stop = 0;      // Strip: at most this many trailing ones
  MetaspaceOptions metaspace;
};

struct TokenizerSpec {
  // BPE model.
  std::unordered_map<std::string, int32_t> vocab;           // model spelling -> id
  std::vector<std::pair<std::string, std::string>> merges;  // rank order
  std::vector<std::string> merge_where;  // "merges.txt:7" per merge, for error messages
  std::optional<std::string> unk_token;  // model.unk_token
  bool byte_fallback = false;            // unknown characters -> <0xNN> byte tokens
  bool fuse_unk = false;                 // consecutive unknown characters -> one unk
  bool ignore_merges = false;            // a word already in the vocabulary is one token

  std::vector<AddedToken> added;  // later entries override earlier ones with the same content
  std::vector<NormalizerStep> normalizers;
  PreTokenizerKind pre_tokenizer = PreTokenizerKind::kByteLevel;
  MetaspaceOptions metaspace;  // for kMetaspace
  // Post-processor (TemplateProcessing "single"): ids around the sequence $A, added when
  // special tokens are requested.
  std::vector<int32_t> template_prefix;
  std::vector<int32_t> template_suffix;
  // Decoder chain; nullopt means none (HF then joins the tokens with " ").
  std::optional<std::vector<DecoderStep>> decoder =
      std::vector<DecoderStep>{DecoderStep{DecoderStep::Kind::kByteLevel, "", "", 0, 0, {}}};

  // tokenizer_config.json.
  int64_t model_max_length = kDefaultModelMaxLength;
  std::string eos_token = kEndOfText;
  std::optional<std::string> bos_token;
  std::optional<std::string> pad_token;
  std::optional<std::string> config_unk_token;
  std::string tokenizer_class;
  // LlamaTokenizerFast rebuilds the post-processor from these (defaults true / false).
  std::optional<bool> add_bos_token;
  std::optional<bool> add_eos_token;

  // Where it came from, for errors and save().
  std::string tokenizer_json_path;    // empty for vocab.json + merges.txt
  std::string tokenizer_json_text;    // verbatim, for save()
  std::string tokenizer_config_text;  // verbatim when one was read
};

}  // namespace tailor::tokenizer
