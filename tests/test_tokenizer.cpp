// GPT-2 tokenizer against an independent reference: ids computed by the npm package
// gpt-3-encoder (tools/gen_tokenizer_fixture.js -> tests/fixtures/tokenizer_cases.jsonl), plus
// hand-derived facts about bytes_to_unicode and the pre-tokenizer regex.
#include <gtest/gtest.h>

#include <unistd.h>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "models/tokenizer/byte_level.h"
#include "models/tokenizer/pretokenize.h"
#include "models/tokenizer/tokenizer.h"
#include "test_support.h"

namespace fs = std::filesystem;
using nlohmann::json;
using tailor::Tokenizer;

namespace {

const fs::path kGpt2Dir = fs::path(TAILOR_SOURCE_DIR) / "assets" / "tokenizers" / "gpt2";

const Tokenizer& gpt2() {
  static const Tokenizer tokenizer = Tokenizer::from_dir(kGpt2Dir);
  return tokenizer;
}

struct Gpt2TokenizerCase {
  std::string text;
  std::vector<int32_t> ids;
};

const std::vector<Gpt2TokenizerCase>& gpt2_fixture_cases() {
  static const std::vector<Gpt2TokenizerCase> cases = [] {
    std::vector<Gpt2TokenizerCase> out;
    std::ifstream in(fs::path(TAILOR_FIXTURE_DIR) / "tokenizer_cases.jsonl");
    EXPECT_TRUE(in) << "missing tests/fixtures/tokenizer_cases.jsonl; regenerate with "
                       "node tools/gen_tokenizer_fixture.js PATH/TO/gpt-3-encoder/package";
    std::string line;
    std::getline(in, line);
    const json header = json::parse(line);
    EXPECT_EQ(header.value("version", 0), 1) << "unexpected fixture header " << line;
    while (std::getline(in, line)) {
      const json j = json::parse(line);
      out.push_back({j.at("text").get<std::string>(), j.at("ids").get<std::vector<int32_t>>()});
    }
    return out;
  }();
  return cases;
}

// Every fixture case encodes to the reference ids.
void expect_matches_fixture(const Tokenizer& tokenizer) {
  const auto& cases = gpt2_fixture_cases();
  ASSERT_GT(cases.size(), 300u);
  int failures = 0;
  for (const Gpt2TokenizerCase& c : cases) {
    const std::vector<int32_t> ids = tokenizer.encode(c.text);
    EXPECT_EQ(ids, c.ids) << "text " << tailor::test::show(c.text);
    if (ids != c.ids && ++failures > 10) FAIL() << "stopping after 10 mismatches";
  }
}

std::vector<std::string> merges_lines() {
  std::vector<std::string> lines;
  std::ifstream in(kGpt2Dir / "merges.txt");
  std::string line;
  std::getline(in, line);  // #version
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(line);
  return lines;
}

// A Hugging Face tokenizer.json for GPT-2 built from vocab.json + merges.txt, as
// `tokenizers` writes it (merges as "a b" strings, or as ["a", "b"] pairs in newer versions).
json gpt2_tokenizer_json(bool merges_as_pairs, bool pre_tokenizer_in_sequence) {
  json byte_level = {{"type", "ByteLevel"},
                     {"add_prefix_space", false},
                     {"trim_offsets", true},
                     {"use_regex", true}};
  json merges = json::array();
  for (const std::string& line : merges_lines()) {
    const size_t space = line.find(' ');
    if (merges_as_pairs)
      merges.push_back({line.substr(0, space), line.substr(space + 1)});
    else
      merges.push_back(line);
  }
  return {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens",
       {{{"id", 50256},
         {"content", "<|endoftext|>"},
         {"single_word", false},
         {"lstrip", false},
         {"rstrip", false},
         {"normalized", true},
         {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", pre_tokenizer_in_sequence
                            ? json{{"type", "Sequence"}, {"pretokenizers", {byte_level}}}
                            : byte_level},
      {"post_processor", byte_level},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"vocab", json::parse(tailor::read_file(kGpt2Dir / "vocab.json"))},
        {"merges", merges}}},
  };
}

// A byte-level vocabulary with the 256 byte symbols plus `extra` tokens, as vocab.json text.
json tiny_vocab(const std::vector<std::string>& extra) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b)
    vocab[tailor::byte_level::bytes_to_symbols(std::string(1, char(b)))] = b;
  int next_id = 256;
  for (const std::string& token : extra)
    vocab[token] = next_id++;
  return vocab;
}

}  // namespace

