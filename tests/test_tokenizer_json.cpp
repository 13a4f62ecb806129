// Hugging Face tokenizer.json support: Mistral-7B v0.1's tokenizer (assets/tokenizers/mistral)
// against an independent reference, @lenml/tokenizers (tools/gen_tokenizer_json_fixture.js ->
// tests/fixtures/mistral_tokenizer_cases.jsonl), plus small hand-built tokenizer.json files whose
// ids are derived by hand for the components Mistral's file does not use (Metaspace, added-token
// flags, unk handling, ignore_merges, other templates) and for the refused components.
#include <gtest/gtest.h>

#include <unistd.h>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "models/tokenizer/byte_level.h"
#include "models/tokenizer/tokenizer.h"
#include "test_support.h"

namespace fs = std::filesystem;
using nlohmann::json;
using tailor::Tokenizer;
using Ids = std::vector<int32_t>;

namespace {

const fs::path kMistralDir = fs::path(TAILOR_SOURCE_DIR) / "assets" / "tokenizers" / "mistral";

const Tokenizer& mistral() {
  static const Tokenizer tokenizer = Tokenizer::from_dir(kMistralDir);
  return tokenizer;
}

struct MistralTokenizerCase {
  std::string text;
  Ids ids, ids_no_special;
  std::string decoded, decoded_skip;
};

const std::vector<MistralTokenizerCase>& mistral_fixture_cases() {
  static const std::vector<MistralTokenizerCase> cases = [] {
    std::vector<MistralTokenizerCase> out;
    std::ifstream in(fs::path(TAILOR_FIXTURE_DIR) / "mistral_tokenizer_cases.jsonl");
    EXPECT_TRUE(in) << "missing tests/fixtures/mistral_tokenizer_cases.jsonl; regenerate with "
                       "node tools/gen_tokenizer_json_fixture.js PATH/TO/@lenml/tokenizers/package";
    std::string line;
    std::getline(in, line);
    const json header = json::parse(line);
    EXPECT_EQ(header.value("version", 0), 1) << "unexpected fixture header " << line;
    while (std::getline(in, line)) {
      const json j = json::parse(line);
      out.push_back({j.at("text").get<std::string>(), j.at("ids").get<Ids>(),
                     j.at("ids_no_special").get<Ids>(), j.at("decoded").get<std::string>(),
                     j.at("decoded_skip").get<std::string>()});
    }
    return out;
  }();
  return cases;
}

// Texts that decode(encode(text)) cannot give back, for HF as for tailor: "▁" is encoded as a
// space would be, and text after a special token gets its own "▁" (decoded as a space).
bool round_trips(const std::string& text) {
  for (const char* s : {"\u2581", "<unk>", "<s>", "</s>"})
    if (text.find(s) != std::string::npos) return false;
  return true;
}

// A SentencePiece-style tokenizer.json small enough to derive ids by hand:
//   0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then
//   259 ▁   260 a   261 b   262 ▁a   263 ▁b   264 ▁▁   265 ab   266 ▁ab
// merges by rank: (▁ ▁) 0, (▁ a) 1, (▁ b) 2, (a b) 3. "▁ab" has no merge path (for
// ignore_merges). No normalizer, pre-tokenizer, post-processor or decoder until a test sets one.
json tiny_tokenizer_json() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof(hex), "<0x%02X>", b);
    vocab[hex] = 3 + b;
  }
  const std::vector<std::string> extra = {"\u2581",       "a",  "b",       "\u2581a", "\u2581b",
                                          "\u2581\u2581", "ab", "\u2581ab"};
  for (size_t i = 0; i < extra.size(); ++i)
    vocab[extra[i]] = 259 + int(i);
  const auto special = [](int id, const char* content) {
    return json{{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
                {"rstrip", false}, {"normalized", false}, {"special", true}};
  };
  return {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", {special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")}},
      {"normalizer", nullptr},
      {"pre_tokenizer", nullptr},
      {"post_processor", nullptr},
      {"decoder", nullptr},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", {"\u2581 \u2581", "\u2581 a", "\u2581 b", "a b"}}}},
  };
}

