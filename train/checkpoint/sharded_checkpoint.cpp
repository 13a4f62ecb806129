#include "train/checkpoint/sharded_checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <regex>
#include <set>
#include <tuple>
#include <utility>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/fnv1a.h"
#include "common/mapped_pages.h"
#include "common/shape_string.h"
#include "models/io/safetensors.h"

namespace tailor::dist {
namespace fs = std::filesystem;
using nlohmann::json;
using ordered_json = nlohmann::ordered_json;

namespace {

constexpr const char* kScope = "checkpoint";
constexpr const char* kFormat = "tailor-sharded-v1";
constexpr const char* kManifestFile = "manifest.json";
constexpr const char* kStateFile = "trainer_state.json";
constexpr const char* kModelFile = "model.safetensors";
constexpr const char* kOptimizerFile = "optimizer.safetensors";

std::string piece_key(const std::string& tensor, int64_t offset) {
  return tensor + "@" + std::to_string(offset);
}

std::string range_string(int64_t begin, int64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

// The tensor table as written to the manifest (in the caller's order).
ordered_json table_json(const std::vector<TensorInfo>& tensors) {
  ordered_json table = ordered_json::object();
  for (const auto& t : tensors) {
    table[t.name] = {
        {"dtype", safetensors::dtype_name(t.dtype)}, {"shape", t.shape}, {"kind", t.kind}};
  }
  return table;
}

// Names unique, kinds known, shapes non-negative; returns name -> index.
std::map<std::string, size_t> index_table(const std::vector<TensorInfo>& tensors) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& t = tensors[i];
    if (t.name.empty() || t.name.find('@') != std::string::npos)
      throw Error(kScope, "tensor name \"" + t.name + "\" must be non-empty and contain no '@'");
    if (t.kind != "model" && t.kind != "optimizer")
      throw Error(kScope, "tensor \"" + t.name +
                              "\": kind must be \"model\" or \"optimizer\", got \"" + t.kind +
                              "\"");
    for (int64_t d : t.shape)
      if (d < 0)
        throw Error(kScope, "tensor \"" + t.name + "\": negative dimension in shape " +
                                shape_string(t.shape));
    if (!index.emplace(t.name, i).second)
      throw Error(kScope, "tensor \"" + t.name + "\" appears twice in the table");
  }
  return index;
}

std::string table_digest(const std::vector<TensorInfo>& tensors) {
  // FNV-1a, not std::hash: ranks running different builds (nodes) must agree on it.
  return fnv1a64_hex(table_json(tensors).dump());
}

}  // namespace

int64_t TensorInfo::numel() const {
  return numel_of(shape);
}

bool is_sharded_checkpoint(const fs::path& checkpoint_dir) {
  return fs::is_regular_file(checkpoint_dir / kManifestFile);
}

// ---- Saving -------------------------------------------------------------------------------------

fs::path sharded_temp_dir(const fs::path& run_dir, int64_t step) {
  return checkpoints_root(run_dir) / (".tmp_" + checkpoint_dir_name(step));
}

std::string shard_file_name(int rank, int world_size) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "shard_%05d-of-%05d.safetensors", rank, world_size);
  return buf;
}

fs::path prepare_sharded_temp_dir(const fs::path& run_dir, int64_t step) {
  const fs::path root = checkpoints_root(run_dir);
  fs::create_directories(root);
  // Only one save runs per run directory at a time, so any .tmp_step_* is a dead save's.
  static const std::regex pattern(R"(\.tmp_step_[0-9]+)");
  std::vector<fs::path> stale;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (std::regex_match(entry.path().filename().string(), pattern)) stale.push_back(entry.path());
  }
  for (const auto& path : stale)
    fs::remove_all(path);
  const fs::path tmp = sharded_temp_dir(run_dir, step);
  fs::create_directories(tmp);
  return tmp;
}