TEST(TokenizerByteLevel, BytesToUnicodeTable) {
  using tailor::byte_level::byte_to_code_point;
  // Printable bytes stand for themselves (openai/gpt-2 bytes_to_unicode).
  EXPECT_EQ(byte_to_code_point('!'), U'!');
  EXPECT_EQ(byte_to_code_point('~'), U'~');
  EXPECT_EQ(byte_to_code_point(0xA1), U'\u00A1');
  EXPECT_EQ(byte_to_code_point(0xFF), U'\u00FF');
  // The other 68 map to U+0100.. in byte order: 0..32, then 127..160, then 173.
  EXPECT_EQ(byte_to_code_point(0), U'\u0100');
  EXPECT_EQ(byte_to_code_point('\n'), U'\u010A');  // 'Ċ'
  EXPECT_EQ(byte_to_code_point(' '), U'\u0120');   // 'Ġ'
  EXPECT_EQ(byte_to_code_point(127), U'\u0121');
  EXPECT_EQ(byte_to_code_point(160), U'\u0142');
  EXPECT_EQ(byte_to_code_point(173), U'\u0143');
  for (int b = 0; b < 256; ++b)
    EXPECT_EQ(tailor::byte_level::code_point_to_byte(byte_to_code_point(uint8_t(b))), b);
  EXPECT_EQ(tailor::byte_level::code_point_to_byte(U'\u0144'), -1);
  EXPECT_EQ(tailor::byte_level::bytes_to_symbols(" world\n"), "\u0120world\u010A");
  EXPECT_EQ(tailor::byte_level::symbols_to_bytes("\u0120world\u010A"), " world\n");
  EXPECT_FALSE(tailor::byte_level::symbols_to_bytes("\u4E2D").has_value());
}

TEST(TokenizerByteLevel, DecodeUtf8RejectsIllFormedSequences) {
  char32_t cp = 0;
  EXPECT_EQ(tailor::byte_level::decode_utf8("\xE2\x82\xAC", 0, cp), 3u);  // €
  EXPECT_EQ(cp, U'\u20AC');
  EXPECT_EQ(tailor::byte_level::decode_utf8("\xF0\x9F\x98\x80", 0, cp), 4u);  // 😀
  EXPECT_EQ(cp, U'\U0001F600');
  for (const char* bad : {"\x80", "\xC0\xAF", "\xC3", "\xE2\x82", "\xED\xA0\x80",
                          "\xF4\x90\x80\x80", "\xF8\x88\x80\x80\x80", "\xFF"})
    EXPECT_EQ(tailor::byte_level::decode_utf8(bad, 0, cp), 0u) << tailor::test::show(bad);
}

TEST(TokenizerPretokenize, SplitsLikeTheGpt2Regex) {
  using V = std::vector<std::string_view>;
  // Derived by hand from 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  EXPECT_EQ(tailor::gpt2_pretokenize("Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(tailor::gpt2_pretokenize("a   b"), (V{"a", "  ", " b"}));  // run gives back a space
  EXPECT_EQ(tailor::gpt2_pretokenize("a\t\tb"), (V{"a", "\t", "\t", "b"}));
  EXPECT_EQ(tailor::gpt2_pretokenize("a \tb"), (V{"a", " ", "\t", "b"}));
  EXPECT_EQ(tailor::gpt2_pretokenize("x  "), (V{"x", "  "}));  // at the end: one piece
  EXPECT_EQ(tailor::gpt2_pretokenize("don't I'M"), (V{"don", "'t", " I", "'", "M"}));
  EXPECT_EQ(tailor::gpt2_pretokenize("we'll?'s"), (V{"we", "'ll", "?'", "s"}));
  EXPECT_EQ(tailor::gpt2_pretokenize("12ab 3.5"), (V{"12", "ab", " 3", ".", "5"}));
  EXPECT_EQ(tailor::gpt2_pretokenize(" !!x"), (V{" !!", "x"}));
  EXPECT_EQ(tailor::gpt2_pretokenize("caf\xC3\xA9 \xE4\xB8\xAD"),
            (V{"caf\xC3\xA9", " \xE4\xB8\xAD"}));
  // U+00A0 is White_Space but not U+0020: no optional-space attachment.
  EXPECT_EQ(tailor::gpt2_pretokenize("\xC2\xA0x"), (V{"\xC2\xA0", "x"}));
  // Ill-formed bytes are single "other" characters.
  EXPECT_EQ(tailor::gpt2_pretokenize("a\xFF\xFE b"), (V{"a", "\xFF\xFE", " b"}));
  EXPECT_TRUE(tailor::gpt2_pretokenize("").empty());
}

