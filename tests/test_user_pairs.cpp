// Per-user DPO pairs (data/preferences/user_pairs.h): the 2B-row layout, labels on the responses
// only (and the EOS closing them), truncation, and errors that name the file, line and key.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>

#include "common/error.h"
#include "data/preferences/user_pairs.h"

namespace tailor::data {
namespace {
namespace fs = std::filesystem;

// One id per character ('a' = 1, ...); prompts get a leading 100 (a BOS stand-in).
std::vector<int32_t> encode(const std::string& field, const std::string& text) {
  std::vector<int32_t> ids;
  if (field == "prompt") ids.push_back(100);
  for (char c : text)
    ids.push_back(static_cast<int32_t>(c - 'a' + 1));
  return ids;
}

fs::path write(const std::string& name, const std::string& text) {
  const fs::path file = fs::temp_directory_path() / ("tailor_user_pairs_" + name + ".jsonl");
  std::ofstream(file) << text;
  return file;
}

std::vector<int64_t> row(const at::Tensor& t, int64_t r) {
  const at::Tensor x = t[r].contiguous();
  return std::vector<int64_t>(x.data_ptr<int64_t>(), x.data_ptr<int64_t>() + x.numel());
}

TEST(UserPairs, ChosenRowsThenRejectedRowsWithOnlyResponsesLabelled) {
  const fs::path file = write("layout",
                              "{\"user\": \"bob\", \"prompt\": \"ab\", \"chosen\": \"c\", "
                              "\"rejected\": \"dd\"}\n\n"
                              "{\"user\": \"alice\", \"prompt\": \"e\", \"chosen\": \"fff\", "
                              "\"rejected\": \"g\", \"extra\": 1}\n");
  const UserPairs pairs = UserPairs::from_jsonl(file, encode);
  fs::remove(file);
  ASSERT_EQ(pairs.size(), 2);
  EXPECT_EQ(pairs.users(), (std::vector<std::string>{"alice", "bob"}));
  EXPECT_EQ(pairs.indices_of("alice"), std::vector<int64_t>{1});
  CollateOptions options;
  options.max_length = 16;
  options.eos_id = 50;
  options.append_eos = true;
  const PairBatch batch = pairs.collate({1, 0}, options);
  EXPECT_EQ(batch.users, (std::vector<std::string>{"alice", "bob"}));
  ASSERT_EQ(batch.rows.input_ids.sizes(), (at::IntArrayRef{4, 6}));
  const int64_t x = -100;
  // alice chosen: BOS e | f f f EOS ; bob chosen: BOS a b | c EOS, padded with EOS (unlabelled).
  EXPECT_EQ(row(batch.rows.input_ids, 0), (std::vector<int64_t>{100, 5, 6, 6, 6, 50}));
  EXPECT_EQ(row(batch.rows.labels, 0), (std::vector<int64_t>{x, x, 6, 6, 6, 50}));
  EXPECT_EQ(row(batch.rows.input_ids, 1), (std::vector<int64_t>{100, 1, 2, 3, 50, 50}));
  EXPECT_EQ(row(batch.rows.labels, 1), (std::vector<int64_t>{x, x, x, 3, 50, x}));
  EXPECT_EQ(row(batch.rows.attention_mask, 1), (std::vector<int64_t>{1, 1, 1, 1, 1, 0}));
  // rejected rows in the same pair order: alice's "g", bob's "dd".
  EXPECT_EQ(row(batch.rows.labels, 2), (std::vector<int64_t>{x, x, 7, 50, x, x}));
  EXPECT_EQ(row(batch.rows.labels, 3), (std::vector<int64_t>{x, x, x, 4, 4, 50}));
  // Truncation cuts the end of each sequence, EOS included.
  options.max_length = 4;
  const PairBatch cut = pairs.collate({0}, options);
  EXPECT_EQ(row(cut.rows.labels, 0), (std::vector<int64_t>{x, x, x, 3}));
  EXPECT_EQ(row(cut.rows.labels, 1), (std::vector<int64_t>{x, x, x, 4}));
}

// A response marked truncated (a sample cut at max_new_tokens) gets no closing EOS: its row ends
// with its last text token, the other side of the pair keeps its EOS.
TEST(UserPairs, TruncatedResponsesGetNoClosingEos) {
  const fs::path file = write("truncated",
                              "{\"user\": \"u\", \"prompt\": \"a\", \"chosen\": \"bb\", "
                              "\"rejected\": \"c\", \"chosen_truncated\": true}\n"
                              "{\"user\": \"u\", \"prompt\": \"a\", \"chosen\": \"d\", "
                              "\"rejected\": \"ee\", \"chosen_truncated\": false, "
                              "\"rejected_truncated\": true}\n");
  const UserPairs pairs = UserPairs::from_jsonl(file, encode);
  fs::remove(file);
  EXPECT_TRUE(pairs.pair(0).chosen_truncated);
  EXPECT_FALSE(pairs.pair(0).rejected_truncated);
  EXPECT_FALSE(pairs.pair(1).chosen_truncated);
  EXPECT_TRUE(pairs.pair(1).rejected_truncated);
  CollateOptions options;
  options.max_length = 16;
  options.eos_id = 50;
  options.append_eos = true;
  const PairBatch batch = pairs.collate({0, 1}, options);
  const int64_t x = -100;
  ASSERT_EQ(batch.rows.input_ids.size(1), 4);
  EXPECT_EQ(row(batch.rows.labels, 0), (std::vector<int64_t>{x, x, 2, 2}));   // bb, cut
  EXPECT_EQ(row(batch.rows.labels, 1), (std::vector<int64_t>{x, x, 4, 50}));  // d EOS
  EXPECT_EQ(row(batch.rows.labels, 2), (std::vector<int64_t>{x, x, 3, 50}));  // c EOS
  EXPECT_EQ(row(batch.rows.labels, 3), (std::vector<int64_t>{x, x, 5, 5}));   // ee, cut
  EXPECT_EQ(row(batch.rows.attention_mask, 2), (std::vector<int64_t>{1, 1, 1, 1}));
}

TEST(UserPairs, ErrorsNameTheFileLineAndKey) {
  const auto expect_error = [](const std::string& text, const std::string& needle) {
    const fs::path file = write("errors", text);
    try {
      UserPairs::from_jsonl(file, encode);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    fs::remove(file);
  };
  const std::string good =
      "{\"user\": \"u\", \"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n";
  expect_error(good + "{\"user\": \"u\", \"prompt\": \"a\", \"chosen\": \"b\"}\n",
               "tailor_user_pairs_errors.jsonl:2: \"rejected\" must be a string");
  expect_error(good + "not json\n", ":2: not JSON");
  expect_error("[1, 2]\n", ":1: expected a JSON object");
  expect_error("{\"user\": \"\", \"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n",
               ":1: \"user\" is empty");
  expect_error("{\"user\": \"u\", \"prompt\": \"a\", \"chosen\": \"\", \"rejected\": \"c\"}\n",
               ":1: \"chosen\" and \"rejected\" must not be empty");
  expect_error(
      "{\"user\": \"u\", \"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\", "
      "\"rejected_truncated\": \"yes\"}\n",
      ":1: \"rejected_truncated\" must be true or false");
  expect_error("\n", "no pairs");
}

}  // namespace
}  // namespace tailor::data
