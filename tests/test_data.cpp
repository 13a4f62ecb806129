// Specifications of the data layer: HDF5 store schema, JSONL import, SFT batching, sampling.
// Token ids come from a byte encoder (id = byte value), so every expected id below is the
// ASCII/UTF-8 code of the text it stands for, written out by hand.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "common/error.h"
#include "data/sampling/epoch_sampler.h"
#include "data/sft/sft_dataset.h"
#include "data/store/h5_file.h"
#include "data/store/jsonl_import.h"
#include "data/store/store.h"
#include "test_support.h"

// In tailor::data rather than `using namespace tailor::data` at file scope, which would carry
// over into the files after this one in a unity build.
namespace tailor::data {
namespace {

namespace fs = std::filesystem;
using Ids = std::vector<int32_t>;

std::vector<int32_t> byte_encode(const std::string& text) {
  std::vector<int32_t> ids;
  for (unsigned char c : text)
    ids.push_back(c);
  return ids;
}

fs::path data_fixture(const std::string& name) {
  return fs::path(TAILOR_FIXTURE_DIR) / "data" / name;
}

// A fresh, empty directory per test.
class DataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("tailor_test_data_" + std::to_string(getpid()) + "_" +
                                        info->test_suite_name() + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& contents) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << contents;
    return p;
  }
  std::set<std::string> entries() const {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_))
      names.insert(e.path().filename().string());
    return names;
  }

  fs::path dir_;
};

