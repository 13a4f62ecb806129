// Prompt templates (models/tokenizer/prompt_format.h) with and without a system text, and the
// SFT reader's optional "system" field (data/store/jsonl_import.h, data/sft/sft_dataset.h).
// Expected ids are the hand-written conversation encoded piece by piece by the tokenizer with the
// EOS id between the pieces, so they do not depend on how the template code builds them; for
// Mistral the whole conversation, response and closing </s> included, must also come out as
// Hugging Face's tokenizer(text) of the full string gives it (tailor's encode_hf, checked against
// an independent implementation in tests/test_tokenizer_json.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "data/sft/sft_dataset.h"
#include "data/store/jsonl_import.h"
#include "models/tokenizer/prompt_format.h"
#include "models/tokenizer/tokenizer.h"
#include "test_support.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;
using PromptIds = std::vector<int32_t>;

const Tokenizer& prompt_format_gpt2() {
  static const Tokenizer tokenizer =
      Tokenizer::from_dir(fs::path(TAILOR_SOURCE_DIR) / "assets" / "tokenizers" / "gpt2");
  return tokenizer;
}

const Tokenizer& prompt_format_mistral() {
  static const Tokenizer tokenizer =
      Tokenizer::from_dir(fs::path(TAILOR_SOURCE_DIR) / "assets" / "tokenizers" / "mistral");
  return tokenizer;
}

// The concatenation of `parts`.
PromptIds joined_ids(const std::vector<PromptIds>& parts) {
  PromptIds out;
  for (const PromptIds& p : parts)
    out.insert(out.end(), p.begin(), p.end());
  return out;
}

size_t count_id(const PromptIds& ids, int32_t id) {
  return static_cast<size_t>(std::count(ids.begin(), ids.end(), id));
}

TEST(PromptFormat, ZephyrIsANamedTemplate) {
  EXPECT_EQ(to_string(PromptTemplate::kZephyr), "zephyr");
  const std::optional<PromptTemplate> parsed =
      enum_from_name(prompt_template_names(), std::string("zephyr"));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, PromptTemplate::kZephyr);
  EXPECT_EQ(to_string(PromptTemplate::kPlain), "plain");
  EXPECT_EQ(to_string(PromptTemplate::kMistralInstruct), "mistral_instruct");
}

TEST(PromptFormat, ZephyrGpt2WithoutSystemHasNoSystemTurn) {
  const Tokenizer& t = prompt_format_gpt2();
  ASSERT_EQ(t.eos_id(), 50256);
  // "<|user|>\nTell me about cats.</s>\n<|assistant|>\n" with </s> = <|endoftext|>.
  const PromptIds expected = joined_ids(
      {t.encode("<|user|>\nTell me about cats."), {50256}, t.encode("\n<|assistant|>\n")});
  const PromptIds ids = encode_prompt(t, PromptTemplate::kZephyr, "Tell me about cats.");
  EXPECT_EQ(ids, expected);
  EXPECT_EQ(count_id(ids, 50256), 1u);
  EXPECT_EQ(ids, encode_prompt(t, PromptTemplate::kZephyr, "Tell me about cats.", ""));
  // The same as the template's string with the EOS token's own text.
  EXPECT_EQ(ids, t.encode_hf("<|user|>\nTell me about cats.<|endoftext|>\n<|assistant|>\n"));
  // "</s>" is the EOS token, not GPT-2's BPE pieces of the text "</s>".
  EXPECT_NE(ids, t.encode("<|user|>\nTell me about cats.</s>\n<|assistant|>\n"));
  // The markers are ordinary text for GPT-2: "<|user|>" = "<", "|", "user", "|", ">".
  EXPECT_EQ(PromptIds(ids.begin(), ids.begin() + 6), (PromptIds{27, 91, 7220, 91, 29, 198}));
  EXPECT_EQ(PromptIds(ids.end() - 9, ids.end()),
            (PromptIds{50256, 198, 27, 91, 562, 10167, 91, 29, 198}));
}