std::string write_rank_shard(const fs::path& tmp_dir, int rank, int world_size,
                             const std::vector<TensorInfo>& tensors,
                             const std::vector<ShardPiece>& pieces, const json& rng) {
  if (world_size <= 0 || rank < 0 || rank >= world_size)
    throw Error(kScope, "rank " + std::to_string(rank) + " of world size " +
                            std::to_string(world_size) + " is out of range");
  const auto index = index_table(tensors);
  const fs::path file = tmp_dir / shard_file_name(rank, world_size);
  auto fail = [&](const std::string& what) {
    throw Error(kScope, file.string() + ": rank " + std::to_string(rank) + ": " + what);
  };
  TensorMap data;
  json listed = json::array();
  for (const auto& piece : pieces) {
    auto it = index.find(piece.tensor);
    if (it == index.end()) fail("piece of unknown tensor \"" + piece.tensor + "\"");
    const TensorInfo& info = tensors[it->second];
    const std::string where =
        "tensor \"" + piece.tensor + "\" piece at " + std::to_string(piece.offset) + ": ";
    if (!piece.data.defined()) fail(where + "data is undefined");
    if (piece.data.dim() != 1)
      fail(where + "data must be 1-D, got shape " + shape_string(piece.data.sizes()));
    if (piece.data.scalar_type() != info.dtype)
      fail(where + "dtype " + std::string(c10::toString(piece.data.scalar_type())) +
           " differs from the table's " + c10::toString(info.dtype));
    const int64_t length = piece.data.numel();
    if (piece.offset < 0 || piece.offset + length > info.numel())
      fail(where + "elements " + range_string(piece.offset, piece.offset + length) +
           " fall outside the tensor's " + std::to_string(info.numel()));
    if (length == 0) continue;  // holds nothing; not worth an entry
    const std::string key = piece_key(piece.tensor, piece.offset);
    if (!data.emplace(key, piece.data).second) fail(where + "given twice");
    listed.push_back({{"tensor", piece.tensor}, {"offset", piece.offset}, {"length", length}});
  }
  safetensors::save(file, data);
  const json report = {{"rank", rank},
                       {"file", file.filename().string()},
                       {"table", table_digest(tensors)},
                       {"pieces", listed},
                       {"rng", rng}};
  return report.dump();
}

std::string failed_rank_report(int rank, const std::string& message) {
  return json{{"rank", rank}, {"error", message}}.dump();
}