json metaspace(const char* scheme, bool split) {
  return {{"type", "Metaspace"},
          {"replacement", "\u2581"},
          {"prepend_scheme", scheme},
          {"split", split}};
}

// Mistral's legacy normalizer and decoder chain, as in assets/tokenizers/mistral/tokenizer.json.
json legacy_normalizer() {
  return {{"type", "Sequence"},
          {"normalizers",
           {{{"type", "Prepend"}, {"prepend", "\u2581"}},
            {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}}}}};
}
json sentencepiece_decoder() {
  return {{"type", "Sequence"},
          {"decoders",
           {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
            {{"type", "ByteFallback"}},
            {{"type", "Fuse"}},
            {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
}

// Writes tokenizer.json (and tokenizer_config.json unless null) to a fresh directory and loads it.
Tokenizer load(const std::string& name, const json& tokenizer_json, const json& config = json()) {
  const fs::path dir = tailor::test::fresh_process_dir("tokjson_" + name);
  tailor::write_file_atomic(dir / "tokenizer.json", tokenizer_json.dump());
  if (!config.is_null()) tailor::write_file_atomic(dir / "tokenizer_config.json", config.dump());
  Tokenizer tokenizer = Tokenizer::from_dir(dir);
  fs::remove_all(dir);
  return tokenizer;
}

std::string load_error(const json& tokenizer_json) {
  const fs::path dir = tailor::test::fresh_process_dir("tokjson_bad");
  tailor::write_file_atomic(dir / "tokenizer.json", tokenizer_json.dump());
  const std::string error = tailor::test::error_of([&] { Tokenizer::from_dir(dir); });
  fs::remove_all(dir);
  return error;
}

}  // namespace

TEST(TokenizerMistral, VocabularyIsMistral7BV01) {
  // The file itself: 32000 tokens, <unk> <s> </s> first, then the 256 byte tokens.
  const json file = json::parse(tailor::read_file(kMistralDir / "tokenizer.json"));
  const json& vocab = file.at("model").at("vocab");
  EXPECT_EQ(vocab.size(), 32000u);
  EXPECT_EQ(vocab.at("<unk>"), 0);
  EXPECT_EQ(vocab.at("<s>"), 1);
  EXPECT_EQ(vocab.at("</s>"), 2);
  EXPECT_EQ(vocab.at("<0x00>"), 3);
  EXPECT_EQ(vocab.at("<0xFF>"), 258);
  EXPECT_EQ(vocab.at("\u2581"), 28705);  // Mistral's "▁" (Llama 2's is 29871)
  EXPECT_EQ(file.at("model").at("byte_fallback"), true);

  EXPECT_EQ(mistral().vocab_size(), 32000);
  EXPECT_EQ(mistral().bos_id(), 1);
  EXPECT_EQ(mistral().eos_id(), 2);
  EXPECT_EQ(mistral().unk_id(), 0);
  EXPECT_EQ(mistral().pad_id(), std::nullopt);  // tokenizer_config.json: "pad_token": null
  EXPECT_EQ(mistral().special_prefix(), (Ids{1}));
  EXPECT_TRUE(mistral().special_suffix().empty());
  EXPECT_EQ(mistral().decode({0, 1, 2}), "<unk><s></s>");
  EXPECT_EQ(mistral().decode({0, 1, 2}, /*skip_special_tokens=*/true), "");
}

TEST(TokenizerMistral, HandCheckedIds) {
  // "Hello world" -> normalized "▁Hello▁world" -> "▁Hello" 22557 + "▁world" 1526 (vocab above).
  EXPECT_EQ(mistral().encode_hf("Hello world"), (Ids{1, 22557, 1526}));
  EXPECT_EQ(mistral().encode_hf("Hello world", false), (Ids{22557, 1526}));
  EXPECT_EQ(mistral().encode("Hello world"), (Ids{22557, 1526}));  // never a BOS
  EXPECT_EQ(mistral().encode_hf(""), (Ids{1}));                    // Prepend skips empty text
  // U+10FFFF is not in the vocabulary: its UTF-8 bytes F4 8F BF BF as <0xNN> = 3 + byte.
  const json vocab =
      json::parse(tailor::read_file(kMistralDir / "tokenizer.json"))["model"]["vocab"];
  EXPECT_FALSE(vocab.contains("\U0010FFFF"));
  EXPECT_EQ(mistral().encode("\U0010FFFF"), (Ids{28705, 3 + 0xF4, 3 + 0x8F, 3 + 0xBF, 3 + 0xBF}));
  // A byte that is not UTF-8 falls back to its byte token and decodes to that byte.
  EXPECT_EQ(mistral().encode("\xFF"), (Ids{28705, 258}));
  EXPECT_EQ(mistral().decode({28705, 258}), "\xFF");
  // decode: "▁" -> " ", bytes joined, one leading space stripped; <s> is kept unless skipped.
  EXPECT_EQ(mistral().decode({1, 22557, 1526}), "<s> Hello world");
  EXPECT_EQ(mistral().decode({1, 22557, 1526}, true), "Hello world");
  EXPECT_EQ(mistral().decode({28705, 3 + 0xE2, 3 + 0x82, 3 + 0xAC}), "\u20AC");
  EXPECT_EQ(mistral().decode({}), "");
  EXPECT_THROW(mistral().decode({32000}), tailor::Error);
}

TEST(TokenizerMistral, MatchesLenmlTokenizersReference) {
  const auto& cases = mistral_fixture_cases();
  ASSERT_GT(cases.size(), 300u);
  int failures = 0;
  for (const MistralTokenizerCase& c : cases) {
    const Ids with = mistral().encode_hf(c.text);
    const Ids without = mistral().encode_hf(c.text, /*add_special_tokens=*/false);
    EXPECT_EQ(with, c.ids) << "text " << tailor::test::show(c.text);
    EXPECT_EQ(without, c.ids_no_special) << "text " << tailor::test::show(c.text);
    EXPECT_EQ(mistral().encode(c.text, /*allow_special=*/true), c.ids_no_special)
        << "text " << tailor::test::show(c.text);
    EXPECT_EQ(mistral().decode(c.ids), c.decoded) << "text " << tailor::test::show(c.text);
    EXPECT_EQ(mistral().decode(c.ids, true), c.decoded_skip)
        << "text " << tailor::test::show(c.text);
    if ((with != c.ids || without != c.ids_no_special) && ++failures > 10)
      FAIL() << "stopping after 10 mismatches";
  }
}

TEST(TokenizerMistral, DecodeRoundTripsFixtureCases) {
  int checked = 0;
  for (const MistralTokenizerCase& c : mistral_fixture_cases()) {
    if (!round_trips(c.text)) continue;
    ++checked;
    EXPECT_EQ(mistral().decode(c.ids_no_special), c.text) << tailor::test::show(c.text);
    EXPECT_EQ(mistral().decode(c.ids, /*skip_special_tokens=*/true), c.text)
        << tailor::test::show(c.text);
  }
  EXPECT_GT(checked, 200);
  // The exceptions, as HF gives them: "▁" comes back as a space; after a special token the
  // legacy normalizer's "▁" comes back as a space.
  EXPECT_EQ(mistral().decode(mistral().encode_hf("a\u2581b"), true), "a b");
  EXPECT_EQ(mistral().decode(mistral().encode("a<s>b", /*allow_special=*/true)), "a<s> b");
}

TEST(TokenizerMistral, DecodeRoundTripsRandomText) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 300; ++trial) {
    std::string s;
    const int n = rng() % 30;
    for (int i = 0; i < n; ++i) {
      char32_t cp = 0;
      switch (rng() % 4) {
        case 0:
          cp = rng() % 0x80;
          break;
        case 1:
          cp = " \n\t<>/s"[rng() % 7];
          break;
        case 2:
          cp = rng() % 0x10000;
          break;
        default:
          cp = 0x10000 + rng() % 0x100000;
          break;
      }
      if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0x2581) cp = 'x';
      tailor::byte_level::append_utf8(s, cp);
    }
    // Special-token text stays plain text without allow_special.
    EXPECT_EQ(mistral().decode(mistral().encode(s)), s) << tailor::test::show(s);
    if (round_trips(s)) {
      EXPECT_EQ(mistral().decode(mistral().encode_hf(s), true), s) << tailor::test::show(s);
    }
  }
  // Arbitrary bytes, including ones that are not UTF-8, come back exactly (HF would have no
  // such input: its strings are UTF-8).
  for (int trial = 0; trial < 300; ++trial) {
    std::string s(rng() % 40, '\0');
    for (char& c : s)
      c = char(rng() % 256);
    if (s.find("\u2581") != std::string::npos) continue;
    EXPECT_EQ(mistral().decode(mistral().encode(s)), s) << tailor::test::show(s);
  }
}