TEST(PromptFormat, ZephyrGpt2WithSystemOpensWithTheSystemTurn) {
  const Tokenizer& t = prompt_format_gpt2();
  const std::string system = "Answer in lowercase.";
  const std::string prompt = "Tell me about cats.";
  // "<|system|>\nAnswer in lowercase.</s>\n<|user|>\nTell me about cats.</s>\n<|assistant|>\n"
  const PromptIds expected = joined_ids({t.encode("<|system|>\n" + system),
                                         {50256},
                                         t.encode("\n<|user|>\n" + prompt),
                                         {50256},
                                         t.encode("\n<|assistant|>\n")});
  const PromptIds ids = encode_prompt(t, PromptTemplate::kZephyr, prompt, system);
  EXPECT_EQ(ids, expected);
  EXPECT_EQ(count_id(ids, 50256), 2u);
  // EOS right after the system text and right after the prompt.
  const size_t first_eos = t.encode("<|system|>\n" + system).size();
  const size_t second_eos = first_eos + 1 + t.encode("\n<|user|>\n" + prompt).size();
  ASSERT_LT(second_eos, ids.size());
  EXPECT_EQ(ids[first_eos], 50256);
  EXPECT_EQ(ids[second_eos], 50256);
  // The system turn is a prefix: the rest is the prompt without a system text, from its "\n".
  const PromptIds without = encode_prompt(t, PromptTemplate::kZephyr, prompt);
  EXPECT_EQ(PromptIds(ids.begin() + static_cast<std::ptrdiff_t>(first_eos) + 2, ids.end()),
            without);
  // Training encodes the prompt field exactly as generation does.
  EXPECT_EQ(encode_sft_field(t, PromptTemplate::kZephyr, "prompt", prompt, system), ids);
  EXPECT_EQ(encode_sft_field(t, PromptTemplate::kZephyr, "prompt", prompt), without);
}

TEST(PromptFormat, ZephyrGpt2WholeConversationIsPromptThenResponseThenEos) {
  // GPT-2 responses are encoded as written; pieces split at the newline, so the collated row
  // (prompt, response, EOS) is the whole conversation's encoding.
  const Tokenizer& t = prompt_format_gpt2();
  for (const std::string& response :
       std::vector<std::string>{" Cats meow.", "\n- CATS MEOW\n- x", "cats"}) {
    SCOPED_TRACE(test::show(response));
    const PromptIds r =
        encode_sft_field(t, PromptTemplate::kZephyr, "response", response, "Answer in lowercase.");
    EXPECT_EQ(r, t.encode(response));
    EXPECT_EQ(
        joined_ids(
            {encode_prompt(t, PromptTemplate::kZephyr, "Hi.", "Answer in lowercase."), r, {50256}}),
        t.encode_hf("<|system|>\nAnswer in lowercase.<|endoftext|>\n<|user|>\nHi."
                    "<|endoftext|>\n<|assistant|>\n" +
                    response + "<|endoftext|>"));
  }
}