fs::path commit_sharded_checkpoint(const fs::path& run_dir, const fs::path& tmp_dir,
                                   const std::vector<TensorInfo>& tensors,
                                   const std::vector<std::string>& reports,
                                   const TrainerState& state, const SaveShardedOptions& options) {
  const std::string where = tmp_dir.string();
  auto fail = [&](const std::string& what) { throw Error(kScope, where + ": " + what); };
  const auto index = index_table(tensors);
  const int world_size = static_cast<int>(reports.size());
  if (world_size == 0) fail("no rank reports");
  const std::string digest = table_digest(tensors);

  // Every rank's pieces, per tensor: (offset, end, rank).
  std::vector<std::vector<std::tuple<int64_t, int64_t, int>>> held(tensors.size());
  ordered_json shards = ordered_json::array();
  json rng_states = json::array();
  for (int r = 0; r < world_size; ++r) {
    const std::string rank_name = "rank " + std::to_string(r);
    json report = json::parse(reports[r], nullptr, /*allow_exceptions=*/false);
    if (report.is_discarded() || !report.is_object())
      fail(rank_name + " sent a report that is not a JSON object");
    try {
      if (report.contains("error"))
        fail(rank_name + " failed to write its shard: " + report["error"].get<std::string>());
      if (report.value("rank", -1) != r)
        fail("report " + std::to_string(r) + " claims to come from rank " +
             report.value("rank", json()).dump());
      if (report.value("table", std::string()) != digest)
        fail(rank_name + " saved with a different tensor table than rank 0 got");
      const std::string file = report.value("file", std::string());
      if (file != shard_file_name(r, world_size))
        fail(rank_name + " wrote \"" + file + "\", expected " + shard_file_name(r, world_size));
      if (!fs::is_regular_file(tmp_dir / file))
        fail(rank_name + "'s shard file " + (tmp_dir / file).string() + " is missing");
      ordered_json listed = ordered_json::array();
      for (const auto& piece : report.at("pieces")) {
        const std::string tensor = piece.at("tensor").get<std::string>();
        const int64_t offset = piece.at("offset").get<int64_t>();
        const int64_t length = piece.at("length").get<int64_t>();
        auto it = index.find(tensor);
        if (it == index.end())
          fail(rank_name + " holds a piece of unknown tensor \"" + tensor + "\"");
        held[it->second].emplace_back(offset, offset + length, r);
        listed.push_back({{"tensor", tensor}, {"offset", offset}, {"length", length}});
      }
      shards.push_back({{"file", file}, {"rank", r}, {"pieces", listed}});
      rng_states.push_back(report.value("rng", json()));
    } catch (const json::exception& e) {
      fail(rank_name + " sent a malformed report: " + e.what());
    }
  }

  // Coverage: sorted by offset, the pieces of each tensor must tile [0, numel).
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto& list = held[i];
    std::sort(list.begin(), list.end());
    const std::string name =
        "tensor \"" + tensors[i].name + "\" " + shape_string(tensors[i].shape) + ": ";
    int64_t cursor = 0;
    int last_rank = -1;
    for (const auto& [begin, end, rank] : list) {
      if (begin > cursor)
        fail(name + "elements " + range_string(cursor, begin) + " are held by no rank");
      if (begin < cursor)
        fail(name + "elements " + range_string(begin, std::min(cursor, end)) +
             " are held twice (by rank " + std::to_string(last_rank) + " and rank " +
             std::to_string(rank) + ")");
      cursor = end;
      last_rank = rank;
    }
    if (cursor < tensors[i].numel())
      fail(name + "elements " + range_string(cursor, tensors[i].numel()) + " are held by no rank");
  }

  ordered_json manifest = {{"format", kFormat},
                           {"world_size", world_size},
                           {"step", state.step},
                           {"tensors", table_json(tensors)},
                           {"shards", shards}};
  TrainerState saved = state;
  saved.rng = json{{"ranks", rng_states}};
  write_file_atomic(tmp_dir / kManifestFile, manifest.dump(2) + "\n");
  // Last, so a directory without it is recognisably incomplete (as in
  // train/checkpoint/checkpoint.cpp).
  write_file_atomic(tmp_dir / kStateFile, trainer_state_to_json(saved).dump(2) + "\n");

  const std::string name = checkpoint_dir_name(state.step);
  const fs::path dir = checkpoints_root(run_dir) / name;
  replace_dir(tmp_dir, dir);
  publish_checkpoint(run_dir, name, options.keep_last);
  return dir;
}

fs::path save_sharded_checkpoint(Communicator& comm, const fs::path& run_dir,
                                 const std::vector<TensorInfo>& tensors,
                                 const std::vector<ShardPiece>& pieces, const TrainerState& state,
                                 const SaveShardedOptions& options) {
  const int rank = comm.rank();
  const int world_size = comm.world_size();
  const fs::path tmp = sharded_temp_dir(run_dir, state.step);
  const std::string save_name = "sharded save of step " + std::to_string(state.step);

  // Every failure travels through all_gather_strings, so no rank is left waiting in a collective
  // that another rank skipped by throwing.
  std::string prepared = "ok";
  if (rank == 0) {
    try {
      prepare_sharded_temp_dir(run_dir, state.step);
    } catch (const std::exception& e) {
      prepared = e.what();
    }
  }
  const auto prepared_all = comm.all_gather_strings(prepared);
  if (prepared_all.at(0) != "ok")
    throw Error(kScope,
                save_name + ": rank 0 could not create " + tmp.string() + ": " + prepared_all[0]);

  std::string report;
  try {
    report = write_rank_shard(tmp, rank, world_size, tensors, pieces, state.rng);
  } catch (const std::exception& e) {
    report = failed_rank_report(rank, e.what());
  }
  const auto reports = comm.all_gather_strings(report);
  comm.barrier();

  std::string outcome = "ok";
  fs::path dir = checkpoints_root(run_dir) / checkpoint_dir_name(state.step);
  std::exception_ptr error;
  if (rank == 0) {
    try {
      dir = commit_sharded_checkpoint(run_dir, tmp, tensors, reports, state, options);
    } catch (const std::exception& e) {
      outcome = e.what();
      error = std::current_exception();
      std::error_code ec;
      fs::remove_all(tmp, ec);  // the previous checkpoint and `latest` stay as they were
    }
  }
  const auto outcomes = comm.all_gather_strings(outcome);
  if (error) std::rethrow_exception(error);
  if (outcomes.at(0) != "ok") throw Error(kScope, save_name + " failed on rank 0: " + outcomes[0]);
  return dir;
}