TEST(TokenizerMistral, SpecialTokensInText) {
  // "a<s>b": <s> is cut out of the raw text, then "a" and "b" are normalized separately, so each
  // gets its own "▁" (HF's legacy behaviour): "▁a" 264, "▁b" 287.
  EXPECT_EQ(mistral().encode_hf("a<s>b"), (Ids{1, 264, 1, 287}));
  EXPECT_EQ(mistral().encode("a<s>b", /*allow_special=*/true), (Ids{264, 1, 287}));
  // Without allow_special "<s>" is text: "▁a<s>b" -> "▁a" "<" "s" ">" "b" (no merge applies).
  EXPECT_EQ(mistral().encode("a<s>b"), (Ids{264, 28789, 28713, 28767, 28726}));
  EXPECT_EQ(mistral().decode({264, 1, 287}), "a<s> b");
  EXPECT_EQ(mistral().decode({264, 1, 287}, true), "a b");
}

TEST(TokenizerMistral, LongInputsRoundTrip) {
  // With no pre-tokenizer a whole line is one BPE word: a long one must still merge correctly.
  std::mt19937 rng(3);
  const std::vector<std::string> syllables = {"the", "qu", "ick", "bro", "wn", "fox", "jum",
                                              "ps",  "ov", "er",  "la",  "zy", "dog", "ing"};
  std::string text;
  while (text.size() < 100'000) {
    const int n = 1 + rng() % 4;
    for (int i = 0; i < n; ++i)
      text += syllables[rng() % syllables.size()];
    text += rng() % 12 == 0 ? ", " : rng() % 20 == 0 ? ".\n" : " ";
  }
  const Ids ids = mistral().encode(text);
  EXPECT_LT(ids.size(), text.size() / 2);
  EXPECT_EQ(mistral().decode(ids), text);
  // Pieces of a long word are the pieces of the word on its own (BPE never merges across "▁"
  // here), so encoding "x x" is encoding "x" twice.
  const Ids one = mistral().encode("brownfox");
  Ids twice = one;
  twice.insert(twice.end(), one.begin(), one.end());
  EXPECT_EQ(mistral().encode("brownfox brownfox"), twice);
}

