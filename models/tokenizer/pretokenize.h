// GPT-2's pre-tokenizer: splits text into the pieces that BPE then encodes one at a time.
#pragma once

#include <string_view>
#include <vector>

namespace tailor {

// Splits `text` as OpenAI's GPT-2 regex does (openai/gpt-2 src/encoder.py, also Hugging Face
// tokenizers' ByteLevel pre-tokenizer):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// matched by hand over code points: \p{L} = Lu Ll Lt Lm Lo, \p{N} = Nd Nl No, \s = Unicode
// White_Space (as HF tokenizers; JavaScript's \s adds U+FEFF and lacks U+0085, Python's adds
// U+001C-U+001F). Bytes that are not well-formed UTF-8 count as single [^\s\p{L}\p{N}]
// characters, so any byte string splits. The pieces are views into `text`, in order, and
// concatenate to exactly `text`.
std::vector<std::string_view> gpt2_pretokenize(std::string_view text);

}  // namespace tailor
