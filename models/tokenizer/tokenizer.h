// GPT-2 byte-level BPE tokenizer, loaded from `vocab.json` + `merges.txt` or from a Hugging Face
// `tokenizer.json` (model type BPE with the ByteLevel pre-tokenizer). Encoding matches OpenAI's
// encoder.py / HF GPT2Tokenizer id for id (tests/test_tokenizer.cpp checks it against the npm
// package gpt-3-encoder); the pre-tokenizer is in models/tokenizer/pretokenize.h, the byte table in
// models/tokenizer/byte_level.h. encode/decode are const and thread-safe (the BPE cache has a
// mutex).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace tailor {

class Tokenizer {
 public:
  // Loads from a directory holding tokenizer.json (preferred, as HF's fast tokenizer does) or
  // vocab.json + merges.txt; an optional tokenizer_config.json adds model_max_length, eos_token
  // and added_tokens_decoder. Other tokenizer.json pipelines (normalizers, Metaspace, Split
  // pre-tokenizers, add_prefix_space) are refused. Errors name the file and line or key.
  static Tokenizer from_dir(const std::filesystem::path& dir);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Text -> ids. No BOS is added. Special tokens such as "<|endoftext|>" are recognised only
  // when `allow_special` is true; otherwise they are encoded as ordinary text. Added tokens not
  // marked special are always recognised (HF); their lstrip/rstrip flags are not applied.
  // Any byte string is accepted: bytes that are not valid UTF-8 are encoded byte by byte.
  std::vector<int32_t> encode(const std::string& text, bool allow_special = false) const;
  // Ids -> bytes; decode(encode(s)) == s for any byte string s. Throws tailor::Error for an id
  // outside the vocabulary. Ids that split a UTF-8 character yield those raw bytes (HF's
  // decode would substitute U+FFFD); keeping them makes round trips exact.
  std::string decode(const std::vector<int32_t>& ids) const;

  int64_t vocab_size() const;  // largest id + 1 (50257 for GPT-2)
  // "<|endoftext|>" (or tokenizer_config.json's eos_token); throws tailor::Error if absent.
  int32_t eos_id() const;

  // Writes vocab.json, merges.txt ("#version: 0.2" first, merges in rank order),
  // tokenizer_config.json (GPT2Tokenizer, bos/eos/unk "<|endoftext|>", add_prefix_space false,
  // clean_up_tokenization_spaces false, added_tokens_decoder) and special_tokens_map.json, each
  // atomically, so the directory loads in Hugging Face's GPT2Tokenizer and in from_dir. It does
  // not write tokenizer.json; one already in `dir` would take precedence in from_dir.
  void save(const std::filesystem::path& dir) const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tailor