TEST(PromptFormat, ZephyrMistralMatchesTheWholeConversation) {
  const Tokenizer& t = prompt_format_mistral();
  ASSERT_EQ(t.eos_id(), 2);
  const std::string system = "Answer in lowercase.";
  const std::string prompt = "Tell me about cats.";
  const PromptIds ids = encode_prompt(t, PromptTemplate::kZephyr, prompt, system);
  // <s>, then the pieces with </s> (2) between them: after </s> the legacy normalizer starts a
  // new "▁" word, as Hugging Face does for text after a special token.
  EXPECT_EQ(ids, joined_ids({{1},
                             t.encode("<|system|>\n" + system),
                             {2},
                             t.encode("\n<|user|>\n" + prompt),
                             {2},
                             t.encode("\n<|assistant|>\n")}));
  EXPECT_EQ(ids, t.encode_hf("<|system|>\n" + system + "</s>\n<|user|>\n" + prompt +
                             "</s>\n<|assistant|>\n"));
  EXPECT_EQ(encode_prompt(t, PromptTemplate::kZephyr, prompt),
            t.encode_hf("<|user|>\n" + prompt + "</s>\n<|assistant|>\n"));
  // A response follows "\n" with no word marker of its own: "Cats" is "C" "ats", not "▁C" "ats",
  // and a leading space is the marker ("▁cats"), as inside the conversation.
  for (const std::string& response :
       std::vector<std::string>{"Cats meow.", " cats meow", "\n- Cats meow\n- Cats eat fish"}) {
    SCOPED_TRACE(test::show(response));
    const PromptIds r = encode_sft_field(t, PromptTemplate::kZephyr, "response", response);
    EXPECT_EQ(joined_ids({ids, r, {2}}),
              t.encode_hf("<|system|>\n" + system + "</s>\n<|user|>\n" + prompt +
                          "</s>\n<|assistant|>\n" + response + "</s>"));
  }
  EXPECT_NE(encode_sft_field(t, PromptTemplate::kZephyr, "response", "Cats meow."),
            t.encode("Cats meow."));
}

TEST(PromptFormat, PlainAndMistralInstructWithSystem) {
  for (const Tokenizer* t : {&prompt_format_gpt2(), &prompt_format_mistral()}) {
    const std::string system = "Answer in as few words as you can.";
    const std::string prompt = "Describe owls.";
    // plain: the system text, one newline, the prompt.
    EXPECT_EQ(encode_prompt(*t, PromptTemplate::kPlain, prompt, system),
              t->encode_hf(system + "\n" + prompt));
    EXPECT_EQ(encode_prompt(*t, PromptTemplate::kPlain, prompt), t->encode_hf(prompt));
    // mistral_instruct: the system text opens the first [INST], a blank line before the prompt.
    EXPECT_EQ(encode_prompt(*t, PromptTemplate::kMistralInstruct, prompt, system),
              t->encode_hf("[INST] " + system + "\n\n" + prompt + " [/INST]"));
    EXPECT_EQ(encode_prompt(*t, PromptTemplate::kMistralInstruct, prompt),
              t->encode_hf("[INST] " + prompt + " [/INST]"));
    for (PromptTemplate format :
         {PromptTemplate::kPlain, PromptTemplate::kMistralInstruct, PromptTemplate::kZephyr}) {
      SCOPED_TRACE(to_string(format));
      EXPECT_EQ(encode_sft_field(*t, format, "prompt", prompt, system),
                encode_prompt(*t, format, prompt, system));
      // Only a prompt depends on the system text.
      EXPECT_EQ(encode_sft_field(*t, format, "response", " Wise.", system),
                encode_sft_field(*t, format, "response", " Wise."));
      EXPECT_EQ(encode_sft_field(*t, format, "text", "Owls hoot.", system),
                t->encode_hf("Owls hoot."));
    }
  }
  // Mistral's BOS stays first with a system text.
  EXPECT_EQ(encode_prompt(prompt_format_mistral(), PromptTemplate::kMistralInstruct, "p", "s")[0],
            1);
}

// ---- The SFT reader's "system" field -------------------------------------------------------

fs::path write_prompt_format_fixture(const std::string& name, const std::string& contents) {
  const fs::path dir = test::fresh_process_dir("prompt_format_" + name);
  const fs::path file = dir / (name + ".jsonl");
  std::ofstream(file, std::ios::binary) << contents;
  return file;
}