TEST(TokenizerMistral, SaveThenReloadEncodesTheSame) {
  const fs::path dir = tailor::test::fresh_process_dir("tokjson_mistral_save");
  mistral().save(dir);
  EXPECT_EQ(tailor::read_file(dir / "tokenizer.json"),
            tailor::read_file(kMistralDir / "tokenizer.json"));
  EXPECT_EQ(tailor::read_file(dir / "tokenizer_config.json"),
            tailor::read_file(kMistralDir / "tokenizer_config.json"));
  EXPECT_FALSE(fs::exists(dir / "vocab.json"));
  const json special = json::parse(tailor::read_file(dir / "special_tokens_map.json"));
  EXPECT_EQ(special.at("bos_token"), "<s>");
  EXPECT_EQ(special.at("eos_token"), "</s>");
  EXPECT_EQ(special.at("unk_token"), "<unk>");
  EXPECT_FALSE(special.contains("pad_token"));
  const Tokenizer reloaded = Tokenizer::from_dir(dir);
  for (const MistralTokenizerCase& c : mistral_fixture_cases())
    EXPECT_EQ(reloaded.encode_hf(c.text), c.ids) << tailor::test::show(c.text);
  fs::remove_all(dir);
}

TEST(TokenizerJson, LegacyNormalizerAndDecoderOnATinyVocabulary) {
  json j = tiny_tokenizer_json();
  j["normalizer"] = legacy_normalizer();
  j["decoder"] = sentencepiece_decoder();
  const Tokenizer t = load("legacy", j);
  // "a b" -> "▁a▁b": (▁ a) rank 1 and (▁ b) rank 2 -> ▁a ▁b.
  EXPECT_EQ(t.encode("a b"), (Ids{262, 263}));
  // " ab" -> "▁▁ab": (▁ ▁) rank 0 first -> ▁▁ a b -> (a b) rank 3 -> ▁▁ ab.
  EXPECT_EQ(t.encode(" ab"), (Ids{264, 265}));
  // "a€" -> ▁ a € -> € is not in the vocabulary: bytes E2 82 AC; then (▁ a).
  EXPECT_EQ(t.encode("a\u20AC"), (Ids{262, 3 + 0xE2, 3 + 0x82, 3 + 0xAC}));
  EXPECT_EQ(t.decode({262, 3 + 0xE2, 3 + 0x82, 3 + 0xAC}), "a\u20AC");
  EXPECT_EQ(t.decode({264, 265}), " ab");   // "  ab" with one leading space stripped
  EXPECT_TRUE(t.special_prefix().empty());  // no post-processor
  EXPECT_EQ(t.encode_hf("a"), (Ids{262}));
}