std::vector<int64_t> to_int64_vector(const at::Tensor& t) {
  const at::Tensor c = t.contiguous().to(at::kLong);
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

// ---- HDF5 wrapper -------------------------------------------------------------------------

using DataH5File = DataTest;

TEST_F(DataH5File, DatasetsAndAttributesRoundTrip) {
  const fs::path p = dir_ / "x.h5";
  {
    auto f = tailor::h5::File::create(p);
    f.write_int32("a/b/ints", {1, -2, 3});
    f.write_int64("big", {int64_t{1} << 40, -7});
    f.write_strings("s", {"héllo", "", "日本"});
    f.write_int32("empty", {});
    f.set_attribute("name", std::string("ünïcode"));
    f.set_attribute("n", int64_t{-5});
    f.close();
  }
  auto f = tailor::h5::File::open_read_only(p);
  EXPECT_EQ(f.read_int32("a/b/ints"), (Ids{1, -2, 3}));
  EXPECT_EQ(f.read_int64("big"), (std::vector<int64_t>{int64_t{1} << 40, -7}));
  EXPECT_EQ(f.read_strings("s"), (std::vector<std::string>{"héllo", "", "日本"}));
  EXPECT_TRUE(f.read_int32("empty").empty());
  EXPECT_EQ(f.read_int32_range("a/b/ints", 1, 2), (Ids{-2, 3}));
  EXPECT_EQ(f.string_attribute("name"), "ünïcode");
  EXPECT_EQ(f.int_attribute("n"), -5);
  EXPECT_TRUE(f.exists("a/b/ints"));
  EXPECT_FALSE(f.exists("a/c/ints"));
  EXPECT_FALSE(f.has_attribute("missing"));
  EXPECT_NE(std::string(test::error_of([&] { f.read_int32("nope"); })).find("nope"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { f.read_int32_range("a/b/ints", 2, 2); }).find("outside"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { f.int_attribute("name"); }).find("not an integer"),
            std::string::npos);
}

TEST_F(DataH5File, LargeDatasetIsChunkedCompressedAndRangeReadable) {
  // 100k ids crosses the chunking threshold (and one 64k chunk boundary).
  std::vector<int32_t> values(100000);
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = static_cast<int32_t>((i * 7919) % 50257);
  const fs::path p = dir_ / "big.h5";
  {
    auto f = tailor::h5::File::create(p);
    f.write_int32("v", values);
    f.close();
  }
  // Compressed: smaller than the raw 400 kB (ids < 2^16 leave two zero bytes per value).
  EXPECT_LT(fs::file_size(p), values.size() * sizeof(int32_t));
  auto f = tailor::h5::File::open_read_only(p);
  EXPECT_EQ(f.read_int32("v"), values);
  EXPECT_EQ(f.dataset_size("v"), 100000);
  const Ids slice = f.read_int32_range("v", 65530, 10);
  EXPECT_EQ(slice, Ids(values.begin() + 65530, values.begin() + 65540));
}

// ---- import + store -----------------------------------------------------------------------

using DataImport = DataTest;

TEST_F(DataImport, TextStoreHoldsExactIdsOffsetsAndAttributes) {
  const fs::path out = dir_ / "text.h5";
  ImportOptions options;
  options.tokenizer = {300, "fnv1a64:0123456789abcdef"};
  const ImportSummary summary =
      import_jsonl(data_fixture("text.jsonl"), out, std::nullopt, byte_encode, options);
  EXPECT_EQ(summary.kind, StoreKind::text);
  EXPECT_EQ(summary.count, 3);
  EXPECT_EQ(summary.tokens, 7);

  // The on-disk schema, read with the raw HDF5 wrapper ("é" is UTF-8 C3 A9 = 195 169).
  {
    auto f = tailor::h5::File::open_read_only(out);
    EXPECT_EQ(f.string_attribute("schema"), "tailor.store");
    EXPECT_EQ(f.int_attribute("schema_version"), 1);
    EXPECT_EQ(f.string_attribute("kind"), "text");
    EXPECT_EQ(f.int_attribute("count"), 3);
    EXPECT_EQ(f.string_attribute("source"), data_fixture("text.jsonl").string());
    EXPECT_EQ(f.int_attribute("tokenizer_vocab_size"), 300);
    EXPECT_EQ(f.string_attribute("tokenizer_hash"), "fnv1a64:0123456789abcdef");
    EXPECT_EQ(f.read_int32("input_ids/values"), (Ids{97, 98, 99, 100, 101, 195, 169}));
    EXPECT_EQ(f.read_int64("input_ids/offsets"), (std::vector<int64_t>{0, 2, 5, 7}));
    EXPECT_EQ(f.read_strings("text/text"), (std::vector<std::string>{"ab", "cde", "é"}));
  }

  const Store store = Store::open(out);
  EXPECT_EQ(store.kind(), StoreKind::text);
  EXPECT_EQ(store.count(), 3);
  EXPECT_EQ(store.ids("input_ids", 0), (Ids{97, 98}));
  EXPECT_EQ(store.ids("input_ids", 1), (Ids{99, 100, 101}));
  EXPECT_EQ(store.ids("input_ids", 2), (Ids{195, 169}));
  EXPECT_EQ(store.span("input_ids", 1).size(), 3);
  EXPECT_EQ(store.text("text", 2), "é");
  EXPECT_EQ(store.tokenizer().vocab_size, 300);
  EXPECT_TRUE(store.users().empty());
  EXPECT_NE(test::error_of([&] { store.ids("input_ids", 3); }).find("out of range"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { store.field("chosen_ids"); }).find("input_ids"),
            std::string::npos);
  EXPECT_EQ(entries(), (std::set<std::string>{"text.h5"}));
}

TEST_F(DataImport, PromptResponseStoreKeepsBothFields) {
  const fs::path out = dir_ / "pr.h5";
  import_jsonl(data_fixture("prompt_response.jsonl"), out, std::nullopt, byte_encode);
  const Store store = Store::open(out);
  EXPECT_EQ(store.kind(), StoreKind::prompt_response);
  ASSERT_EQ(store.count(), 2);
  EXPECT_EQ(store.ids("prompt_ids", 0), (Ids{81, 49}));          // "Q1"
  EXPECT_EQ(store.ids("response_ids", 0), (Ids{111, 107}));      // "ok"
  EXPECT_EQ(store.ids("prompt_ids", 1), (Ids{72, 105}));         // "Hi"
  EXPECT_EQ(store.ids("response_ids", 1), (Ids{121, 111, 33}));  // "yo!"
  EXPECT_EQ(store.field("response_ids").offsets(), (std::vector<int64_t>{0, 2, 5}));
  EXPECT_EQ(store.text("prompt", 1), "Hi");
  EXPECT_FALSE(store.has_field("input_ids"));
}

TEST_F(DataImport, PairsStoreKeepsUsersAndUserTable) {
  const fs::path out = dir_ / "pairs.h5";
  import_jsonl(data_fixture("pairs.jsonl"), out, std::nullopt, byte_encode);
  const Store store = Store::open(out);
  EXPECT_EQ(store.kind(), StoreKind::pairs);
  ASSERT_EQ(store.count(), 4);
  EXPECT_EQ(store.ids("prompt_ids", 0), (Ids{112}));                 // "p"
  EXPECT_EQ(store.ids("chosen_ids", 0), (Ids{103, 111, 111, 100}));  // "good"
  EXPECT_EQ(store.ids("rejected_ids", 0), (Ids{98, 97, 100}));       // "bad"
  EXPECT_EQ(store.ids("chosen_ids", 1), (Ids{121, 101, 115}));       // "yes"
  EXPECT_EQ(store.ids("rejected_ids", 3), (Ids{121}));               // "y"
  // Integer user 7 is stored as "7"; a missing user as "".
  EXPECT_EQ(store.users(), (std::vector<std::string>{"bob", "", "alice", "7"}));
  EXPECT_EQ(store.user_names(), (std::vector<std::string>{"7", "alice", "bob"}));
  EXPECT_EQ(store.user_index(), (std::vector<int32_t>{2, -1, 1, 0}));
  auto f = tailor::h5::File::open_read_only(out);
  EXPECT_EQ(f.read_strings("user"), store.users());
  EXPECT_EQ(f.read_strings("user_names"), (std::vector<std::string>{"7", "alice", "bob"}));
  EXPECT_EQ(f.read_int32("user_index"), (std::vector<int32_t>{2, -1, 1, 0}));
}

TEST_F(DataImport, DetectsKindFromFirstLineKeys) {
  EXPECT_EQ(detect_jsonl_kind(data_fixture("text.jsonl")), StoreKind::text);
  EXPECT_EQ(detect_jsonl_kind(data_fixture("prompt_response.jsonl")), StoreKind::prompt_response);
  EXPECT_EQ(detect_jsonl_kind(data_fixture("pairs.jsonl")), StoreKind::pairs);
  const fs::path odd = write("odd.jsonl", "\n{\"question\": \"x\"}\n");
  const std::string msg = test::error_of([&] { detect_jsonl_kind(odd); });
  EXPECT_NE(msg.find(odd.string() + ":2:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cannot tell the dataset kind"), std::string::npos) << msg;
}

TEST_F(DataImport, CrlfLineEndingsAndExtraKeysAreAccepted) {
  const fs::path in =
      write("crlf.jsonl", "{\"text\": \"a\", \"id\": 5}\r\n\r\n{\"text\": \"b\"}\r\n");
  const StoreData data = tokenize_jsonl(in, StoreKind::text, byte_encode);
  EXPECT_EQ(data.ids.at("input_ids").values(), (Ids{97, 98}));
}

TEST_F(DataImport, BadJsonNamesFileAndLine) {
  const fs::path in = write(
      "bad.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"c\"\n{\"text\": \"d\"}\n");
  const std::string msg =
      test::error_of([&] { import_jsonl(in, dir_ / "out.h5", std::nullopt, byte_encode); });
  EXPECT_NE(msg.find(in.string() + ":3: invalid JSON"), std::string::npos) << msg;
}

TEST_F(DataImport, NonObjectLineNamesFileAndLine) {
  const fs::path in = write("arr.jsonl", "{\"text\": \"a\"}\n[1, 2]\n");
  const std::string msg = test::error_of([&] { tokenize_jsonl(in, std::nullopt, byte_encode); });
  EXPECT_NE(msg.find(in.string() + ":2: expected a JSON object, got array"), std::string::npos)
      << msg;
}

TEST_F(DataImport, MissingKeyNamesFileLineAndKey) {
  const fs::path in =
      write("missing.jsonl", "{\"prompt\": \"a\", \"response\": \"b\"}\n\n{\"prompt\": \"c\"}\n");
  const std::string msg =
      test::error_of([&] { import_jsonl(in, dir_ / "out.h5", std::nullopt, byte_encode); });
  EXPECT_NE(msg.find(in.string() + ":3: missing key \"response\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("prompt_response record needs \"prompt\", \"response\""), std::string::npos)
      << msg;
}

TEST_F(DataImport, WrongTypeNamesFileLineAndType) {
  const fs::path in = write("type.jsonl",
                            "{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\"}\n"
                            "{\"prompt\": \"p\", \"chosen\": 5, \"rejected\": \"b\"}\n");
  std::string msg =
      test::error_of([&] { import_jsonl(in, dir_ / "out.h5", std::nullopt, byte_encode); });
  EXPECT_NE(msg.find(in.string() + ":2: \"chosen\" must be a string, got number"),
            std::string::npos)
      << msg;

  const fs::path user = write(
      "user.jsonl", "{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\", \"user\": [1]}\n");
  msg = test::error_of([&] { tokenize_jsonl(user, std::nullopt, byte_encode); });
  EXPECT_NE(msg.find(user.string() + ":1: \"user\" must be a string or an integer, got array"),
            std::string::npos)
      << msg;
}

TEST_F(DataImport, EmptyResponseIsRejected) {
  const fs::path in = write("empty.jsonl", "{\"prompt\": \"p\", \"response\": \"\"}\n");
  const std::string msg = test::error_of([&] { tokenize_jsonl(in, std::nullopt, byte_encode); });
  EXPECT_NE(msg.find(in.string() + ":1: \"response\" is empty"), std::string::npos) << msg;
}

TEST_F(DataImport, ExplicitKindIsEnforcedOnEveryLine) {
  // A pairs file imported as text: line 1 has no "text" key.
  const std::string msg = test::error_of(
      [&] { tokenize_jsonl(data_fixture("pairs.jsonl"), StoreKind::text, byte_encode); });
  EXPECT_NE(msg.find("pairs.jsonl:1: missing key \"text\""), std::string::npos) << msg;
}

TEST_F(DataImport, FileWithoutRecordsIsAnError) {
  const fs::path in = write("blank.jsonl", "\n  \n");
  const std::string msg = test::error_of([&] { tokenize_jsonl(in, StoreKind::text, byte_encode); });
  EXPECT_NE(msg.find("no records"), std::string::npos) << msg;
}

TEST_F(DataImport, FailedImportLeavesNoFileAndKeepsAnExistingStore) {
  const fs::path bad = write("bad.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{oops}\n");
  EXPECT_THROW(import_jsonl(bad, dir_ / "new.h5", std::nullopt, byte_encode), Error);
  EXPECT_EQ(entries(), (std::set<std::string>{"bad.jsonl"}));

  const fs::path existing = dir_ / "existing.h5";
  import_jsonl(data_fixture("text.jsonl"), existing, std::nullopt, byte_encode);
  const std::string before = tailor::read_file(existing);
  EXPECT_THROW(import_jsonl(bad, existing, std::nullopt, byte_encode), Error);
  EXPECT_EQ(tailor::read_file(existing), before);
  EXPECT_EQ(Store::open(existing).ids("input_ids", 1), (Ids{99, 100, 101}));
  EXPECT_EQ(entries(), (std::set<std::string>{"bad.jsonl", "existing.h5"}));
}

TEST_F(DataImport, EncoderFailureLeavesNoFile) {
  int calls = 0;
  auto failing = [&calls](const std::string& s) -> std::vector<int32_t> {
    if (++calls == 3) throw Error("tokenizer", "boom");
    return byte_encode(s);
  };
  EXPECT_THROW(import_jsonl(data_fixture("text.jsonl"), dir_ / "out.h5", std::nullopt, failing),
               Error);
  EXPECT_TRUE(entries().empty());
}

// ---- store open errors and writing ------------------------------------------------------

using DataStore = DataTest;

TEST_F(DataStore, OpeningANonHdf5FileNamesTheFile) {
  const fs::path p = write("notes.h5", "{\"text\": \"this is JSON, not HDF5\"}\n");
  const std::string msg = test::error_of([&] { Store::open(p); });
  EXPECT_NE(msg.find(p.string() + ": not an HDF5 file"), std::string::npos) << msg;
  const std::string missing = test::error_of([&] { Store::open(dir_ / "nope.h5"); });
  EXPECT_NE(missing.find("nope.h5: no such file"), std::string::npos) << missing;
}

TEST_F(DataStore, OpeningAnotherHdf5FileOrSchemaFails) {
  const fs::path plain = dir_ / "plain.h5";
  {
    auto f = tailor::h5::File::create(plain);
    f.write_int32("x", {1});
    f.close();
  }
  std::string msg = test::error_of([&] { Store::open(plain); });
  EXPECT_NE(msg.find(plain.string() + ": not a tailor dataset store"), std::string::npos) << msg;

  const fs::path other = dir_ / "other.h5";
  {
    auto f = tailor::h5::File::create(other);
    f.set_attribute("schema", std::string("someone.else"));
    f.close();
  }
  msg = test::error_of([&] { Store::open(other); });
  EXPECT_NE(msg.find("schema is 'someone.else', expected 'tailor.store'"), std::string::npos)
      << msg;
}

TEST_F(DataStore, NewerSchemaVersionIsRejected) {
  const fs::path p = dir_ / "future.h5";
  {
    auto f = tailor::h5::File::create(p);
    f.set_attribute("schema", std::string("tailor.store"));
    f.set_attribute("schema_version", int64_t{2});
    f.close();
  }
  const std::string msg = test::error_of([&] { Store::open(p); });
  EXPECT_NE(msg.find("schema_version 2 is newer than this build of tailor reads (1)"),
            std::string::npos)
      << msg;
}

TEST_F(DataStore, InconsistentOffsetsAreRejected) {
  const fs::path p = dir_ / "broken.h5";
  {
    auto f = tailor::h5::File::create(p);
    f.set_attribute("schema", std::string("tailor.store"));
    f.set_attribute("schema_version", int64_t{1});
    f.set_attribute("kind", std::string("text"));
    f.set_attribute("count", int64_t{2});
    f.set_attribute("source", std::string("x"));
    f.set_attribute("tokenizer_vocab_size", int64_t{0});
    f.set_attribute("tokenizer_hash", std::string());
    f.write_int32("input_ids/values", {1, 2, 3});
    f.write_int64("input_ids/offsets", {0, 2, 4});  // ends past the 3 values
    f.close();
  }
  const std::string msg = test::error_of([&] { Store::open(p); });
  EXPECT_NE(msg.find("input_ids: last ragged offset 4 != number of values 3"), std::string::npos)
      << msg;
}

TEST_F(DataStore, WriteFailureLeavesNoTemporaryFile) {
  StoreData data;
  data.kind = StoreKind::text;
  data.ids["input_ids"].push_back({1, 2});
  data.text["text"] = {std::string("a\0b", 3)};  // HDF5 strings cannot hold NUL: fails mid-write
  EXPECT_THROW(write_store(dir_ / "s.h5", data), Error);
  EXPECT_TRUE(entries().empty());
}

TEST_F(DataStore, LargeStoreRoundTripsThroughChunkedDatasets) {
  StoreData data;
  data.kind = StoreKind::prompt_response;
  std::vector<Ids> prompts, responses;
  for (int i = 0; i < 3000; ++i) {
    prompts.push_back(Ids(static_cast<size_t>(1 + i % 13), i % 50257));
    responses.push_back(Ids(static_cast<size_t>(1 + i % 29), (i * 31) % 50257));
    data.ids["prompt_ids"].push_back(prompts.back());
    data.ids["response_ids"].push_back(responses.back());
  }
  write_store(dir_ / "big.h5", data);
  const Store store = Store::open(dir_ / "big.h5");
  ASSERT_EQ(store.count(), 3000);
  EXPECT_FALSE(store.has_text());
  for (int i : {0, 1, 1234, 2999}) {
    EXPECT_EQ(store.ids("prompt_ids", i), prompts[static_cast<size_t>(i)]);
    EXPECT_EQ(store.ids("response_ids", i), responses[static_cast<size_t>(i)]);
  }
}

TEST_F(DataStore, TokenizerIdentityHashesTheTokenizerFiles) {
  const fs::path tok = dir_ / "tok";
  fs::create_directories(tok);
  std::ofstream(tok / "vocab.json") << "{\"a\": 0}";
  std::ofstream(tok / "merges.txt") << "#version: 0.2\n";
  // FNV-1a 64 of "vocab.json\n{\"a\": 0}merges.txt\n#version: 0.2\n", computed separately in
  // Python.
  EXPECT_EQ(tokenizer_identity(tok, 1).hash, "fnv1a64:c6ca7d761df241db");
  EXPECT_EQ(tokenizer_identity(tok, 1).vocab_size, 1);
  std::ofstream(tok / "merges.txt") << "#version: 0.2\na b\n";
  EXPECT_NE(tokenizer_identity(tok, 1).hash, "fnv1a64:c6ca7d761df241db");
  EXPECT_THROW(tokenizer_identity(dir_ / "none", 1), Error);
}

// ---- SFT batching -------------------------------------------------------------------------

using DataSftDataset = DataTest;

TEST_F(DataSftDataset, PromptResponseBatchMasksPromptAndPadding) {
  const SftDataset ds = SftDataset::from_jsonl(data_fixture("prompt_response.jsonl"), byte_encode);
  CollateOptions options;
  options.max_length = 16;
  options.eos_id = 999;
  options.append_eos = true;
  // Record 1 = "Hi" + "yo!" + eos (6 tokens), record 0 = "Q1" + "ok" + eos (5 tokens, 1 pad).
  const SftBatch batch = ds.collate({1, 0}, options);
  EXPECT_EQ(batch.input_ids.sizes(), (std::vector<int64_t>{2, 6}));
  EXPECT_EQ(batch.input_ids.scalar_type(), at::kLong);
  EXPECT_EQ(batch.labels.scalar_type(), at::kLong);
  EXPECT_EQ(batch.attention_mask.scalar_type(), at::kLong);
  EXPECT_EQ(to_int64_vector(batch.input_ids), (std::vector<int64_t>{72, 105, 121, 111, 33, 999,  //
                                                                    81, 49, 111, 107, 999, 999}));
  EXPECT_EQ(to_int64_vector(batch.attention_mask), (std::vector<int64_t>{1, 1, 1, 1, 1, 1,  //
                                                                         1, 1, 1, 1, 1, 0}));
  EXPECT_EQ(to_int64_vector(batch.labels), (std::vector<int64_t>{-100, -100, 121, 111, 33, 999,  //
                                                                 -100, -100, 111, 107, 999, -100}));
  EXPECT_EQ(count_tokens(batch), 11);
  EXPECT_EQ(count_loss_tokens(batch), 7);  // labels[:, 1:] != -100: 4 + 3
}

TEST_F(DataSftDataset, TextBatchLearnsEveryTokenAndPadsRight) {
  const fs::path store = dir_ / "text.h5";
  import_jsonl(data_fixture("text.jsonl"), store, std::nullopt, byte_encode);
  const SftDataset ds = SftDataset::open(store);
  EXPECT_EQ(ds.size(), 3);
  CollateOptions options;
  options.max_length = 8;
  options.eos_id = 999;
  options.pad_id = 7;
  const SftBatch batch = ds.collate({0, 1}, options);
  EXPECT_EQ(to_int64_vector(batch.input_ids), (std::vector<int64_t>{97, 98, 7, 99, 100, 101}));
  EXPECT_EQ(to_int64_vector(batch.attention_mask), (std::vector<int64_t>{1, 1, 0, 1, 1, 1}));
  EXPECT_EQ(to_int64_vector(batch.labels), (std::vector<int64_t>{97, 98, -100, 99, 100, 101}));
  EXPECT_EQ(count_loss_tokens(batch), 3);  // 98, 100, 101

  options.pad_to_max_length = true;
  options.max_length = 5;
  const SftBatch fixed = ds.collate({2}, options);
  EXPECT_EQ(to_int64_vector(fixed.input_ids), (std::vector<int64_t>{195, 169, 7, 7, 7}));
  EXPECT_EQ(to_int64_vector(fixed.labels), (std::vector<int64_t>{195, 169, -100, -100, -100}));
}

TEST_F(DataSftDataset, LongExamplesAreTruncatedAtTheEnd) {
  const SftDataset ds = SftDataset::from_jsonl(data_fixture("prompt_response.jsonl"), byte_encode);
  CollateOptions options;
  options.eos_id = 999;
  options.append_eos = true;
  options.max_length = 4;  // eos and the response tail are cut
  SftBatch batch = ds.collate({1, 0}, options);
  EXPECT_EQ(to_int64_vector(batch.input_ids),
            (std::vector<int64_t>{72, 105, 121, 111, 81, 49, 111, 107}));
  EXPECT_EQ(to_int64_vector(batch.labels),
            (std::vector<int64_t>{-100, -100, 121, 111, -100, -100, 111, 107}));
  EXPECT_EQ(to_int64_vector(batch.attention_mask), (std::vector<int64_t>(8, 1)));

  options.max_length = 2;  // only the prompt survives: nothing to learn
  batch = ds.collate({0}, options);
  EXPECT_EQ(to_int64_vector(batch.input_ids), (std::vector<int64_t>{81, 49}));
  EXPECT_EQ(to_int64_vector(batch.labels), (std::vector<int64_t>{-100, -100}));
  EXPECT_EQ(count_loss_tokens(batch), 0);
}

TEST_F(DataSftDataset, JsonlAndStoreGiveTheSameExamples) {
  const fs::path store = dir_ / "pr.h5";
  import_jsonl(data_fixture("prompt_response.jsonl"), store, std::nullopt, byte_encode);
  const SftDataset from_store = SftDataset::load(store, byte_encode);
  const SftDataset from_jsonl =
      SftDataset::load(data_fixture("prompt_response.jsonl"), byte_encode);
  ASSERT_EQ(from_store.size(), 2);
  ASSERT_EQ(from_jsonl.size(), 2);
  std::vector<int32_t> tokens;
  std::vector<bool> learned;
  from_store.example(1, tokens, learned);
  EXPECT_EQ(tokens, (Ids{72, 105, 121, 111, 33}));
  EXPECT_EQ(learned, (std::vector<bool>{false, false, true, true, true}));
  std::vector<int32_t> tokens2;
  std::vector<bool> learned2;
  from_jsonl.example(1, tokens2, learned2);
  EXPECT_EQ(tokens2, tokens);
  EXPECT_EQ(learned2, learned);
}

TEST_F(DataSftDataset, PairsStoresAndBadOptionsAreRejected) {
  const fs::path pairs = dir_ / "pairs.h5";
  import_jsonl(data_fixture("pairs.jsonl"), pairs, std::nullopt, byte_encode);
  const std::string msg = test::error_of([&] { SftDataset::open(pairs); });
  EXPECT_NE(msg.find(pairs.string() + ": is a pairs (preference) dataset"), std::string::npos)
      << msg;

  const SftDataset ds = SftDataset::from_jsonl(data_fixture("text.jsonl"), byte_encode);
  CollateOptions options;
  options.max_length = 4;
  EXPECT_THROW(ds.collate({0}, options), Error);  // no pad/eos id
  options.eos_id = 0;
  EXPECT_THROW(ds.collate({}, options), Error);
  EXPECT_THROW(ds.collate({3}, options), Error);
  options.max_length = 0;
  EXPECT_THROW(ds.collate({0}, options), Error);
}

// ---- sampler ------------------------------------------------------------------------------

TEST(DataEpochSampler, EveryEpochIsAPermutation) {
  const EpochSampler sampler(37, 1234);
  std::vector<int64_t> identity(37);
  std::iota(identity.begin(), identity.end(), 0);
  for (int64_t epoch = 0; epoch < 5; ++epoch) {
    std::vector<int64_t> order = sampler.permutation(epoch);
    std::sort(order.begin(), order.end());
    EXPECT_EQ(order, identity) << "epoch " << epoch;
  }
}

TEST(DataEpochSampler, OrderDependsOnlyOnSeedAndEpoch) {
  const EpochSampler a(50, 7), b(50, 7), c(50, 8);
  EXPECT_EQ(a.permutation(0), b.permutation(0));
  EXPECT_EQ(a.permutation(3), b.permutation(3));
  EXPECT_NE(a.permutation(0), c.permutation(0));
  EXPECT_NE(a.permutation(0), a.permutation(1));
  EXPECT_NE(a.permutation(1), a.permutation(2));
  std::vector<int64_t> identity(50);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(a.permutation(0), identity);
  EXPECT_EQ(EpochSampler(50, 7, /*shuffle=*/false).permutation(4), identity);
}

TEST(DataEpochSampler, BatchesRunAcrossEpochBoundaries) {
  EpochSampler sampler(5, 99);
  std::vector<int64_t> drawn;
  for (int i = 0; i < 4; ++i) {
    const auto batch = sampler.next_batch(3);
    ASSERT_EQ(batch.size(), 3u);
    drawn.insert(drawn.end(), batch.begin(), batch.end());
  }
  // 12 draws = epoch 0 (5) + epoch 1 (5) + the first 2 of epoch 2.
  std::vector<int64_t> expected = sampler.permutation(0);
  for (int64_t e : {1, 2}) {
    const auto p = sampler.permutation(e);
    expected.insert(expected.end(), p.begin(), p.end());
  }
  expected.resize(12);
  EXPECT_EQ(drawn, expected);
  EXPECT_EQ(sampler.position(), (SamplerPosition{2, 2}));
}

TEST(DataEpochSampler, ResumingFromASavedPositionContinuesIdentically) {
  EpochSampler original(7, 2024);
  std::vector<std::vector<int64_t>> batches;
  SamplerPosition saved;
  for (int i = 0; i < 10; ++i) {
    if (i == 3) saved = original.position();
    batches.push_back(original.next_batch(4));
  }
  EpochSampler resumed(7, 2024);
  resumed.set_position(saved);
  for (int i = 3; i < 10; ++i)
    EXPECT_EQ(resumed.next_batch(4), batches[static_cast<size_t>(i)]) << "batch " << i;
  EXPECT_EQ(resumed.position(), original.position());
}

TEST(DataEpochSampler, ShuffleIsUniformOverPermutations) {
  // 4! = 24 orders over 4800 epochs: each expected 200 times; a biased shuffle (e.g. swapping
  // with any position, or modulo without rejection on a tiny range) shows up far outside this.
  const EpochSampler sampler(4, 5);
  std::map<std::vector<int64_t>, int> counts;
  for (int64_t epoch = 0; epoch < 4800; ++epoch)
    ++counts[sampler.permutation(epoch)];
  EXPECT_EQ(counts.size(), 24u);
  double chi2 = 0;
  for (const auto& [order, n] : counts)
    chi2 += (n - 200.0) * (n - 200.0) / 200.0;
  EXPECT_LT(chi2, 49.7);  // chi-square, 23 degrees of freedom, p = 0.001
}

TEST(DataEpochSampler, InvalidArgumentsAreRejected) {
  EXPECT_THROW(EpochSampler(0, 1), Error);
  EpochSampler sampler(3, 1);
  EXPECT_THROW(sampler.next_batch(0), Error);
  EXPECT_THROW(sampler.set_position({0, 4}), Error);
  EXPECT_THROW(sampler.set_position({-1, 0}), Error);
  sampler.set_position({2, 3});  // end of epoch 2 == start of epoch 3
  EXPECT_EQ(sampler.position(), (SamplerPosition{3, 0}));
}

}  // namespace
}  // namespace tailor::data