TEST(Tokenizer, HelloWorldHandChecked) {
  // vocab.json: "Hello" -> 15496, "Ġworld" (" world") -> 995.
  const json vocab = json::parse(tailor::read_file(kGpt2Dir / "vocab.json"));
  EXPECT_EQ(vocab.at("Hello"), 15496);
  EXPECT_EQ(vocab.at("\u0120world"), 995);
  EXPECT_EQ(gpt2().encode("Hello world"), (std::vector<int32_t>{15496, 995}));
  EXPECT_EQ(gpt2().decode({15496, 995}), "Hello world");
  EXPECT_EQ(gpt2().vocab_size(), 50257);
  EXPECT_EQ(gpt2().eos_id(), 50256);
}

TEST(Tokenizer, MatchesGpt3EncoderReference) {
  expect_matches_fixture(gpt2());
}

TEST(Tokenizer, DecodeRoundTripsFixtureCases) {
  for (const Gpt2TokenizerCase& c : gpt2_fixture_cases()) {
    EXPECT_EQ(gpt2().decode(c.ids), c.text) << tailor::test::show(c.text);
    EXPECT_EQ(gpt2().decode(gpt2().encode(c.text)), c.text) << tailor::test::show(c.text);
  }
}

TEST(Tokenizer, DecodeRoundTripsRandomBytes) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    std::string s(rng() % 40, '\0');
    for (char& c : s)
      c = char(rng() % 256);
    EXPECT_EQ(gpt2().decode(gpt2().encode(s)), s) << tailor::test::show(s);
  }
}

TEST(Tokenizer, DecodeRoundTripsRandomUtf8) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    std::string s;
    const int n = rng() % 30;
    for (int i = 0; i < n; ++i) {
      // Mix ASCII, the BMP and the astral planes; skip surrogates.
      char32_t cp = 0;
      switch (rng() % 3) {
        case 0:
          cp = rng() % 0x80;
          break;
        case 1:
          cp = rng() % 0x10000;
          break;
        default:
          cp = 0x10000 + rng() % 0x100000;
          break;
      }
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
      tailor::byte_level::append_utf8(s, cp);
    }
    EXPECT_EQ(gpt2().decode(gpt2().encode(s)), s) << tailor::test::show(s);
  }
}

TEST(Tokenizer, SpecialTokenOnlyWithAllowSpecial) {
  const std::string text = "Hello<|endoftext|> world";
  // Plain text: "<|" "endo" "ft" "ext" "|>" pieces, as the fixture's reference computed.
  std::vector<int32_t> plain;
  for (const Gpt2TokenizerCase& c : gpt2_fixture_cases())
    if (c.text == "a<|endoftext|>b") plain = c.ids;
  ASSERT_FALSE(plain.empty());
  EXPECT_EQ(gpt2().encode("a<|endoftext|>b"), plain);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 50256), 0);
  EXPECT_EQ(gpt2().encode("a<|endoftext|>b", true), (std::vector<int32_t>{64, 50256, 65}));
  // "Hello" = 15496, " world" = 995.
  EXPECT_EQ(gpt2().encode(text, true), (std::vector<int32_t>{15496, 50256, 995}));
  EXPECT_EQ(gpt2().encode("<|endoftext|><|endoftext|>", true),
            (std::vector<int32_t>{50256, 50256}));
  EXPECT_EQ(gpt2().decode({15496, 50256, 995}), text);
}

TEST(Tokenizer, Gpt2LikeHuggingFace) {
  // GPT-2's post-processor adds nothing; HF recognises <|endoftext|> in the text by default.
  EXPECT_TRUE(gpt2().special_prefix().empty());
  EXPECT_TRUE(gpt2().special_suffix().empty());
  EXPECT_EQ(gpt2().encode_hf("a<|endoftext|>b"), (std::vector<int32_t>{64, 50256, 65}));
  EXPECT_EQ(gpt2().encode_hf("a<|endoftext|>b", false), (std::vector<int32_t>{64, 50256, 65}));
  EXPECT_EQ(gpt2().encode_hf("Hello world"), (std::vector<int32_t>{15496, 995}));
  // GPT2Tokenizer: <|endoftext|> is bos, eos and unk; there is no pad token.
  EXPECT_EQ(gpt2().bos_id(), 50256);
  EXPECT_EQ(gpt2().unk_id(), 50256);
  EXPECT_EQ(gpt2().pad_id(), std::nullopt);
  EXPECT_EQ(gpt2().decode({15496, 50256, 995}, /*skip_special_tokens=*/true), "Hello world");
}