TEST(TokenizerJson, MetaspacePrependSchemesAndSplit) {
  json j = tiny_tokenizer_json();
  j["pre_tokenizer"] = metaspace("first", true);
  const Tokenizer first = load("ms_first", j);
  // "a b" -> "a▁b", prepended (the piece starts the input) -> "▁a▁b" -> split ["▁a", "▁b"].
  EXPECT_EQ(first.encode("a b"), (Ids{262, 263}));
  // " a" already starts with "▁": nothing prepended (the legacy normalizer would give ▁▁a).
  EXPECT_EQ(first.encode(" a"), (Ids{262}));
  // After <s> the piece does not start the input: "a▁b" -> ["a", "▁b"].
  EXPECT_EQ(first.encode("<s>a b", true), (Ids{1, 260, 263}));
  // "a  b" -> "▁a▁▁b" -> split before every "▁": ["▁a", "▁", "▁b"].
  EXPECT_EQ(first.encode("a  b"), (Ids{262, 259, 263}));

  j["pre_tokenizer"] = metaspace("always", true);
  EXPECT_EQ(load("ms_always", j).encode("<s>a b", true), (Ids{1, 262, 263}));
  j["pre_tokenizer"] = metaspace("never", true);
  EXPECT_EQ(load("ms_never", j).encode("a b"), (Ids{260, 263}));
  // split false: "▁a▁▁b" is one word: (▁ ▁) rank 0 at position 2 first, then (▁ a) -> ▁a ▁▁ b.
  j["pre_tokenizer"] = metaspace("first", false);
  EXPECT_EQ(load("ms_nosplit", j).encode("a  b"), (Ids{262, 264, 261}));
  // The older form {"add_prefix_space": true} means "always"; false means "never".
  j["pre_tokenizer"] = {
      {"type", "Metaspace"}, {"replacement", "\u2581"}, {"add_prefix_space", true}};
  EXPECT_EQ(load("ms_old", j).encode("<s>a b", true), (Ids{1, 262, 263}));
  j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {metaspace("first", true)}}};
  EXPECT_EQ(load("ms_seq", j).encode("a b"), (Ids{262, 263}));

  // Metaspace decoder: "▁" -> " ", except that the first token loses its "▁" (scheme not never).
  j["decoder"] = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}};
  EXPECT_EQ(load("ms_dec", j).decode({262, 263}), "a b");
  j["decoder"] = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "never"}};
  EXPECT_EQ(load("ms_dec_never", j).decode({262, 263}), " a b");
}

