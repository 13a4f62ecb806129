// A thin RAII layer over the HDF5 C API (libhdf5 1.10): just what tailor's dataset store needs.
// Every failure throws tailor::Error("hdf5", ...) naming the file, the object and HDF5's own
// innermost error message; HDF5's automatic stderr error printing is switched off.
//
// Object names are HDF5 paths relative to the root ("input_ids/values"). Strings are stored as
// variable-length UTF-8 (what h5py reads as `str`); they cannot contain NUL bytes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace tailor::h5 {

// Owns one HDF5 identifier (file, group, dataset, dataspace, datatype, property list or
// attribute) and closes it with the matching H5*close function.
class Handle {
 public:
  Handle() = default;
  explicit Handle(int64_t id) : id_(id) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept : id_(other.id_) { other.id_ = -1; }
  Handle& operator=(Handle&& other) noexcept;
  ~Handle() { reset(); }

  int64_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();
  // Gives up ownership without closing.
  int64_t release() {
    const int64_t id = id_;
    id_ = -1;
    return id;
  }

 private:
  int64_t id_ = -1;  // hid_t is int64_t in HDF5 >= 1.10
};

// How a 1-D numeric dataset is laid out on disk. Chunking + deflate (with the byte-shuffle
// filter, which groups the mostly-zero high bytes of small token ids) is used only when the
// dataset has at least `min_elements_to_chunk` elements; tiny datasets stay contiguous.
struct DatasetLayout {
  int64_t chunk_elements = 1 << 16;
  int deflate_level = 4;  // 0 disables compression
  int64_t min_elements_to_chunk = 4096;
};

class File {
 public:
  // Creates (truncating) a file for writing.
  static File create(const std::filesystem::path& path);
  // Opens an existing file read-only. Throws naming the path when it does not exist or is not
  // an HDF5 file.
  static File open_read_only(const std::filesystem::path& path);

  File(File&&) noexcept = default;
  File& operator=(File&&) noexcept = default;
  ~File();  // closes the file; errors while closing are swallowed (use close() to see them)
  void close();

  const std::filesystem::path& path() const { return path_; }

  // Groups. `create_group` makes intermediate groups as needed.
  void create_group(const std::string& name);
  // True when `name` (possibly nested, "a/b/c") exists as a link.
  bool exists(const std::string& name) const;

  // 1-D datasets (int32, int64, float32, UTF-8 strings), written whole and read whole or by element
  // range [start, start + count).
  void write_int32(const std::string& name, const std::vector<int32_t>& values,
                   const DatasetLayout& layout = {});
  void write_int64(const std::string& name, const std::vector<int64_t>& values,
                   const DatasetLayout& layout = {});
  void write_float32(const std::string& name, const std::vector<float>& values,
                     const DatasetLayout& layout = {});
  void write_strings(const std::string& name, const std::vector<std::string>& values);
  std::vector<int32_t> read_int32(const std::string& name) const;
  std::vector<int64_t> read_int64(const std::string& name) const;
  std::vector<float> read_float32(const std::string& name) const;  // float32 or float64 on disk
  std::vector<int32_t> read_int32_range(const std::string& name, int64_t start,
                                        int64_t count) const;
  std::vector<std::string> read_strings(const std::string& name) const;
  // Number of elements of a 1-D dataset.
  int64_t dataset_size(const std::string& name) const;

  // Scalar attributes on the root group.
  void set_attribute(const std::string& name, const std::string& value);
  void set_attribute(const std::string& name, int64_t value);
  bool has_attribute(const std::string& name) const;
  // Throw naming the file and attribute when it is absent or has another type.
  std::string string_attribute(const std::string& name) const;
  int64_t int_attribute(const std::string& name) const;

 private:
  File(std::filesystem::path path, Handle file);
  std::filesystem::path path_;
  Handle file_;
};

}  // namespace tailor::h5
