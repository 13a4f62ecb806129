#include "models/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <tuple>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"

// The format stores every number little-endian and we copy bytes straight into tensors, so the
// host must be little-endian too (x86-64 and aarch64 Linux are).
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors.cpp copies raw little-endian bytes; big-endian hosts are unsupported");

namespace tailor::safetensors {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Every dtype name of the safetensors spec with a whole-byte element size. Those without a
// LibTorch 1.13 counterpart (U16 U32 U64 F8_*) still open, so that other tensors of the file can
// be read; requesting one of them throws. Names outside this table make the file fail to open,
// because without an element size its offsets cannot be validated.
struct DtypeSpec {
  const char* name;
  uint64_t itemsize;
  std::optional<at::ScalarType> torch_type;
};

const std::vector<DtypeSpec>& dtype_table() {
  static const std::vector<DtypeSpec> table = {
      {"BOOL", 1, at::kBool},   {"U8", 1, at::kByte},         {"I8", 1, at::kChar},
      {"I16", 2, at::kShort},   {"I32", 4, at::kInt},         {"I64", 8, at::kLong},
      {"F16", 2, at::kHalf},    {"BF16", 2, at::kBFloat16},   {"F32", 4, at::kFloat},
      {"F64", 8, at::kDouble},  {"U16", 2, std::nullopt},     {"U32", 4, std::nullopt},
      {"U64", 8, std::nullopt}, {"F8_E4M3", 1, std::nullopt}, {"F8_E5M2", 1, std::nullopt},
  };
  return table;
}

const DtypeSpec* find_dtype(const std::string& name) {
  for (const auto& spec : dtype_table())
    if (name == spec.name) return &spec;
  return nullptr;
}

const char* find_dtype_name(at::ScalarType type) {
  for (const auto& spec : dtype_table())
    if (spec.torch_type == type) return spec.name;
  return nullptr;
}

// nlohmann keeps the last of duplicate keys silently; the spec forbids duplicates, so the parser
// callback records the first key repeated within any object.
json parse_header_json(const char* begin, const char* end, std::string& duplicate) {
  std::vector<std::set<std::string>> open_objects;
  auto callback = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  return json::parse(begin, end, callback);
}

bool multiply_overflows(uint64_t a, uint64_t b, uint64_t& out) {
  return __builtin_mul_overflow(a, b, &out);
}

}  // namespace

struct Reader::Impl {
  fs::path path;
  // The whole file, read-only. Truncating the file while mapped would fault (SIGBUS); tailor
  // never does, since every writer replaces files by rename (common/atomic_file.h).
  const uint8_t* map = nullptr;
  uint64_t file_size = 0;
  const uint8_t* data = nullptr;  // start of the data buffer
  std::map<std::string, TensorInfo> tensors;
  std::map<std::string, std::string> metadata;

  [[noreturn]] void fail(const std::string& what) const {
    throw Error("safetensors", path.string() + ": " + what);
  }

  void map_file();
  void parse_header();
  void validate_layout(uint64_t buffer_size) const;

  ~Impl() {
    if (map != nullptr) ::munmap(const_cast<uint8_t*>(map), file_size);
  }
};

void Reader::Impl::map_file() {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail(std::string("cannot stat: ") + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("not a regular file");
  }
  file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    fail("file has " + std::to_string(file_size) +
         " bytes, too short for the 8-byte header length");
  }
  void* addr = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping stays valid without the descriptor
  if (addr == MAP_FAILED) fail(std::string("mmap failed: ") + std::strerror(err));
  map = static_cast<const uint8_t*>(addr);
}