TEST(PromptFormatSftData, SystemFieldReachesThePromptEncoder) {
  const Tokenizer& t = prompt_format_gpt2();
  const fs::path file = write_prompt_format_fixture(
      "system_field",
      "{\"system\": \"Answer in lowercase.\", \"prompt\": \"Describe owls.\", \"response\": \" "
      "owls hoot.\"}\n"
      "{\"prompt\": \"Describe owls.\", \"response\": \" Owls hoot.\"}\n"
      "{\"system\": null, \"prompt\": \"Describe owls.\", \"response\": \" Owls hoot.\"}\n"
      "{\"system\": \"\", \"prompt\": \"Describe owls.\", \"response\": \" Owls hoot.\"}\n");
  const auto encode = [&t](const std::string& text) { return t.encode(text); };
  const auto encode_field = [&t](const std::string& key, const std::string& text,
                                 const std::string& system) {
    return encode_sft_field(t, PromptTemplate::kZephyr, key, text, system);
  };
  const data::SftDataset ds = data::SftDataset::load(file, encode, encode_field);
  ASSERT_EQ(ds.size(), 4);
  std::vector<int32_t> tokens;
  std::vector<bool> learned;
  ds.example(0, tokens, learned);
  const PromptIds with_system =
      encode_prompt(t, PromptTemplate::kZephyr, "Describe owls.", "Answer in lowercase.");
  EXPECT_EQ(tokens, joined_ids({with_system, t.encode(" owls hoot.")}));
  EXPECT_EQ(std::count(learned.begin(), learned.end(), false),
            static_cast<std::ptrdiff_t>(with_system.size()));
  // Absent, null and "" all mean no system turn.
  const PromptIds without = encode_prompt(t, PromptTemplate::kZephyr, "Describe owls.");
  for (int64_t i = 1; i < 4; ++i) {
    ds.example(i, tokens, learned);
    EXPECT_EQ(tokens, joined_ids({without, t.encode(" Owls hoot.")})) << "record " << i;
  }
  fs::remove_all(file.parent_path());
}

TEST(PromptFormatSftData, NonStringSystemNamesFileAndLine) {
  const fs::path file =
      write_prompt_format_fixture("system_type",
                                  "{\"prompt\": \"a\", \"response\": \"b\"}\n"
                                  "{\"system\": 5, \"prompt\": \"a\", \"response\": \"b\"}\n");
  const auto encode = [](const std::string& text) { return PromptIds(text.size(), 7); };
  const auto encode_field = [](const std::string&, const std::string& text, const std::string&) {
    return PromptIds(text.size(), 7);
  };
  const std::string msg =
      test::error_of([&] { data::SftDataset::load(file, encode, encode_field); });
  EXPECT_CONTAINS(msg, file.string() + ":2: \"system\" must be a string, got number");
  fs::remove_all(file.parent_path());
}

TEST(PromptFormatSftData, ReadersWithoutASystemEncoderRefuseASystemText) {
  const fs::path file = write_prompt_format_fixture(
      "system_dropped",
      "{\"prompt\": \"a\", \"response\": \"b\"}\n"
      "{\"system\": \"Answer in lowercase.\", \"prompt\": \"a\", \"response\": \"b\"}\n");
  const auto encode = [](const std::string& text) { return PromptIds(text.size(), 7); };
  const auto two_args = [](const std::string&, const std::string& text) {
    return PromptIds(text.size(), 7);
  };
  std::string msg = test::error_of([&] { data::SftDataset::load(file, encode, two_args); });
  EXPECT_CONTAINS(msg, file.string() + ":2: \"system\" is given");
  msg = test::error_of([&] { data::tokenize_jsonl(file, std::nullopt, encode); });
  EXPECT_CONTAINS(msg, file.string() + ":2: \"system\" is given");
  // Pairs ignore "system", as any key they do not use.
  const fs::path pairs = write_prompt_format_fixture(
      "system_pairs",
      "{\"system\": 5, \"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\"}\n");
  EXPECT_EQ(data::tokenize_jsonl(pairs, std::nullopt, encode).count(), 1);
  fs::remove_all(file.parent_path());
  fs::remove_all(pairs.parent_path());
}

}  // namespace
}  // namespace tailor