// ---- Reading ------------------------------------------------------------------------------------

namespace {

// A stored range of one tensor: elements [offset, offset + length) are tensor `key` of file `file`.
struct StoredPiece {
  int64_t offset = 0;
  int64_t length = 0;
  size_t file = 0;
  std::string key;
};

}  // namespace

struct ShardedCheckpointReader::Impl {
  fs::path dir;
  fs::path manifest_path;  // empty for the single-process layout
  int world_size = 1;
  bool sharded = false;
  TrainerState state;
  std::vector<TensorInfo> tensors;
  std::map<std::string, size_t> index;
  std::vector<std::vector<StoredPiece>> pieces;  // per tensor, sorted by offset, disjoint
  std::vector<fs::path> files;
  // Opened on first use: a reader of one tensor maps only the shards holding it.
  mutable std::vector<std::unique_ptr<safetensors::Reader>> readers;
  mutable std::mutex mutex;

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(kScope, (manifest_path.empty() ? dir : manifest_path).string() + ": " + what);
  }

  void open_sharded();
  void open_single_process();
  const safetensors::Reader& reader(size_t file, const std::string& tensor) const;
};

void ShardedCheckpointReader::Impl::open_sharded() {
  sharded = true;
  manifest_path = dir / kManifestFile;
  ordered_json manifest;
  try {
    manifest = ordered_json::parse(read_file(manifest_path));
  } catch (const ordered_json::exception& e) {
    fail(std::string("not valid JSON: ") + e.what());
  }
  try {
    if (!manifest.is_object() || manifest.value("format", std::string()) != kFormat)
      fail(std::string("\"format\" must be \"") + kFormat + "\"");
    world_size = manifest.at("world_size").get<int>();
    if (world_size <= 0) fail("world_size must be positive");
    const auto& table = manifest.at("tensors");
    if (!table.is_object()) fail("\"tensors\" must be an object {name: {dtype, shape, kind}}");
    for (const auto& [name, entry] : table.items()) {
      TensorInfo info;
      info.name = name;
      try {
        info.dtype = safetensors::scalar_type_of(entry.at("dtype").get<std::string>());
      } catch (const Error& e) {
        fail("tensor \"" + name + "\": " + e.what());
      }
      info.shape = entry.at("shape").get<std::vector<int64_t>>();
      info.kind = entry.at("kind").get<std::string>();
      tensors.push_back(std::move(info));
    }
    try {
      index = index_table(tensors);
    } catch (const Error& e) {
      fail(e.what());
    }
    pieces.resize(tensors.size());
    const auto& shards = manifest.at("shards");
    if (!shards.is_array()) fail("\"shards\" must be an array");
    for (const auto& shard : shards) {
      const std::string file = shard.at("file").get<std::string>();
      if (file.empty() || fs::path(file).filename().string() != file || file == "..")
        fail("shard file \"" + file + "\" is not a file name in " + dir.string());
      files.push_back(dir / file);
      for (const auto& piece : shard.at("pieces")) {
        StoredPiece stored;
        const std::string tensor = piece.at("tensor").get<std::string>();
        stored.offset = piece.at("offset").get<int64_t>();
        stored.length = piece.at("length").get<int64_t>();
        stored.file = files.size() - 1;
        stored.key = piece_key(tensor, stored.offset);
        auto it = index.find(tensor);
        if (it == index.end()) fail(file + " holds a piece of unknown tensor \"" + tensor + "\"");
        const int64_t numel = tensors[it->second].numel();
        if (stored.offset < 0 || stored.length <= 0 || stored.offset + stored.length > numel)
          fail(file + ": piece of tensor \"" + tensor + "\" at elements " +
               range_string(stored.offset, stored.offset + stored.length) +
               " is empty or outside its " + std::to_string(numel) + " elements");
        pieces[it->second].push_back(std::move(stored));
      }
    }
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("malformed manifest: ") + e.what());
  }
  // Overlaps are ambiguous: refuse them up front. Gaps are reported when a read touches one.
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto& list = pieces[i];
    std::sort(list.begin(), list.end(),
              [](const StoredPiece& a, const StoredPiece& b) { return a.offset < b.offset; });
    for (size_t j = 1; j < list.size(); ++j) {
      const StoredPiece& prev = list[j - 1];
      if (list[j].offset < prev.offset + prev.length)
        fail("tensor \"" + tensors[i].name + "\": elements " +
             range_string(list[j].offset,
                          std::min(prev.offset + prev.length, list[j].offset + list[j].length)) +
             " are held twice (" + files[prev.file].filename().string() + " and " +
             files[list[j].file].filename().string() + ")");
    }
  }
  readers.resize(files.size());

  const fs::path state_path = dir / kStateFile;
  if (!fs::is_regular_file(state_path)) fail("missing " + state_path.string());
  json state_json = json::parse(read_file(state_path), nullptr, /*allow_exceptions=*/false);
  if (state_json.is_discarded()) throw Error(kScope, state_path.string() + ": not valid JSON");
  state = trainer_state_from_json(state_json, state_path.string());
  if (manifest.value("step", int64_t{-1}) != state.step)
    fail("step " + manifest.value("step", ordered_json()).dump() + " differs from " +
         state_path.string() + "'s " + std::to_string(state.step));
}

