// The string-level stages of a Hugging Face tokenizer pipeline, as pure functions: matching added
// tokens, normalizers, the Metaspace pre-tokenizer and the decoder chain. Behaviour follows the
// Rust `tokenizers` crate (added_vocabulary.rs, normalizers/, pre_tokenizers/metaspace.rs,
// decoders/). Text is any byte string: bytes that are not well-formed UTF-8 count as single
// characters that are neither whitespace nor word characters.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "models/tokenizer/tokenizer_spec.h"

namespace tailor::tokenizer {

// A piece of text: bytes [begin, end) and the added token's id, or -1 for ordinary text.
struct Split {
  size_t begin = 0;
  size_t end = 0;
  int32_t id = -1;
};

// Finds added tokens in text (HF AddedVocabulary::find_matches): leftmost match first, the
// longest one among those starting there; single_word tokens are dropped where a word character
// (\w) touches them; lstrip/rstrip widen the match over the whitespace on that side (never into
// an earlier match).
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // `patterns[i]` is what `tokens[i]` matches (its content, or its normalized content).
  AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns);
  // Splits `text` into ordinary pieces and added tokens, in order, covering all of it; empty
  // ordinary pieces are left out. Special tokens are matched only with `allow_special`.
  std::vector<Split> split(std::string_view text, bool allow_special) const;
  bool empty() const { return tokens_.empty(); }

 private:
  std::vector<AddedToken> tokens_;
  std::vector<std::string> patterns_;
};

// Applies the normalizers in order (Prepend only to a non-empty string; Replace every
// non-overlapping occurrence, left to right).
std::string normalize(const std::vector<NormalizerStep>& steps, std::string_view text);

// HF's Metaspace pre-tokenizer on one piece: " " -> replacement; the replacement is prepended
// (unless the piece already starts with it) for "always", and for "first" only when `first` (the
// piece starts the input); with `split`, the result is cut before every replacement character.
std::vector<std::string> metaspace_pretokenize(std::string_view piece,
                                               const MetaspaceOptions& options, bool first);

// Runs HF's decoder chain over token strings and joins the result. One deliberate difference:
// ByteFallback and ByteLevel keep byte sequences that are not valid UTF-8 as raw bytes (HF
// substitutes U+FFFD), so that decoding is exact for any byte string tailor encoded.
std::string run_decoders(const std::vector<DecoderStep>& steps, std::vector<std::string> tokens);

// "<0xNN>" -> NN, or -1 (the spelling of byte-fallback tokens).
int byte_fallback_value(std::string_view token);
std::string byte_fallback_token(uint8_t byte);

}  // namespace tailor::tokenizer
