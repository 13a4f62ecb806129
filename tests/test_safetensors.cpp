// safetensors reader/writer and HF checkpoint directories. Files read here are built byte by
// byte (hand-written JSON headers and raw little-endian values), and files written are parsed by
// hand, so neither side is checked only against the other.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "models/io/hf_checkpoint.h"
#include "models/io/safetensors.h"

namespace fs = std::filesystem;
namespace st = tailor::safetensors;
using nlohmann::json;

namespace {

// Raw little-endian bytes of trivially copyable values (the test host is little-endian, which
// safetensors.cpp static_asserts as well).
template <typename T>
std::string raw(const std::vector<T>& values) {
  std::string out(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

std::string u64_le(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

// A complete safetensors file: length prefix, header text as given (no padding), data.
std::string file_bytes(const std::string& header, const std::string& data) {
  return u64_le(header.size()) + header + data;
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Runs `fn`, expecting tailor::Error whose message contains every string of `parts`.
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected tailor::Error containing \"" << parts.front() << "\"";
  } catch (const tailor::Error& e) {
    for (const auto& part : parts)
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "message \"" << e.what() << "\" lacks \"" << part << "\"";
  }
}

class SafetensorsDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("tailor_st_" + std::to_string(::getpid()) + "_" +
                                        info->test_suite_name() + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

using SafetensorsRead = SafetensorsDirTest;
using SafetensorsWrite = SafetensorsDirTest;
using SafetensorsReject = SafetensorsDirTest;
using HfCheckpoint = SafetensorsDirTest;

// ---------------------------------------------------------------------------------------------
// Reading hand-built files

TEST_F(SafetensorsRead, HandWrittenFileGivesValuesDtypesShapesAndMetadata) {
  // Header deliberately unpadded (41 + ... bytes) and with entries out of offset order.
  const std::string header = R"({"b":{"dtype":"I64","shape":[3],"data_offsets":[16,40]},)"
                             R"("__metadata__":{"format":"pt","note":"hi"},)"
                             R"("a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                             R"("c":{"dtype":"BF16","shape":[2],"data_offsets":[40,44]}})";
  const std::string data = raw<float>({1.5f, -2.0f, 0.25f, 3.0f}) +
                           raw<int64_t>({-1, int64_t(1) << 40, 7}) +
                           raw<uint16_t>({0x3FC0, 0xC000});  // bf16 1.5, -2.0
  const fs::path path = dir_ / "hand.safetensors";
  write_bytes(path, file_bytes(header, data));

  st::Reader reader(path);
  EXPECT_EQ(reader.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(reader.contains("a"));
  EXPECT_FALSE(reader.contains("__metadata__"));
  EXPECT_EQ(reader.metadata().at("format"), "pt");
  EXPECT_EQ(reader.metadata().at("note"), "hi");
  EXPECT_EQ(reader.info("b").dtype, "I64");
  EXPECT_EQ(reader.info("b").begin, 16u);
  EXPECT_EQ(reader.info("b").end, 40u);
  EXPECT_EQ(reader.info("a").shape, (std::vector<int64_t>{2, 2}));

  at::Tensor a = reader.tensor("a");
  ASSERT_EQ(a.scalar_type(), at::kFloat);
  ASSERT_EQ(a.sizes().vec(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(a[0][0].item<float>(), 1.5f);
  EXPECT_EQ(a[0][1].item<float>(), -2.0f);
  EXPECT_EQ(a[1][0].item<float>(), 0.25f);
  EXPECT_EQ(a[1][1].item<float>(), 3.0f);

  at::Tensor b = reader.tensor("b");
  ASSERT_EQ(b.scalar_type(), at::kLong);
  EXPECT_EQ(b[0].item<int64_t>(), -1);
  EXPECT_EQ(b[1].item<int64_t>(), int64_t(1) << 40);
  EXPECT_EQ(b[2].item<int64_t>(), 7);

  at::Tensor c = reader.tensor("c");
  ASSERT_EQ(c.scalar_type(), at::kBFloat16);
  EXPECT_EQ(c[0].item<float>(), 1.5f);
  EXPECT_EQ(c[1].item<float>(), -2.0f);
}

TEST_F(SafetensorsRead, EverySupportedDtypeFromRawBytes) {
  // One 2-element tensor per dtype; values chosen so their bit patterns are known by hand.
  struct Case {
    const char* dtype;
    std::string bytes;
    at::ScalarType type;
    double v0, v1;
  };
  const std::vector<Case> cases = {
      {"F64", raw<double>({0.125, -1e10}), at::kDouble, 0.125, -1e10},
      {"F32", raw<float>({-0.5f, 1024.0f}), at::kFloat, -0.5, 1024.0},
      {"F16", raw<uint16_t>({0x3C00, 0xC100}), at::kHalf, 1.0, -2.5},       // 1.0, -2.5
      {"BF16", raw<uint16_t>({0x4040, 0xBF80}), at::kBFloat16, 3.0, -1.0},  // 3.0, -1.0
      {"I64", raw<int64_t>({-5, 9000000000LL}), at::kLong, -5, 9000000000.0},
      {"I32", raw<int32_t>({-70000, 123}), at::kInt, -70000, 123},
      {"I16", raw<int16_t>({-300, 32767}), at::kShort, -300, 32767},
      {"I8", raw<int8_t>({-128, 5}), at::kChar, -128, 5},
      {"U8", raw<uint8_t>({255, 0}), at::kByte, 255, 0},
      {"BOOL", raw<uint8_t>({1, 0}), at::kBool, 1, 0},
  };
  for (const auto& c : cases) {
    const std::string header = std::string(R"({"t":{"dtype":")") + c.dtype +
                               R"(","shape":[2],"data_offsets":[0,)" +
                               std::to_string(c.bytes.size()) + "]}}";
    const fs::path path = dir_ / (std::string(c.dtype) + ".safetensors");
    write_bytes(path, file_bytes(header, c.bytes));
    at::Tensor t = st::load(path).at("t");
    ASSERT_EQ(t.scalar_type(), c.type) << c.dtype;
    ASSERT_EQ(t.numel(), 2) << c.dtype;
    at::Tensor d = t.to(at::kDouble);
    EXPECT_EQ(d[0].item<double>(), c.v0) << c.dtype;
    EXPECT_EQ(d[1].item<double>(), c.v1) << c.dtype;
  }
}

TEST_F(SafetensorsRead, ScalarAndZeroElementTensors) {
  const std::string header = R"({"empty":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},)"
                             R"("scalar":{"dtype":"I32","shape":[],"data_offsets":[0,4]}})";
  const fs::path path = dir_ / "s.safetensors";
  write_bytes(path, file_bytes(header, raw<int32_t>({-42})));
  st::Reader reader(path);
  at::Tensor s = reader.tensor("scalar");
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item<int32_t>(), -42);
  at::Tensor e = reader.tensor("empty");
  EXPECT_EQ(e.sizes().vec(), (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(e.scalar_type(), at::kFloat);
}

TEST_F(SafetensorsRead, TensorOwnsItsMemoryAfterReaderCloses) {
  const fs::path path = dir_ / "own.safetensors";
  write_bytes(path, file_bytes(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                               raw<float>({6.5f})));
  at::Tensor x;
  {
    st::Reader reader(path);
    x = reader.tensor("x");
  }
  fs::remove(path);
  EXPECT_EQ(x.item<float>(), 6.5f);
}

TEST_F(SafetensorsRead, UnsupportedButKnownDtypeOpensAndFailsOnlyWhenRequested) {
  // F8_E4M3 is a valid safetensors dtype that LibTorch 1.13 lacks: the file opens (other tensors
  // stay readable), requesting that tensor names the dtype.
  const std::string header = R"({"f8":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]},)"
                             R"("ok":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}})";
  const fs::path path = dir_ / "f8.safetensors";
  write_bytes(path, file_bytes(header, std::string("\x38\x40\x07", 3)));
  st::Reader reader(path);
  EXPECT_EQ(reader.tensor("ok").item<uint8_t>(), 7);
  expect_error([&] { reader.tensor("f8"); }, {path.string(), "f8", "F8_E4M3"});
}

// ---------------------------------------------------------------------------------------------
// Writer output, parsed by hand

TEST_F(SafetensorsWrite, LayoutParsedByHand) {
  const fs::path path = dir_ / "w.safetensors";
  tailor::TensorMap tensors;
  tensors["w"] = at::tensor({1.0f, -2.5f});
  tensors["a"] = at::tensor(std::vector<int32_t>{7});
  st::save(path, tensors);

  const std::string bytes = tailor::read_file(path);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u) << "header must be padded to a multiple of 8";
  ASSERT_EQ(bytes.size(), 8 + n + 4 + 8) << "data buffer = 4 bytes (I32) + 8 bytes (2 x F32)";
  const std::string header_text = bytes.substr(8, n);
  EXPECT_EQ(header_text.front(), '{');
  const size_t last = header_text.find_last_not_of(' ');
  EXPECT_EQ(header_text[last], '}');
  EXPECT_LT(header_text.size() - 1 - last, 8u) << "padding is at most 7 spaces";

  const json header = json::parse(header_text);
  EXPECT_EQ(header["__metadata__"], json({{"format", "pt"}}));
  EXPECT_EQ(header["a"]["dtype"], "I32");
  EXPECT_EQ(header["a"]["shape"], json::array({1}));
  EXPECT_EQ(header["a"]["data_offsets"], json::array({0, 4}));  // name order: a before w
  EXPECT_EQ(header["w"]["dtype"], "F32");
  EXPECT_EQ(header["w"]["shape"], json::array({2}));
  EXPECT_EQ(header["w"]["data_offsets"], json::array({4, 12}));

  const std::string data = bytes.substr(8 + n);
  EXPECT_EQ(data.substr(0, 4), std::string("\x07\x00\x00\x00", 4));
  EXPECT_EQ(data.substr(4, 4), std::string("\x00\x00\x80\x3f", 4));  // 1.0f
  EXPECT_EQ(data.substr(8, 4), std::string("\x00\x00\x20\xc0", 4));  // -2.5f = 0xC0200000
}

TEST_F(SafetensorsWrite, NonContiguousTensorWrittenInLogicalOrder) {
  const fs::path path = dir_ / "t.safetensors";
  at::Tensor base = at::arange(6, at::kFloat).reshape({2, 3});  // [[0,1,2],[3,4,5]]
  at::Tensor t = base.t();                                      // [[0,3],[1,4],[2,5]]
  ASSERT_FALSE(t.is_contiguous());
  st::save(path, {{"t", t}});
  const std::string bytes = tailor::read_file(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(bytes.substr(8 + n), raw<float>({0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(json::parse(bytes.substr(8, n))["t"]["shape"], json::array({3, 2}));
}

TEST_F(SafetensorsWrite, CustomAndEmptyMetadata) {
  const fs::path path = dir_ / "m.safetensors";
  st::save(path, {{"x", at::zeros({1})}}, {{"format", "pt"}, {"step", "12"}});
  st::Reader reader(path);
  EXPECT_EQ(reader.metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}, {"step", "12"}}));

  st::save(path, {{"x", at::zeros({1})}}, {});
  const std::string bytes = tailor::read_file(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_FALSE(json::parse(bytes.substr(8, n)).contains("__metadata__"));
}

TEST_F(SafetensorsWrite, RoundTripEverySupportedDtype) {
  tailor::TensorMap tensors;
  tensors["f64"] = at::tensor({1e-300, -3.25, 7.0}, at::kDouble);
  tensors["f32"] = at::tensor({0.1f, -1e30f, 2.0f}).reshape({3, 1});
  tensors["f16"] = at::tensor({0.5f, -65504.0f, 3.0f}).to(at::kHalf);
  tensors["bf16"] = at::tensor({1.0f, -0.0078125f, 3.0e38f}).to(at::kBFloat16);
  tensors["i64"] = at::tensor(std::vector<int64_t>{INT64_MIN, 0, INT64_MAX});
  tensors["i32"] = at::tensor(std::vector<int32_t>{INT32_MIN, -1, INT32_MAX});
  tensors["i16"] = at::tensor({-32768, 0, 32767}).to(at::kShort);
  tensors["i8"] = at::tensor({-128, 1, 127}).to(at::kChar);
  tensors["u8"] = at::tensor({0, 128, 255}).to(at::kByte);
  tensors["bool"] = at::tensor({1, 0, 1, 1}).to(at::kBool).reshape({2, 2});
  tensors["scalar"] = at::scalar_tensor(2.5, at::kFloat);
  tensors["empty"] = at::empty({4, 0, 2}, at::kHalf);
  const fs::path path = dir_ / "all.safetensors";
  st::save(path, tensors);

  const tailor::TensorMap loaded = st::load(path);
  ASSERT_EQ(loaded.size(), tensors.size());
  for (const auto& [name, original] : tensors) {
    const at::Tensor& back = loaded.at(name);
    EXPECT_EQ(back.scalar_type(), original.scalar_type()) << name;
    EXPECT_EQ(back.sizes().vec(), original.sizes().vec()) << name;
    EXPECT_TRUE(at::equal(back, original)) << name;
  }
  st::Reader reader(path);
  EXPECT_EQ(reader.info("bf16").dtype, "BF16");
  EXPECT_EQ(reader.info("bool").dtype, "BOOL");
  EXPECT_EQ(reader.info("i8").dtype, "I8");
  EXPECT_EQ(reader.info("u8").dtype, "U8");
  EXPECT_TRUE(reader.info("scalar").shape.empty());
}

TEST_F(SafetensorsWrite, RejectsUnsupportedDtypeAndReservedName) {
  const fs::path path = dir_ / "bad.safetensors";
  expect_error(
      [&] {
        st::save(path, {{"c", at::zeros({2}, at::kComplexFloat)}});
      },
      {path.string(), "\"c\"", "unsupported dtype"});
  expect_error([&] { st::save(path, {{"__metadata__", at::zeros({2})}}); }, {"reserved"});
  EXPECT_FALSE(fs::exists(path));
}

// ---------------------------------------------------------------------------------------------
// Corrupt files

const char* kTwoTensors = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";

TEST_F(SafetensorsReject, TruncatedFile) {
  const fs::path path = dir_ / "trunc.safetensors";
  std::string bytes = file_bytes(kTwoTensors, raw<float>({1, 2, 3}));
  write_bytes(path, bytes.substr(0, bytes.size() - 1));
  expect_error([&] { st::Reader r(path); }, {path.string(), "truncated"});
}

TEST_F(SafetensorsReject, TrailingBytesAfterLastTensor) {
  const fs::path path = dir_ / "extra.safetensors";
  write_bytes(path, file_bytes(kTwoTensors, raw<float>({1, 2, 3, 4})));
  expect_error([&] { st::Reader r(path); }, {path.string(), "cover only 12"});
}

TEST_F(SafetensorsReject, HeaderLengthLargerThanFile) {
  const fs::path path = dir_ / "len.safetensors";
  write_bytes(path, u64_le(1000) + R"({"a":1})");
  expect_error([&] { st::Reader r(path); }, {path.string(), "header length 1000"});
  write_bytes(path, u64_le(~0ULL) + "{}");
  expect_error([&] { st::Reader r(path); }, {"exceeds"});
}

TEST_F(SafetensorsReject, FileShorterThanLengthField) {
  const fs::path path = dir_ / "short.safetensors";
  write_bytes(path, "abc");
  expect_error([&] { st::Reader r(path); }, {path.string(), "too short"});
}

TEST_F(SafetensorsReject, BadJson) {
  const fs::path path = dir_ / "json.safetensors";
  write_bytes(path, file_bytes(R"({"a":{"dtype":"F32",)", ""));
  expect_error([&] { st::Reader r(path); }, {path.string(), "not valid JSON"});
  write_bytes(path, file_bytes("[1,2]", ""));
  expect_error([&] { st::Reader r(path); }, {"start with '{'"});
}

TEST_F(SafetensorsReject, OverlappingOffsets) {
  const fs::path path = dir_ / "overlap.safetensors";
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  write_bytes(path, file_bytes(header, raw<float>({1, 2})));
  expect_error([&] { st::Reader r(path); }, {path.string(), "overlap"});
}

TEST_F(SafetensorsReject, HoleBetweenTensors) {
  const fs::path path = dir_ / "hole.safetensors";
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  write_bytes(path, file_bytes(header, raw<float>({1, 2, 3})));
  expect_error([&] { st::Reader r(path); }, {path.string(), "hole", "[4, 8)"});
}

TEST_F(SafetensorsReject, SizeMismatchWithShape) {
  const fs::path path = dir_ / "size.safetensors";
  write_bytes(path, file_bytes(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                               raw<float>({1, 2})));
  expect_error([&] { st::Reader r(path); }, {path.string(), "\"a\"", "needs 12"});
}

TEST_F(SafetensorsReject, MalformedEntries) {
  const fs::path path = dir_ / "entry.safetensors";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", "non-negative"},
      {R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,0]}})", "non-negative"},
      {R"({"a":{"dtype":"F32","data_offsets":[0,0]}})", "missing \"shape\""},
      {R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0]}})", "data_offsets"},
      {R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", "end before begin"},
      {R"({"a":[1]})", "must be an object"},
      {R"({"__metadata__":{"k":1}})", "must be a string"},
      {R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,0]}})",
       "overflows"},
  };
  for (const auto& [header, expected] : cases) {
    write_bytes(path, file_bytes(header, ""));
    expect_error([&] { st::Reader r(path); }, {path.string(), expected});
  }
}