// The single-process layout as one shard holding every tensor whole: model.safetensors tensors
// are "model", optimizer.safetensors tensors (including the int64 scalar "step") "optimizer".
void ShardedCheckpointReader::Impl::open_single_process() {
  for (const char* file : {kModelFile, kOptimizerFile, kStateFile}) {
    if (!fs::is_regular_file(dir / file))
      fail(std::string("neither ") + kManifestFile + " nor " + file + " (not a checkpoint)");
  }
  const fs::path state_path = dir / kStateFile;
  json state_json = json::parse(read_file(state_path), nullptr, /*allow_exceptions=*/false);
  if (state_json.is_discarded()) throw Error(kScope, state_path.string() + ": not valid JSON");
  state = trainer_state_from_json(state_json, state_path.string());

  for (const auto& [file, kind] :
       {std::pair<const char*, const char*>{kModelFile, "model"}, {kOptimizerFile, "optimizer"}}) {
    files.push_back(dir / file);
    readers.push_back(std::make_unique<safetensors::Reader>(files.back()));
    const safetensors::Reader& r = *readers.back();
    for (const auto& name : r.names()) {
      const auto& meta = r.info(name);
      TensorInfo info;
      info.name = name;
      info.kind = kind;
      info.shape = meta.shape;
      try {
        info.dtype = safetensors::scalar_type_of(meta.dtype);
      } catch (const Error& e) {
        throw Error(kScope, files.back().string() + ": tensor \"" + name + "\": " + e.what());
      }
      if (index.count(name))
        throw Error(kScope,
                    files.back().string() + ": tensor \"" + name + "\" is also in " + kModelFile);
      index.emplace(name, tensors.size());
      StoredPiece piece;
      piece.length = info.numel();
      piece.file = files.size() - 1;
      piece.key = name;
      pieces.push_back(piece.length > 0 ? std::vector<StoredPiece>{piece}
                                        : std::vector<StoredPiece>{});
      tensors.push_back(std::move(info));
    }
  }
}

const safetensors::Reader& ShardedCheckpointReader::Impl::reader(size_t file,
                                                                 const std::string& tensor) const {
  std::lock_guard<std::mutex> lock(mutex);
  if (!readers[file]) {
    if (!fs::is_regular_file(files[file]))
      fail("shard file " + files[file].string() + " (holding part of tensor \"" + tensor +
           "\") is missing");
    try {
      readers[file] = std::make_unique<safetensors::Reader>(files[file]);
    } catch (const Error& e) {
      fail(std::string("cannot read shard (holding part of tensor \"") + tensor +
           "\"): " + e.what());
    }
  }
  return *readers[file];
}

ShardedCheckpointReader::ShardedCheckpointReader(const fs::path& checkpoint_dir)
    : impl_(std::make_unique<Impl>()) {
  impl_->dir = checkpoint_dir;
  if (is_sharded_checkpoint(checkpoint_dir)) {
    impl_->open_sharded();
  } else {
    impl_->open_single_process();
  }
}