TEST(TokenizerJson, UnknownCharactersIgnoreMergesAndMergePairs) {
  json j = tiny_tokenizer_json();
  j["pre_tokenizer"] = metaspace("first", true);
  j["model"]["byte_fallback"] = false;
  // "a€€b" -> "▁a€€b": € unknown twice -> one fused <unk> -> ▁a <unk> b.
  EXPECT_EQ(load("fuse", j).encode("a\u20AC\u20ACb"), (Ids{262, 0, 261}));
  j["model"]["fuse_unk"] = false;
  EXPECT_EQ(load("nofuse", j).encode("a\u20AC\u20ACb"), (Ids{262, 0, 0, 261}));
  j["model"]["unk_token"] = nullptr;  // HF drops unknown characters then
  EXPECT_EQ(load("nounk", j).encode("a\u20AC\u20ACb"), (Ids{262, 261}));

  j = tiny_tokenizer_json();
  j["pre_tokenizer"] = metaspace("first", true);
  // "ab" -> "▁ab": merges give ▁a b ((▁ a) rank 1; no (▁a b) merge) ...
  EXPECT_EQ(load("merges", j).encode("ab"), (Ids{262, 261}));
  // ... while ignore_merges takes the word "▁ab" straight from the vocabulary.
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(load("ignore", j).encode("ab"), (Ids{266}));
  // Merges as ["a", "b"] pairs load the same as "a b" strings.
  j = tiny_tokenizer_json();
  j["pre_tokenizer"] = metaspace("first", true);
  j["model"]["merges"] =
      json::array({json::array({"\u2581", "\u2581"}), json::array({"\u2581", "a"}),
                   json::array({"\u2581", "b"}), json::array({"a", "b"})});
  EXPECT_EQ(load("pairs", j).encode(" ab b"), (Ids{262, 261, 263}));
}

TEST(TokenizerJson, AddedTokenFlags) {
  json j = tiny_tokenizer_json();
  j["normalizer"] = legacy_normalizer();
  const auto added = [](int id, const char* content, bool lstrip, bool rstrip, bool single_word,
                        bool normalized) {
    return json{{"id", id},         {"content", content}, {"single_word", single_word},
                {"lstrip", lstrip}, {"rstrip", rstrip},   {"normalized", normalized},
                {"special", false}};
  };
  j["added_tokens"].push_back(added(267, "[X]", true, true, false, false));
  j["added_tokens"].push_back(added(268, "xy", false, false, true, false));
  j["added_tokens"].push_back(added(269, "c d", false, false, false, true));
  j["added_tokens"].push_back(added(270, "[Y]", false, false, false, false));
  const Tokenizer t = load("flags", j);
  // lstrip/rstrip take the spaces around [X]: "a" + [X] + "b" -> ▁a [X] ▁b.
  EXPECT_EQ(t.encode("a [X] b"), (Ids{262, 267, 263}));
  // Without them the spaces stay with the text: "a " -> ▁a▁ -> ▁a ▁; " b" -> ▁▁b -> ▁▁ b.
  EXPECT_EQ(t.encode("a [Y] b"), (Ids{262, 259, 270, 264, 261}));
  // single_word: "xy" at the start is a word; in "xyz" it is not, so that stays text
  // (" xyz" -> "▁▁xyz" -> ▁▁ and the bytes of x y z).
  EXPECT_EQ(t.encode("xy xyz"), (Ids{268, 264, 3 + 'x', 3 + 'y', 3 + 'z'}));
  // A normalized token matches its normalized content: "c d" -> "▁c▁d" matches the whole
  // normalized text "▁c▁d", but "xc d" -> "▁xc▁d" does not contain it.
  EXPECT_EQ(t.encode("c d"), (Ids{269}));
  const Ids xc = t.encode("xc d");
  EXPECT_EQ(std::count(xc.begin(), xc.end(), 269), 0);
  // Added tokens that are not special are recognised either way and kept by skip_special.
  EXPECT_EQ(t.encode("[Y]"), (Ids{270}));
  EXPECT_EQ(t.decode({1, 270}, /*skip_special_tokens=*/true), "[Y]");
}

