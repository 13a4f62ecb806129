#include "models/io/hf_checkpoint.h"

#include <cstdio>
#include <map>
#include <regex>
#include <set>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/mapped_pages.h"
#include "models/io/safetensors.h"

namespace tailor::hf {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

fs::path single_file(const fs::path& dir, const std::string& basename) {
  return dir / (basename + ".safetensors");
}

fs::path index_file(const fs::path& dir, const std::string& basename) {
  return dir / (basename + ".safetensors.index.json");
}

// HF shard names: `model-00001-of-00003.safetensors` (transformers `shard_checkpoint`).
std::string shard_name(const std::string& basename, size_t index, size_t count) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "-%05zu-of-%05zu", index, count);
  return basename + buf + ".safetensors";
}

bool is_shard_name(const std::string& filename, const std::string& basename) {
  const std::string suffix = ".safetensors";
  const size_t stem = basename.size() + std::string("-00000-of-00000").size();
  if (filename.size() != stem + suffix.size()) return false;
  if (filename.compare(0, basename.size(), basename) != 0) return false;
  if (filename.compare(stem, suffix.size(), suffix) != 0) return false;
  static const std::regex pattern("-[0-9]{5}-of-[0-9]{5}");
  return std::regex_match(filename.substr(basename.size(), stem - basename.size()), pattern);
}

void remove_file(const fs::path& path) {
  std::error_code ec;
  fs::remove(path, ec);
  if (ec) throw Error("hf", "cannot remove stale " + path.string() + ": " + ec.message());
}

// Removes `<basename>-NNNNN-of-NNNNN.safetensors` files of `dir` except those in `keep`.
void remove_stale_shards(const fs::path& dir, const std::string& basename,
                         const std::set<std::string>& keep) {
  std::vector<fs::path> stale;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string filename = entry.path().filename().string();
    if (is_shard_name(filename, basename) && keep.count(filename) == 0)
      stale.push_back(entry.path());
  }
  for (const auto& path : stale)
    remove_file(path);
}

uint64_t tensor_bytes(const at::Tensor& tensor) {
  return static_cast<uint64_t>(tensor.numel()) * tensor.element_size();
}

}  // namespace

struct CheckpointReader::Impl {
  // Shards by filename; a single-file checkpoint is one "shard".
  std::map<std::string, std::unique_ptr<safetensors::Reader>> files;
  std::map<std::string, const safetensors::Reader*> owner;  // tensor name -> its file

  void open_single(const fs::path& path);
  void open_index(const fs::path& dir, const fs::path& index_path);
};

void CheckpointReader::Impl::open_single(const fs::path& path) {
  auto reader = std::make_unique<safetensors::Reader>(path);
  for (const auto& name : reader->names())
    owner[name] = reader.get();
  files.emplace(path.filename().string(), std::move(reader));
}