TEST_F(SafetensorsReject, UnknownDtypeAtOpen) {
  const fs::path path = dir_ / "dtype.safetensors";
  write_bytes(path, file_bytes(R"({"a":{"dtype":"F7","shape":[1],"data_offsets":[0,1]}})", "x"));
  expect_error([&] { st::Reader r(path); }, {path.string(), "unknown dtype \"F7\""});
}

TEST_F(SafetensorsReject, DuplicateKeys) {
  // nlohmann::json alone would silently keep the second "a".
  const fs::path path = dir_ / "dup.safetensors";
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  write_bytes(path, file_bytes(header, raw<float>({1})));
  expect_error([&] { st::Reader r(path); }, {path.string(), "duplicate key \"a\""});

  const std::string inner =
      R"({"a":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}})";
  write_bytes(path, file_bytes(inner, raw<float>({1})));
  expect_error([&] { st::Reader r(path); }, {"duplicate key \"dtype\""});
}

TEST_F(SafetensorsReject, BoolByteOtherThanZeroOrOne) {
  const fs::path path = dir_ / "bool.safetensors";
  write_bytes(path, file_bytes(R"({"m":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})",
                               std::string("\x01\x02", 2)));
  st::Reader reader(path);
  expect_error([&] { reader.tensor("m"); }, {path.string(), "\"m\"", "byte 2"});
}