TEST(TokenizerJson, TemplatePostProcessorAndLlamaConfig) {
  json j = tiny_tokenizer_json();
  j["normalizer"] = legacy_normalizer();
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single",
                          {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                           {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                           {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
                         {"pair", json::array()},
                         {"special_tokens",
                          {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}},
                           {"</s>", {{"id", "</s>"}, {"ids", {2}}, {"tokens", {"</s>"}}}}}}};
  const Tokenizer t = load("template", j);
  EXPECT_EQ(t.encode_hf("a"), (Ids{1, 262, 2}));
  EXPECT_EQ(t.encode_hf("a", false), (Ids{262}));
  EXPECT_EQ(t.special_suffix(), (Ids{2}));
  // LlamaTokenizerFast rebuilds the template from add_bos_token / add_eos_token.
  const Tokenizer llama = load("llama", j,
                               {{"tokenizer_class", "LlamaTokenizer"},
                                {"add_bos_token", false},
                                {"add_eos_token", true},
                                {"pad_token", "</s>"}});
  EXPECT_EQ(llama.encode_hf("a"), (Ids{262, 2}));
  EXPECT_EQ(llama.bos_id(), 1);  // LlamaTokenizer's default bos_token "<s>"
  EXPECT_EQ(llama.pad_id(), 2);
  // Another class keeps tokenizer.json's template.
  EXPECT_EQ(load("other", j, {{"tokenizer_class", "PreTrainedTokenizerFast"}}).encode_hf("a"),
            (Ids{1, 262, 2}));
}

TEST(TokenizerJson, UnsupportedComponentsNameFileAndKey) {
  const std::string file =
      (tailor::test::fresh_process_dir("tokjson_bad") / "tokenizer.json").string();
  const auto expect_error = [&](const json& j, const std::string& message) {
    const std::string error = load_error(j);
    EXPECT_NE(error.find(file + ": " + message), std::string::npos)
        << "expected \"" << message << "\", got " << error;
  };
  json j = tiny_tokenizer_json();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", " "}}}};
  expect_error(j, "pre_tokenizer.type: unsupported \"Split\"");
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers", {metaspace("first", true), {{"type", "Digits"}}}}};
  expect_error(j, "pre_tokenizer.pretokenizers[1].type: unsupported \"Digits\"");
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers", {metaspace("first", true), metaspace("first", true)}}};
  expect_error(j, "pre_tokenizer.pretokenizers: only a sequence of one pre-tokenizer");
  j["pre_tokenizer"] = metaspace("sometimes", true);
  expect_error(j, "pre_tokenizer.prepend_scheme: expected \"first\", \"always\" or \"never\"");

  j = tiny_tokenizer_json();
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFKC"}}}}};
  expect_error(j, "normalizer.normalizers[0].type: unsupported \"NFKC\"");
  j["normalizer"] = {{"type", "Replace"}, {"pattern", {{"Regex", " +"}}}, {"content", " "}};
  expect_error(j, "normalizer.pattern: only {\"String\": ...} is supported");

  j = tiny_tokenizer_json();
  j["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}};
  expect_error(j, "decoder.type: unsupported \"WordPiece\"");
  j["decoder"] = {{"type", "Sequence"}, {"decoders", {{{"type", "Fuse"}}, {{"type", "CTC"}}}}};
  expect_error(j, "decoder.decoders[1].type: unsupported \"CTC\"");

  j = tiny_tokenizer_json();
  j["post_processor"] = {{"type", "BertProcessing"}};
  expect_error(j, "post_processor.type: unsupported \"BertProcessing\"");
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "<bos>"}, {"type_id", 0}}}}}},
                         {"special_tokens", json::object()}};
  expect_error(j, "post_processor.special_tokens.<bos>: missing");

  j = tiny_tokenizer_json();
  j["model"]["type"] = "Unigram";
  expect_error(j, "model.type: expected \"BPE\"");
  j = tiny_tokenizer_json();
  j["model"]["ignore_merges"] = "yes";
  expect_error(j, "model.ignore_merges: expected true or false");
  j = tiny_tokenizer_json();
  j["added_tokens"][1]["lstrip"] = 1;
  expect_error(j, "added_tokens[1].lstrip: expected true or false");
  fs::remove_all(fs::path(file).parent_path());
}
