// Readers for a tokenizer's files on disk into a TokenizerSpec: Hugging Face tokenizer.json,
// tokenizer_config.json, and GPT-2's vocab.json + merges.txt. Errors (tailor::Error, scope
// "tokenizer") name the file and the JSON key or line, e.g.
//   [tokenizer] dir/tokenizer.json: pre_tokenizer.type: unsupported "Split"
#pragma once

#include <filesystem>
#include <string>

#include "models/tokenizer/tokenizer_spec.h"

namespace tailor::tokenizer {

// Reads tokenizer.json: model (BPE: vocab, merges as "a b" or ["a", "b"], unk_token,
// byte_fallback, fuse_unk, ignore_merges), added_tokens, normalizer (Prepend, Replace of a
// string, Sequence), pre_tokenizer (ByteLevel as GPT-2 has it, Metaspace, a one-element
// Sequence, null), post_processor (TemplateProcessing, ByteLevel, Sequence, null) and decoder
// (Replace, ByteFallback, Fuse, Strip, ByteLevel, Metaspace, Sequence, null).
void read_tokenizer_json(const std::filesystem::path& path, TokenizerSpec& spec);

// Reads tokenizer_config.json: model_max_length, bos/eos/unk/pad tokens, tokenizer_class,
// add_bos_token/add_eos_token and added_tokens_decoder.
void read_tokenizer_config(const std::filesystem::path& path, TokenizerSpec& spec);

// GPT-2's vocab.json ({token: id}) and merges.txt ("#version" line optional, then "a b" lines).
void read_vocab_json(const std::filesystem::path& path, TokenizerSpec& spec);
void read_merges_txt(const std::filesystem::path& path, TokenizerSpec& spec);

}  // namespace tailor::tokenizer