TEST_F(SafetensorsReject, MessagesNameThePathAndMissingKey) {
  const fs::path path = dir_ / "named_file.safetensors";
  expect_error([&] { st::Reader r(path); }, {"[safetensors]", path.string(), "cannot open"});
  write_bytes(path, file_bytes(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                               raw<float>({1})));
  st::Reader reader(path);
  expect_error([&] { reader.tensor("nope"); }, {path.string(), "\"nope\""});
  expect_error([&] { reader.info("nope"); }, {path.string(), "\"nope\""});
}

// ---------------------------------------------------------------------------------------------
// HF checkpoint directories

// Five F32 tensors of 40, 40, 40, 120 and 8 bytes (sum 248), distinct values each.
tailor::TensorMap five_tensors() {
  tailor::TensorMap m;
  m["a"] = at::arange(10, at::kFloat);
  m["b"] = at::arange(10, at::kFloat) + 100;
  m["c"] = at::arange(10, at::kFloat).reshape({2, 5}) - 50;
  m["d"] = at::arange(30, at::kFloat).reshape({3, 10}) * 0.5;
  m["e"] = at::tensor({9.0f, -9.0f});
  return m;
}

void expect_same(const tailor::TensorMap& actual, const tailor::TensorMap& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (const auto& [name, t] : expected) {
    ASSERT_TRUE(actual.count(name)) << name;
    EXPECT_TRUE(at::equal(actual.at(name), t)) << name;
  }
}