ShardedCheckpointReader::~ShardedCheckpointReader() = default;
ShardedCheckpointReader::ShardedCheckpointReader(ShardedCheckpointReader&&) noexcept = default;
ShardedCheckpointReader& ShardedCheckpointReader::operator=(ShardedCheckpointReader&&) noexcept =
    default;

const fs::path& ShardedCheckpointReader::dir() const {
  return impl_->dir;
}
int ShardedCheckpointReader::world_size() const {
  return impl_->world_size;
}
bool ShardedCheckpointReader::sharded() const {
  return impl_->sharded;
}
const TrainerState& ShardedCheckpointReader::state() const {
  return impl_->state;
}
const std::vector<TensorInfo>& ShardedCheckpointReader::tensors() const {
  return impl_->tensors;
}

const TensorInfo* ShardedCheckpointReader::find(const std::string& name) const {
  auto it = impl_->index.find(name);
  return it == impl_->index.end() ? nullptr : &impl_->tensors[it->second];
}

at::Tensor ShardedCheckpointReader::read_range(const std::string& name, int64_t offset,
                                               int64_t length) const {
  const Impl& impl = *impl_;
  auto it = impl.index.find(name);
  if (it == impl.index.end()) impl.fail("no tensor named \"" + name + "\"");
  const TensorInfo& info = impl.tensors[it->second];
  const int64_t end = offset + length;
  if (offset < 0 || length < 0 || end > info.numel())
    impl.fail("tensor \"" + name + "\": elements " + range_string(offset, end) +
              " requested, it has " + std::to_string(info.numel()));
  at::Tensor out = at::empty({length}, at::TensorOptions().dtype(info.dtype));
  const std::string dtype = safetensors::dtype_name(info.dtype);
  const int64_t itemsize = static_cast<int64_t>(out.element_size());
  auto* dst = static_cast<uint8_t*>(out.data_ptr());

  const auto& list = impl.pieces[it->second];
  // First piece ending after `offset`; pieces are disjoint and sorted, so their ends are too.
  auto p = std::partition_point(list.begin(), list.end(), [&](const StoredPiece& piece) {
    return piece.offset + piece.length <= offset;
  });
  int64_t cursor = offset;
  for (; cursor < end && p != list.end() && p->offset < end; ++p) {
    if (p->offset > cursor) break;  // a gap
    const safetensors::Reader& r = impl.reader(p->file, name);
    const std::string where =
        r.path().string() + ": tensor \"" + name + "\" piece \"" + p->key + "\": ";
    if (!r.contains(p->key)) throw Error(kScope, where + "missing from the shard file");
    const auto& meta = r.info(p->key);
    if (meta.dtype != dtype)
      throw Error(kScope, where + "dtype " + meta.dtype + ", the manifest says " + dtype);
    if (numel_of(meta.shape) != p->length || (impl.sharded && meta.shape.size() != 1))
      throw Error(kScope, where + "shape " + shape_string(meta.shape) + ", the manifest says " +
                              std::to_string(p->length) + " elements");
    const int64_t stop = std::min(end, p->offset + p->length);
    const uint8_t* src = r.data(p->key) + (cursor - p->offset) * itemsize;
    const size_t bytes = static_cast<size_t>((stop - cursor) * itemsize);
    std::memcpy(dst + (cursor - offset) * itemsize, src, bytes);
    drop_mapped_pages(src, bytes);  // a streaming export of a 7B model stays at one tensor
    cursor = stop;
  }
  if (cursor < end) {
    const int64_t gap_end = p != list.end() ? std::min(end, p->offset) : end;
    impl.fail("tensor \"" + name + "\": elements " + range_string(cursor, gap_end) +
              " are held by no shard");
  }
  return out;
}

at::Tensor ShardedCheckpointReader::read(const std::string& name) const {
  const TensorInfo* info = find(name);
  if (info == nullptr) impl_->fail("no tensor named \"" + name + "\"");
  return read_range(name, 0, info->numel()).view(info->shape);
}

}  // namespace tailor::dist
