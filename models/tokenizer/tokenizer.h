// BPE tokenizer: GPT-2's byte-level BPE (vocab.json + merges.txt, or tokenizer.json with the
// ByteLevel pre-tokenizer) and SentencePiece-style BPE from a Hugging Face tokenizer.json such as
// Llama's and Mistral's (byte_fallback with <0xNN> tokens, "▁" for spaces via the legacy
// Prepend + Replace normalizer or the Metaspace pre-tokenizer, TemplateProcessing adding <s>).
// GPT-2 encoding matches OpenAI's encoder.py id for id (tests/test_tokenizer.cpp, against the npm
// package gpt-3-encoder); Mistral-7B v0.1's matches HF `tokenizer(text)` (tests/
// test_tokenizer_json.cpp, against @lenml/tokenizers). Stages: models/tokenizer/pipeline.h;
// file readers: models/tokenizer/tokenizer_json.h; GPT-2's regex: models/tokenizer/pretokenize.h.
// encode/decode are const and thread-safe (the BPE cache has a mutex).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tailor {

class Tokenizer {
 public:
  // Loads from a directory holding tokenizer.json (preferred, as HF's fast tokenizer does) or
  // vocab.json + merges.txt; an optional tokenizer_config.json adds model_max_length,
  // bos/eos/unk/pad tokens (which become special added tokens, as in transformers),
  // added_tokens_decoder and, for LlamaTokenizer(Fast), add_bos_token/add_eos_token (which
  // rebuild the post-processor, as LlamaTokenizerFast does). tokenizer.json components tailor
  // does not implement are refused: errors name the file and the key (`tokenizer.json:
  // pre_tokenizer.type: unsupported "Split"`) or the line.
  static Tokenizer from_dir(const std::filesystem::path& dir);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Text -> ids without the post-processor's special tokens (no BOS, for GPT-2 and Mistral
  // alike). Special tokens such as "<|endoftext|>" or "<s>" are recognised in the text only when
  // `allow_special` is true; otherwise they are encoded as ordinary text. Added tokens not
  // marked special are always recognised (HF). Any byte string is accepted: bytes that are not
  // valid UTF-8 are encoded byte by byte (byte-level BPE) or as <0xNN> byte-fallback tokens.
  std::vector<int32_t> encode(const std::string& text, bool allow_special = false) const;

  // Hugging Face's `tokenizer(text, add_special_tokens=...)["input_ids"]`: special tokens in the
  // text are recognised (HF's default, split_special_tokens=False) and, with
  // `add_special_tokens`, the post-processor's tokens are added around the ids (Mistral/Llama:
  // <s> first; GPT-2: none). encode_hf(text, false) == encode(text, true).
  std::vector<int32_t> encode_hf(const std::string& text, bool add_special_tokens = true) const;

  // Ids -> text through the tokenizer's decoder (GPT-2: ByteLevel; Mistral: "▁" -> " ",
  // <0xNN> -> bytes, then one leading space stripped), as HF `tokenizer.decode(ids,
  // skip_special_tokens=...)` with clean_up_tokenization_spaces=False. decode(encode(s)) == s
  // for GPT-2 and any byte string s; for Mistral when s holds no "▁" (encoded as a space) and no
  // special token's text. Throws tailor::Error for an id outside the vocabulary. Ids that split
  // a UTF-8 character yield those raw bytes (HF's decode would substitute U+FFFD); keeping them
  // makes round trips exact.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  int64_t vocab_size() const;  // largest id + 1 (50257 for GPT-2, 32000 for Mistral)
  // tokenizer_config.json's eos_token ("<|endoftext|>" without one, "</s>" for a Llama class);
  // throws tailor::Error if it is not in the vocabulary.
  int32_t eos_id() const;
  // bos_token / pad_token / unk_token of tokenizer_config.json (GPT-2's vocab.json files:
  // bos and unk "<|endoftext|>"; Llama classes: "<s>" and "<unk>"), if set and in the
  // vocabulary. Mistral: bos 1, unk 0, no pad; GPT-2: bos 50256, no pad.
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> pad_id() const;
  std::optional<int32_t> unk_id() const;
  // The ids encode_hf adds before and after the text's ids (Mistral: {1} and {}).
  const std::vector<int32_t>& special_prefix() const;
  const std::vector<int32_t>& special_suffix() const;

  // Writes the tokenizer so that Hugging Face and from_dir load it again, each file
  // atomically. A tokenizer read from tokenizer.json: tokenizer.json and tokenizer_config.json
  // as they were read (a minimal tokenizer_config.json if there was none) and
  // special_tokens_map.json. From vocab.json + merges.txt: vocab.json, merges.txt
  // ("#version: 0.2" first, merges in rank order), tokenizer_config.json (GPT2Tokenizer,
  // bos/eos/unk "<|endoftext|>", add_prefix_space false, clean_up_tokenization_spaces false,
  // added_tokens_decoder) and special_tokens_map.json.
  void save(const std::filesystem::path& dir) const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tailor