std::vector<std::string> dir_listing(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(HfCheckpoint, SmallCapWritesGreedyShardsAndIndex) {
  // Cap 100: {a,b}=80, c (80+40>100) new, d (40+120>100) new and alone above the cap, e new.
  st::save(dir_ / "model.safetensors", {{"old", at::zeros({1})}});  // stale single layout
  tailor::hf::save_state_dict(dir_, five_tensors(), 100);

  EXPECT_EQ(dir_listing(dir_), (std::vector<std::string>{
                                   "model-00001-of-00004.safetensors",
                                   "model-00002-of-00004.safetensors",
                                   "model-00003-of-00004.safetensors",
                                   "model-00004-of-00004.safetensors",
                                   "model.safetensors.index.json",
                               }));
  const json index = json::parse(tailor::read_file(dir_ / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 248);
  EXPECT_EQ(index["weight_map"], json({{"a", "model-00001-of-00004.safetensors"},
                                       {"b", "model-00001-of-00004.safetensors"},
                                       {"c", "model-00002-of-00004.safetensors"},
                                       {"d", "model-00003-of-00004.safetensors"},
                                       {"e", "model-00004-of-00004.safetensors"}}));
  EXPECT_EQ(st::Reader(dir_ / "model-00001-of-00004.safetensors").names(),
            (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(st::Reader(dir_ / "model-00003-of-00004.safetensors").names(),
            (std::vector<std::string>{"d"}));

  tailor::hf::CheckpointReader reader(dir_);
  EXPECT_EQ(reader.names(), (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  EXPECT_TRUE(reader.contains("d"));
  EXPECT_FALSE(reader.contains("old"));
  expect_same(tailor::hf::load_state_dict(dir_), five_tensors());
}

TEST_F(HfCheckpoint, BigCapWritesSingleFileAndRemovesStaleShards) {
  tailor::hf::save_state_dict(dir_, five_tensors(), 100);  // 4 shards + index
  tailor::hf::save_state_dict(dir_, five_tensors(), 248);  // total == cap: fits in one file
  EXPECT_EQ(dir_listing(dir_), (std::vector<std::string>{"model.safetensors"}));
  expect_same(st::load(dir_ / "model.safetensors"), five_tensors());
  expect_same(tailor::hf::load_state_dict(dir_), five_tensors());
}

TEST_F(HfCheckpoint, LoneTensorAboveCapIsSingleFile) {
  // One shard only, as transformers does: no index for a single file.
  tailor::hf::save_state_dict(dir_, {{"big", at::zeros({100})}}, 16);
  EXPECT_EQ(dir_listing(dir_), (std::vector<std::string>{"model.safetensors"}));
}

TEST_F(HfCheckpoint, FewerShardsRemoveOldShardFiles) {
  tailor::hf::save_state_dict(dir_, five_tensors(), 100);  // 4 shards
  tailor::hf::save_state_dict(dir_, five_tensors(), 200);  // {a,b,c}=120, then {d,e}=128
  EXPECT_EQ(dir_listing(dir_), (std::vector<std::string>{
                                   "model-00001-of-00002.safetensors",
                                   "model-00002-of-00002.safetensors",
                                   "model.safetensors.index.json",
                               }));
  expect_same(tailor::hf::load_state_dict(dir_), five_tensors());
}

TEST_F(HfCheckpoint, ReadsHandWrittenIndexWithCustomBasename) {
  // Index written by hand; the shard files by the independent byte builder.
  write_bytes(
      dir_ / "part1.safetensors",
      file_bytes(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", raw<float>({4.0f})));
  write_bytes(
      dir_ / "part2.safetensors",
      file_bytes(R"({"y":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}})", raw<int8_t>({-3, 3})));
  tailor::write_file_atomic(
      dir_ / "adapter.safetensors.index.json",
      R"({"metadata":{"total_size":6},"weight_map":{"x":"part1.safetensors","y":"part2.safetensors"}})");
  const tailor::TensorMap m = tailor::hf::load_state_dict(dir_, "adapter");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m.at("x").item<float>(), 4.0f);
  EXPECT_EQ(m.at("y").scalar_type(), at::kChar);
  EXPECT_EQ(m.at("y")[0].item<int8_t>(), -3);
}

TEST_F(HfCheckpoint, MissingShardFileNamed) {
  tailor::hf::save_state_dict(dir_, five_tensors(), 100);
  fs::remove(dir_ / "model-00002-of-00004.safetensors");
  expect_error([&] { tailor::hf::CheckpointReader r(dir_); },
               {"[hf]", "model-00002-of-00004.safetensors", "does not exist"});
}

TEST_F(HfCheckpoint, IndexNamingTensorAbsentFromShard) {
  tailor::hf::save_state_dict(dir_, five_tensors(), 100);
  json index = json::parse(tailor::read_file(dir_ / "model.safetensors.index.json"));
  index["weight_map"]["c"] = "model-00001-of-00004.safetensors";
  tailor::write_file_atomic(dir_ / "model.safetensors.index.json", index.dump());
  expect_error([&] { tailor::hf::CheckpointReader r(dir_); },
               {"\"c\"", "model-00001-of-00004.safetensors", "does not contain"});
}

TEST_F(HfCheckpoint, IndexEscapingDirectoryRejected) {
  tailor::write_file_atomic(dir_ / "model.safetensors.index.json",
                            R"({"weight_map":{"x":"../elsewhere.safetensors"}})");
  expect_error([&] { tailor::hf::CheckpointReader r(dir_); }, {"not a file name"});
}

TEST_F(HfCheckpoint, NeitherLayoutNamesDirectoryAndFiles) {
  expect_error([&] { tailor::hf::CheckpointReader r(dir_); },
               {dir_.string(), "model.safetensors", "model.safetensors.index.json"});
}

TEST_F(HfCheckpoint, MixedLayoutsPreferSingleFileLikeTransformers) {
  tailor::hf::save_state_dict(dir_, five_tensors(), 100);
  // A foreign tool left a single file beside the shards: transformers loads model.safetensors.
  write_bytes(dir_ / "model.safetensors",
              file_bytes(R"({"only":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                         raw<float>({1.25f})));
  tailor::hf::CheckpointReader reader(dir_);
  EXPECT_EQ(reader.names(), (std::vector<std::string>{"only"}));
  EXPECT_EQ(reader.tensor("only").item<float>(), 1.25f);
  expect_error([&] { reader.tensor("a"); }, {"\"a\""});
}

}  // namespace