void CheckpointReader::Impl::open_index(const fs::path& dir, const fs::path& index_path) {
  auto fail = [&](const std::string& what) {
    throw Error("hf", index_path.string() + ": " + what);
  };
  json index;
  try {
    index = json::parse(read_file(index_path));
  } catch (const json::exception& e) {
    fail(std::string("not valid JSON: ") + e.what());
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    fail("expected an object with a \"weight_map\" object");
  for (const auto& [name, file_json] : index["weight_map"].items()) {
    if (!file_json.is_string()) fail("weight_map[\"" + name + "\"] must be a file name");
    const std::string filename = file_json.get<std::string>();
    // Shards live next to the index; refuse paths that would escape the directory.
    if (filename.empty() || filename == "." || filename == ".." ||
        fs::path(filename).filename().string() != filename)
      fail("weight_map[\"" + name + "\"] = \"" + filename + "\" is not a file name in " +
           dir.string());
    auto it = files.find(filename);
    if (it == files.end()) {
      const fs::path shard = dir / filename;
      if (!fs::is_regular_file(shard))
        fail("shard " + shard.string() + " (for tensor \"" + name + "\") does not exist");
      it = files.emplace(filename, std::make_unique<safetensors::Reader>(shard)).first;
    }
    if (!it->second->contains(name))
      fail("tensor \"" + name + "\" is mapped to " + filename + ", which does not contain it");
    owner[name] = it->second.get();
  }
}

// Layout precedence follows transformers' `from_pretrained`: a single `model.safetensors` wins
// over `model.safetensors.index.json` when both exist. save_state_dict never leaves both.
CheckpointReader::CheckpointReader(const fs::path& dir, const std::string& basename)
    : impl_(std::make_unique<Impl>()) {
  const fs::path single = single_file(dir, basename);
  const fs::path index = index_file(dir, basename);
  if (fs::is_regular_file(single)) {
    impl_->open_single(single);
  } else if (fs::is_regular_file(index)) {
    impl_->open_index(dir, index);
  } else {
    throw Error("hf", dir.string() + ": no checkpoint found (looked for " +
                          single.filename().string() + " and " + index.filename().string() + ")");
  }
}

CheckpointReader::~CheckpointReader() = default;

std::vector<std::string> CheckpointReader::names() const {
  std::vector<std::string> out;
  out.reserve(impl_->owner.size());
  for (const auto& [name, reader] : impl_->owner)
    out.push_back(name);
  return out;
}

bool CheckpointReader::contains(const std::string& name) const {
  return impl_->owner.count(name) > 0;
}

at::Tensor CheckpointReader::tensor(const std::string& name) const {
  auto it = impl_->owner.find(name);
  if (it == impl_->owner.end()) throw Error("hf", "checkpoint has no tensor \"" + name + "\"");
  return it->second->tensor(name);
}

const uint8_t* CheckpointReader::data(const std::string& name) const {
  auto it = impl_->owner.find(name);
  if (it == impl_->owner.end()) throw Error("hf", "checkpoint has no tensor \"" + name + "\"");
  return it->second->data(name);
}

const safetensors::TensorInfo& CheckpointReader::info(const std::string& name) const {
  auto it = impl_->owner.find(name);
  if (it == impl_->owner.end()) throw Error("hf", "checkpoint has no tensor \"" + name + "\"");
  return it->second->info(name);
}

TensorMap map_state_dict(const fs::path& dir, const std::string& basename) {
  auto reader = std::make_shared<CheckpointReader>(dir, basename);
  TensorMap out;
  for (const auto& name : reader->names()) {
    const safetensors::TensorInfo& info = reader->info(name);
    const at::ScalarType dtype = safetensors::scalar_type_of(info.dtype);
    const uint8_t* bytes = reader->data(name);
    const uint64_t nbytes = info.end - info.begin;
    if (nbytes == 0 || reinterpret_cast<uintptr_t>(bytes) % c10::elementSize(dtype) != 0) {
      out.emplace(name, reader->tensor(name));
      continue;
    }
    // The deleter holds the reader, so the mapping outlives every view of it.
    out.emplace(name, at::from_blob(
                          const_cast<uint8_t*>(bytes), info.shape, [reader](void*) {},
                          at::TensorOptions().dtype(dtype)));
  }
  return out;
}

void release_mapped(const at::Tensor& tensor) {
  drop_mapped_pages(tensor.data_ptr(), tensor.nbytes());
}

TensorMap load_state_dict(const fs::path& dir, const std::string& basename) {
  CheckpointReader reader(dir, basename);
  TensorMap out;
  for (const auto& name : reader.names())
    out.emplace(name, reader.tensor(name));
  return out;
}

StateDictLayout plan_state_dict(const std::map<std::string, uint64_t>& bytes_by_name,
                                uint64_t max_shard_bytes, const std::string& basename) {
  // Greedy packing in name order, as transformers' `shard_checkpoint`: open a new shard when the
  // next tensor would push the current one past the cap; an oversized tensor gets its own shard.
  StateDictLayout layout;
  layout.files.emplace_back();
  uint64_t shard_bytes = 0;
  for (const auto& [name, bytes] : bytes_by_name) {
    if (!layout.files.back().names.empty() && shard_bytes + bytes > max_shard_bytes) {
      layout.files.emplace_back();
      shard_bytes = 0;
    }
    layout.files.back().names.push_back(name);
    shard_bytes += bytes;
    layout.total_bytes += bytes;
  }
  // Everything fits (or a lone tensor exceeds the cap): one file, no index, like transformers.
  if (layout.files.size() == 1) {
    layout.files[0].filename = single_file("", basename).string();
  } else {
    for (size_t i = 0; i < layout.files.size(); ++i)
      layout.files[i].filename = shard_name(basename, i + 1, layout.files.size());
  }
  return layout;
}

void finish_state_dict(const fs::path& dir, const StateDictLayout& layout,
                       const std::string& basename) {
  if (layout.files.size() == 1) {
    remove_file(index_file(dir, basename));
    remove_stale_shards(dir, basename, {});
    return;
  }
  json weight_map = json::object();
  std::set<std::string> written;
  for (const auto& file : layout.files) {
    for (const auto& name : file.names)
      weight_map[name] = file.filename;
    written.insert(file.filename);
  }
  const json index = {{"metadata", {{"total_size", layout.total_bytes}}},
                      {"weight_map", weight_map}};
  // The index is written after its shards, so a reader never sees it point at missing files.
  write_file_atomic(index_file(dir, basename), index.dump(2) + "\n");
  remove_file(single_file(dir, basename));
  remove_stale_shards(dir, basename, written);
}

void save_state_dict(const fs::path& dir, const TensorMap& tensors, uint64_t max_shard_bytes,
                     const std::string& basename) {
  std::map<std::string, uint64_t> bytes_by_name;
  for (const auto& [name, tensor] : tensors)
    bytes_by_name[name] = tensor.defined() ? tensor_bytes(tensor) : 0;
  const StateDictLayout layout = plan_state_dict(bytes_by_name, max_shard_bytes, basename);
  fs::create_directories(dir);
  for (const auto& file : layout.files) {
    TensorMap part;
    for (const auto& name : file.names)
      part.emplace(name, tensors.at(name));
    safetensors::save(dir / file.filename, part);
  }
  finish_state_dict(dir, layout, basename);
}

}  // namespace tailor::hf