TEST(Tokenizer, TokenizerJsonLoadsLikeVocabAndMerges) {
  for (bool pairs : {false, true}) {
    const fs::path dir =
        tailor::test::fresh_process_dir(pairs ? "tokenizer_json_pairs" : "tokenizer_json_strings");
    tailor::write_file_atomic(dir / "tokenizer.json", gpt2_tokenizer_json(pairs, pairs).dump());
    const Tokenizer tokenizer = Tokenizer::from_dir(dir);
    EXPECT_EQ(tokenizer.vocab_size(), 50257);
    EXPECT_EQ(tokenizer.eos_id(), 50256);
    expect_matches_fixture(tokenizer);
    EXPECT_EQ(tokenizer.encode("a<|endoftext|>b", true), (std::vector<int32_t>{64, 50256, 65}));
    fs::remove_all(dir);
  }
}

TEST(Tokenizer, TokenizerJsonRejectsOtherPipelines) {
  const fs::path dir = tailor::test::fresh_process_dir("tokenizer_json_bad");
  const auto load_error = [&](const json& j) {
    tailor::write_file_atomic(dir / "tokenizer.json", j.dump());
    return tailor::test::error_of([&] { Tokenizer::from_dir(dir); });
  };
  json j = gpt2_tokenizer_json(false, false);
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", " "}}}};
  EXPECT_NE(load_error(j).find((dir / "tokenizer.json").string() +
                               ": pre_tokenizer.type: unsupported \"Split\""),
            std::string::npos)
      << load_error(j);
  j = gpt2_tokenizer_json(false, false);
  j["pre_tokenizer"]["add_prefix_space"] = true;
  EXPECT_NE(load_error(j).find("pre_tokenizer.add_prefix_space"), std::string::npos)
      << load_error(j);
  j = gpt2_tokenizer_json(false, false);
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers", {{{"type", "Split"}}, {{"type", "ByteLevel"}}}}};
  EXPECT_NE(load_error(j).find("pre_tokenizer.pretokenizers[0]"), std::string::npos)
      << load_error(j);
  j = gpt2_tokenizer_json(false, false);
  j["model"]["type"] = "WordPiece";
  EXPECT_NE(load_error(j).find("model.type"), std::string::npos) << load_error(j);
  j = gpt2_tokenizer_json(false, false);
  j["model"]["merges"][5] = 17;
  EXPECT_NE(load_error(j).find("model.merges[5]"), std::string::npos) << load_error(j);
  j = gpt2_tokenizer_json(false, false);
  j["model"]["vocab"]["Hello"] = "x";
  EXPECT_NE(load_error(j).find("model.vocab key \"Hello\""), std::string::npos) << load_error(j);
  fs::remove_all(dir);
}