void Reader::Impl::parse_header() {
  uint64_t header_size = 0;
  std::memcpy(&header_size, map, 8);  // u64 little-endian
  if (header_size > file_size - 8)
    fail("header length " + std::to_string(header_size) + " exceeds the " +
         std::to_string(file_size - 8) + " bytes after the length field (file size " +
         std::to_string(file_size) + ")");
  const char* header_begin = reinterpret_cast<const char*>(map + 8);
  if (header_size == 0 || header_begin[0] != '{') fail("header does not start with '{'");

  json header;
  std::string duplicate;
  try {
    header = parse_header_json(header_begin, header_begin + header_size, duplicate);
  } catch (const json::exception& e) {
    fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!duplicate.empty()) fail("duplicate key \"" + duplicate + "\" in header");
  if (!header.is_object()) fail("header is not a JSON object");

  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (entry.is_null()) continue;
      if (!entry.is_object()) fail("__metadata__ must be an object of strings");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string())
          fail("__metadata__[\"" + key + "\"] must be a string, got " + value.dump());
        metadata[key] = value.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor \"" + name + "\": ";
    if (!entry.is_object()) fail(where + "entry must be an object");
    for (const char* field : {"dtype", "shape", "data_offsets"})
      if (!entry.contains(field)) fail(where + "missing \"" + field + "\"");

    TensorInfo info;
    if (!entry["dtype"].is_string()) fail(where + "dtype must be a string");
    info.dtype = entry["dtype"].get<std::string>();
    const DtypeSpec* spec = find_dtype(info.dtype);
    if (spec == nullptr) fail(where + "unknown dtype \"" + info.dtype + "\"");

    const json& shape = entry["shape"];
    if (!shape.is_array()) fail(where + "shape must be an array");
    uint64_t numel = 1;
    for (const auto& dim : shape) {
      if (!dim.is_number_unsigned() ||
          dim.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail(where + "shape " + shape.dump() + " must hold non-negative integers");
      info.shape.push_back(dim.get<int64_t>());
      if (multiply_overflows(numel, dim.get<uint64_t>(), numel))
        fail(where + "shape " + shape.dump() + " overflows");
    }

    const json& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      fail(where + "data_offsets must be two non-negative integers, got " + offsets.dump());
    info.begin = offsets[0].get<uint64_t>();
    info.end = offsets[1].get<uint64_t>();
    if (info.end < info.begin)
      fail(where + "data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
           "] end before begin");
    uint64_t nbytes = 0;
    if (multiply_overflows(numel, spec->itemsize, nbytes) || info.end - info.begin != nbytes)
      fail(where + "data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
           "] span " + std::to_string(info.end - info.begin) + " bytes but shape " + shape.dump() +
           " of " + info.dtype + " needs " + std::to_string(nbytes));
    tensors.emplace(name, std::move(info));
  }

  validate_layout(file_size - 8 - header_size);
  data = map + 8 + header_size;
}

// Entries must tile [0, buffer_size) exactly, as the reference implementation requires: sorted by
// offset, each begins where the previous ended, and the last ends at the end of the file.
void Reader::Impl::validate_layout(uint64_t buffer_size) const {
  std::vector<std::pair<const std::string*, const TensorInfo*>> by_offset;
  for (const auto& [name, info] : tensors)
    by_offset.emplace_back(&name, &info);
  std::sort(by_offset.begin(), by_offset.end(), [](const auto& a, const auto& b) {
    return std::tie(a.second->begin, a.second->end) < std::tie(b.second->begin, b.second->end);
  });
  uint64_t cursor = 0;
  for (const auto& [name, info] : by_offset) {
    if (info->begin > cursor)
      fail("hole in data buffer: bytes [" + std::to_string(cursor) + ", " +
           std::to_string(info->begin) + ") belong to no tensor (next is \"" + *name + "\")");
    if (info->begin < cursor)
      fail("tensor \"" + *name + "\" data_offsets [" + std::to_string(info->begin) + ", " +
           std::to_string(info->end) + "] overlap the previous tensor ending at " +
           std::to_string(cursor));
    cursor = info->end;
  }
  if (cursor > buffer_size)
    fail("file truncated: tensors need " + std::to_string(cursor) + " bytes of data but only " +
         std::to_string(buffer_size) + " follow the header");
  if (cursor < buffer_size)
    fail("data buffer has " + std::to_string(buffer_size) + " bytes but tensors cover only " +
         std::to_string(cursor));
}

Reader::Reader(const fs::path& file) : impl_(std::make_unique<Impl>()) {
  impl_->path = file;
  impl_->map_file();
  impl_->parse_header();
}

Reader::~Reader() = default;

const fs::path& Reader::path() const {
  return impl_->path;
}

std::vector<std::string> Reader::names() const {
  std::vector<std::string> out;
  out.reserve(impl_->tensors.size());
  for (const auto& [name, info] : impl_->tensors)
    out.push_back(name);
  return out;
}

bool Reader::contains(const std::string& name) const {
  return impl_->tensors.count(name) > 0;
}

const TensorInfo& Reader::info(const std::string& name) const {
  auto it = impl_->tensors.find(name);
  if (it == impl_->tensors.end()) impl_->fail("no tensor named \"" + name + "\"");
  return it->second;
}

at::Tensor Reader::tensor(const std::string& name) const {
  const TensorInfo& meta = info(name);
  const DtypeSpec* spec = find_dtype(meta.dtype);  // known: validated at open
  if (!spec->torch_type)
    impl_->fail("tensor \"" + name + "\" has dtype " + meta.dtype +
                ", which LibTorch 1.13 cannot represent");
  at::Tensor out = at::empty(meta.shape, at::TensorOptions().dtype(*spec->torch_type));
  const uint64_t nbytes = meta.end - meta.begin;
  if (nbytes > 0) std::memcpy(out.data_ptr(), impl_->data + meta.begin, nbytes);
  if (*spec->torch_type == at::kBool) {
    // A bool byte other than 0/1 is undefined behaviour in LibTorch kernels.
    const uint8_t* bytes = impl_->data + meta.begin;
    for (uint64_t i = 0; i < nbytes; ++i)
      if (bytes[i] > 1)
        impl_->fail("tensor \"" + name + "\" (BOOL) holds byte " + std::to_string(bytes[i]) +
                    " at element " + std::to_string(i));
  }
  return out;
}

