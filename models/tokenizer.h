// GPT-2 byte-level BPE tokenizer, loaded from `vocab.json` + `merges.txt` or from a Hugging Face
// `tokenizer.json` (model type BPE with the ByteLevel pre-tokenizer).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace tailor {

class Tokenizer {
 public:
  // Loads from a directory holding tokenizer.json or vocab.json + merges.txt.
  static Tokenizer from_dir(const std::filesystem::path& dir);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Text -> ids. No BOS is added. Special tokens such as "<|endoftext|>" are recognised only
  // when `allow_special` is true; otherwise they are encoded as ordinary text.
  std::vector<int32_t> encode(const std::string& text, bool allow_special = false) const;
  // Ids -> text; decode(encode(s)) == s for any valid UTF-8 s.
  std::string decode(const std::vector<int32_t>& ids) const;

  int64_t vocab_size() const;
  int32_t eos_id() const;  // "<|endoftext|>"

  // Writes vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json so the
  // directory loads in Hugging Face's GPT2Tokenizer.
  void save(const std::filesystem::path& dir) const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tailor