TEST(Tokenizer, SaveThenReloadEncodesTheSame) {
  const fs::path dir = tailor::test::fresh_process_dir("tokenizer_save");
  gpt2().save(dir);
  for (const char* name :
       {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"})
    EXPECT_TRUE(fs::exists(dir / name)) << name;
  const std::string merges = tailor::read_file(dir / "merges.txt");
  EXPECT_EQ(merges.rfind("#version: 0.2\n", 0), 0u);
  EXPECT_EQ(merges, tailor::read_file(kGpt2Dir / "merges.txt"));  // same format as OpenAI's
  EXPECT_EQ(json::parse(tailor::read_file(dir / "vocab.json")),
            json::parse(tailor::read_file(kGpt2Dir / "vocab.json")));
  const json config = json::parse(tailor::read_file(dir / "tokenizer_config.json"));
  EXPECT_EQ(config.at("tokenizer_class"), "GPT2Tokenizer");
  EXPECT_EQ(config.at("model_max_length"), 1024);
  EXPECT_EQ(config.at("eos_token"), "<|endoftext|>");
  EXPECT_EQ(config.at("bos_token"), "<|endoftext|>");
  EXPECT_EQ(config.at("unk_token"), "<|endoftext|>");
  EXPECT_EQ(config.at("add_prefix_space"), false);
  EXPECT_EQ(config.at("added_tokens_decoder").at("50256").at("special"), true);
  const json special = json::parse(tailor::read_file(dir / "special_tokens_map.json"));
  EXPECT_EQ(special.at("eos_token"), "<|endoftext|>");

  const Tokenizer reloaded = Tokenizer::from_dir(dir);
  EXPECT_EQ(reloaded.vocab_size(), 50257);
  EXPECT_EQ(reloaded.eos_id(), 50256);
  expect_matches_fixture(reloaded);
  EXPECT_EQ(reloaded.encode("a<|endoftext|>b", true), (std::vector<int32_t>{64, 50256, 65}));
  fs::remove_all(dir);
}

TEST(Tokenizer, MalformedMergesLineNamesFileAndLine) {
  const fs::path dir = tailor::test::fresh_process_dir("tokenizer_bad_merges");
  tailor::write_file_atomic(dir / "vocab.json", tiny_vocab({"ab", "abc"}).dump());
  tailor::write_file_atomic(dir / "merges.txt", "#version: 0.2\na b\nab  c\n");
  std::string error = tailor::test::error_of([&] { Tokenizer::from_dir(dir); });
  EXPECT_NE(error.find((dir / "merges.txt").string() + ":3:"), std::string::npos) << error;
  // A merge whose result is missing from the vocabulary.
  tailor::write_file_atomic(dir / "merges.txt", "#version: 0.2\na b\nab d\n");
  error = tailor::test::error_of([&] { Tokenizer::from_dir(dir); });
  EXPECT_NE(error.find("merges.txt:3:"), std::string::npos) << error;
  EXPECT_NE(error.find("\"abd\""), std::string::npos) << error;
  // The well-formed file loads; trailing blank lines and no #version line are fine.
  tailor::write_file_atomic(dir / "merges.txt", "a b\nab c\n\n\n");
  const Tokenizer tokenizer = Tokenizer::from_dir(dir);
  // "abc" -> 257; " ab" -> byte ' ' (id 32) + "ab" (256): there is no merge (Ġ ab).
  EXPECT_EQ(tokenizer.encode("abc ab"), (std::vector<int32_t>{257, 32, 256}));
  fs::remove_all(dir);
}

TEST(Tokenizer, TinyVocabularyMergesByRank) {
  // Hand-checked BPE: with merges (b c) rank 0 then (a b) rank 1, "abc" -> a + bc, not ab + c.
  const fs::path dir = tailor::test::fresh_process_dir("tokenizer_tiny");
  tailor::write_file_atomic(dir / "vocab.json",
                            tiny_vocab({"bc", "ab", "abc", "aa", "aaaa"}).dump());
  tailor::write_file_atomic(dir / "merges.txt", "#version: 0.2\nb c\na b\na bc\na a\naa aa\n");
  const Tokenizer tokenizer = Tokenizer::from_dir(dir);
  // Ids: bytes 0..255 are the byte symbols in byte order, then bc 256, ab 257, abc 258, aa 259,
  // aaaa 260. "abc": (b c) merges first, then (a bc).
  EXPECT_EQ(tokenizer.encode("abc"), (std::vector<int32_t>{258}));
  // "abd": only (a b) applies.
  EXPECT_EQ(tokenizer.encode("abd"), (std::vector<int32_t>{257, 'd'}));
  // "aaaaa": (a a) merges left to right -> aa aa a, then (aa aa) -> aaaa a.
  EXPECT_EQ(tokenizer.encode("aaaaa"), (std::vector<int32_t>{260, 'a'}));
  EXPECT_EQ(tokenizer.vocab_size(), 261);
  EXPECT_THROW(tokenizer.eos_id(), tailor::Error);  // no <|endoftext|> in this vocabulary
  EXPECT_THROW(tokenizer.decode({261}), tailor::Error);
  EXPECT_THROW(tokenizer.decode({-1}), tailor::Error);
  fs::remove_all(dir);
}

TEST(Tokenizer, MissingFilesNameTheDirectory) {
  const fs::path dir = tailor::test::fresh_process_dir("tokenizer_empty");
  const std::string error = tailor::test::error_of([&] { Tokenizer::from_dir(dir); });
  EXPECT_NE(error.find(dir.string()), std::string::npos) << error;
  EXPECT_NE(error.find("tokenizer.json"), std::string::npos) << error;
  fs::remove_all(dir);
}

TEST(Tokenizer, ConcurrentEncodesAgree) {
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &failures] {
      for (const Gpt2TokenizerCase& c : gpt2_fixture_cases())
        if (gpt2().encode(c.text) != c.ids) failures[t] += 1;
    });
  }
  for (auto& thread : threads)
    thread.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}