const uint8_t* Reader::data(const std::string& name) const {
  return impl_->data + info(name).begin;
}

const std::map<std::string, std::string>& Reader::metadata() const {
  return impl_->metadata;
}

TensorMap load(const fs::path& file) {
  Reader reader(file);
  TensorMap out;
  for (const auto& name : reader.names())
    out.emplace(name, reader.tensor(name));
  return out;
}

std::string dtype_name(at::ScalarType type) {
  const char* name = find_dtype_name(type);
  if (name == nullptr)
    throw Error("safetensors",
                std::string("dtype ") + c10::toString(type) + " has no safetensors name");
  return name;
}

at::ScalarType scalar_type_of(const std::string& dtype) {
  const DtypeSpec* spec = find_dtype(dtype);
  if (spec == nullptr) throw Error("safetensors", "unknown dtype \"" + dtype + "\"");
  if (!spec->torch_type)
    throw Error("safetensors", "dtype " + dtype + " has no LibTorch 1.13 counterpart");
  return *spec->torch_type;
}

std::string encode_header(const std::vector<HeaderEntry>& entries,
                          const std::map<std::string, std::string>& metadata, const fs::path& file,
                          std::vector<std::pair<uint64_t, uint64_t>>* offsets) {
  auto fail = [&](const std::string& what) {
    throw Error("safetensors", file.string() + ": " + what);
  };
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  if (offsets) offsets->clear();
  uint64_t offset = 0;
  for (const auto& entry : entries) {
    const std::string& name = entry.name;
    if (name == "__metadata__") fail("\"__metadata__\" is reserved and cannot name a tensor");
    if (header.contains(name)) fail("tensor \"" + name + "\" is given twice");
    const char* dtype = find_dtype_name(entry.dtype);
    if (dtype == nullptr)
      fail("tensor \"" + name + "\" has unsupported dtype " +
           std::string(c10::toString(entry.dtype)));
    uint64_t nbytes = c10::elementSize(entry.dtype);
    for (int64_t dim : entry.shape) {
      if (dim < 0) fail("tensor \"" + name + "\" has a negative dimension");
      nbytes *= static_cast<uint64_t>(dim);
    }
    header[name] = {
        {"dtype", dtype}, {"shape", entry.shape}, {"data_offsets", {offset, offset + nbytes}}};
    if (offsets) offsets->emplace_back(offset, offset + nbytes);
    offset += nbytes;
  }
  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const json::exception& e) {
    fail(std::string("cannot encode header (tensor names must be UTF-8): ") + e.what());
  }
  // Pad with spaces so the data buffer starts 8-byte aligned (as the reference writer does).
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  const uint64_t header_size = header_text.size();
  std::string out(reinterpret_cast<const char*>(&header_size), 8);  // u64 little-endian
  return out + header_text;
}

void save(const fs::path& file, const TensorMap& tensors,
          const std::map<std::string, std::string>& metadata) {
  auto fail = [&](const std::string& what) {
    throw Error("safetensors", file.string() + ": " + what);
  };

  // Header first: TensorMap iterates in name order, so data is laid out in name order too.
  std::vector<HeaderEntry> entries;
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined()) fail("tensor \"" + name + "\" is undefined");
    if (tensor.layout() != at::kStrided) fail("tensor \"" + name + "\" is not a dense tensor");
    entries.push_back({name, tensor.scalar_type(), tensor.sizes().vec()});
  }
  const std::string header = encode_header(entries, metadata, file);

  write_atomic_with(file, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("cannot open " + tmp.string() + " for writing: " + std::strerror(errno));
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    // One tensor at a time, so at most one extra contiguous CPU copy exists at any moment.
    for (const auto& [name, tensor] : tensors) {
      const at::Tensor cpu = tensor.detach().to(at::kCPU).contiguous();
      const uint64_t nbytes = static_cast<uint64_t>(cpu.numel()) * cpu.element_size();
      if (nbytes > 0)
        out.write(static_cast<const char*>(cpu.data_ptr()), static_cast<std::streamsize>(nbytes));
      if (!out) fail("failed writing tensor \"" + name + "\" to " + tmp.string());
    }
    out.close();
    if (!out) fail("failed writing " + tmp.string());
  });
}

}  // namespace tailor::safetensors
