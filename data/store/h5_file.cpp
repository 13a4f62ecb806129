#include "data/store/h5_file.h"

#include <hdf5.h>

#include <cstring>
#include <system_error>

#include "common/error.h"

namespace tailor::h5 {
namespace fs = std::filesystem;

namespace {

// HDF5 prints its error stack to stderr by default; we report errors ourselves.
void silence_hdf5_errors() {
  static const bool silenced = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)silenced;
}

// The innermost (first-pushed) message of HDF5's current error stack, e.g. "unable to open
// file" or "file signature not found"; empty when there is none.
std::string hdf5_error_detail() {
  std::string detail;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* err, void* data) -> herr_t {
        auto* out = static_cast<std::string*>(data);
        if (n == 0 && err->desc != nullptr) *out = err->desc;
        return 0;
      },
      &detail);
  H5Eclear2(H5E_DEFAULT);
  return detail;
}

[[noreturn]] void fail(const fs::path& file, const std::string& what) {
  const std::string detail = hdf5_error_detail();
  throw Error("hdf5", file.string() + ": " + what + (detail.empty() ? "" : " (" + detail + ")"));
}

hid_t check_id(hid_t id, const fs::path& file, const std::string& what) {
  if (id < 0) fail(file, what);
  return id;
}

void check(herr_t status, const fs::path& file, const std::string& what) {
  if (status < 0) fail(file, what);
}

// Frees the strings HDF5 allocated while reading variable-length data. H5Treclaim replaced
// H5Dvlen_reclaim in 1.12 (Debian's 1.10 headers declare it, but the library lacks it).
void reclaim_strings(hid_t type, hid_t space, void* buffer) {
#if H5_VERSION_GE(1, 12, 0)
  H5Treclaim(type, space, H5P_DEFAULT, buffer);
#else
  H5Dvlen_reclaim(type, space, H5P_DEFAULT, buffer);
#endif
}

Handle utf8_string_type(const fs::path& file) {
  Handle type(check_id(H5Tcopy(H5T_C_S1), file, "cannot create string type"));
  check(H5Tset_size(type.get(), H5T_VARIABLE), file, "cannot create string type");
  check(H5Tset_cset(type.get(), H5T_CSET_UTF8), file, "cannot create string type");
  return type;
}

Handle dataset_creation_plist(int64_t n, const DatasetLayout& layout, const fs::path& file) {
  Handle plist(check_id(H5Pcreate(H5P_DATASET_CREATE), file, "cannot create property list"));
  if (n >= layout.min_elements_to_chunk && layout.chunk_elements > 0) {
    const hsize_t chunk[1] = {static_cast<hsize_t>(std::min<int64_t>(n, layout.chunk_elements))};
    check(H5Pset_chunk(plist.get(), 1, chunk), file, "cannot set chunking");
    if (layout.deflate_level > 0 && H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) {
      check(H5Pset_shuffle(plist.get()), file, "cannot set shuffle filter");
      check(H5Pset_deflate(plist.get(), static_cast<unsigned>(layout.deflate_level)), file,
            "cannot set deflate filter");
    }
  }
  return plist;
}

template <typename T>
void write_numeric(hid_t file_id, const fs::path& file, const std::string& name,
                   const std::vector<T>& values, hid_t file_type, hid_t mem_type,
                   const DatasetLayout& layout) {
  const hsize_t dims[1] = {static_cast<hsize_t>(values.size())};
  Handle space(
      check_id(H5Screate_simple(1, dims, nullptr), file, "cannot create dataspace for " + name));
  Handle plist = dataset_creation_plist(static_cast<int64_t>(values.size()), layout, file);
  Handle lcpl(check_id(H5Pcreate(H5P_LINK_CREATE), file, "cannot create property list"));
  check(H5Pset_create_intermediate_group(lcpl.get(), 1), file, "cannot set link property");
  Handle dset(check_id(H5Dcreate2(file_id, name.c_str(), file_type, space.get(), lcpl.get(),
                                  plist.get(), H5P_DEFAULT),
                       file, "cannot create dataset " + name));
  if (!values.empty()) {
    check(H5Dwrite(dset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), file,
          "cannot write dataset " + name);
  }
}

Handle open_dataset(hid_t file_id, const fs::path& file, const std::string& name) {
  return Handle(check_id(H5Dopen2(file_id, name.c_str(), H5P_DEFAULT), file,
                         "missing or unreadable dataset '" + name + "'"));
}

int64_t extent_1d(hid_t dset, const fs::path& file, const std::string& name) {
  Handle space(check_id(H5Dget_space(dset), file, "cannot get dataspace of " + name));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank != 1) {
    throw Error("hdf5", file.string() + ": dataset '" + name + "' has rank " +
                            std::to_string(rank) + ", expected a 1-D dataset");
  }
  hsize_t dims[1] = {0};
  check(H5Sget_simple_extent_dims(space.get(), dims, nullptr), file,
        "cannot read extent of " + name);
  return static_cast<int64_t>(dims[0]);
}

// Reads elements [start, start + count) of a 1-D numeric dataset of class `expected` (integer or
// float), converting to `mem_type` (HDF5 converts between widths of the same class).
template <typename T>
std::vector<T> read_numeric(hid_t file_id, const fs::path& file, const std::string& name,
                            hid_t mem_type, int64_t start, int64_t count,
                            H5T_class_t expected = H5T_INTEGER) {
  Handle dset = open_dataset(file_id, file, name);
  Handle type(check_id(H5Dget_type(dset.get()), file, "cannot get type of " + name));
  if (H5Tget_class(type.get()) != expected) {
    throw Error("hdf5", file.string() + ": dataset '" + name + "' is not " +
                            (expected == H5T_FLOAT ? "a floating-point" : "an integer") +
                            " dataset");
  }
  const int64_t n = extent_1d(dset.get(), file, name);
  if (count < 0) count = n - start;
  if (start < 0 || count < 0 || start + count > n) {
    throw Error("hdf5", file.string() + ": range [" + std::to_string(start) + ", " +
                            std::to_string(start + count) + ") is outside dataset '" + name +
                            "' of " + std::to_string(n) + " elements");
  }
  std::vector<T> out(static_cast<size_t>(count));
  if (count == 0) return out;
  Handle file_space(check_id(H5Dget_space(dset.get()), file, "cannot get dataspace of " + name));
  const hsize_t offset[1] = {static_cast<hsize_t>(start)};
  const hsize_t extent[1] = {static_cast<hsize_t>(count)};
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, offset, nullptr, extent, nullptr),
        file, "cannot select range of " + name);
  Handle mem_space(check_id(H5Screate_simple(1, extent, nullptr), file, "cannot create dataspace"));
  check(H5Dread(dset.get(), mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, out.data()),
        file, "cannot read dataset " + name);
  return out;
}

}  // namespace

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    other.id_ = -1;
  }
  return *this;
}

void Handle::reset() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE:
      H5Fclose(id_);
      break;
    case H5I_GROUP:
      H5Gclose(id_);
      break;
    case H5I_DATASET:
      H5Dclose(id_);
      break;
    case H5I_DATASPACE:
      H5Sclose(id_);
      break;
    case H5I_DATATYPE:
      H5Tclose(id_);
      break;
    case H5I_ATTR:
      H5Aclose(id_);
      break;
    case H5I_GENPROP_LST:
      H5Pclose(id_);
      break;
    default:
      break;
  }
  id_ = -1;
}

File::File(fs::path path, Handle file) : path_(std::move(path)), file_(std::move(file)) {}

File::~File() = default;

void File::close() {
  if (!file_.valid()) return;
  // The id is given up even when closing fails (e.g. a failed flush): never close it twice.
  check(H5Fclose(file_.release()), path_, "cannot close file");
}

File File::create(const fs::path& path) {
  silence_hdf5_errors();
  Handle fapl(check_id(H5Pcreate(H5P_FILE_ACCESS), path, "cannot create property list"));
  // STRONG: closing the file also closes any object still open in it, so the file is complete.
  check(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG), path, "cannot set close degree");
  Handle file(check_id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), path,
                       "cannot create HDF5 file"));
  return File(path, std::move(file));
}

File File::open_read_only(const fs::path& path) {
  silence_hdf5_errors();
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error("hdf5", path.string() + ": no such file");
  if (fs::is_directory(path, ec))
    throw Error("hdf5", path.string() + ": is a directory, expected an HDF5 file");
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  if (is_hdf5 == 0) {
    H5Eclear2(H5E_DEFAULT);
    throw Error("hdf5", path.string() + ": not an HDF5 file (no HDF5 signature)");
  }
  if (is_hdf5 < 0) fail(path, "cannot read file");
  Handle file(
      check_id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), path, "cannot open HDF5 file"));
  return File(path, std::move(file));
}

void File::create_group(const std::string& name) {
  Handle lcpl(check_id(H5Pcreate(H5P_LINK_CREATE), path_, "cannot create property list"));
  check(H5Pset_create_intermediate_group(lcpl.get(), 1), path_, "cannot set link property");
  Handle group(check_id(H5Gcreate2(file_.get(), name.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT),
                        path_, "cannot create group " + name));
}

bool File::exists(const std::string& name) const {
  // H5Lexists fails (rather than returning false) when an intermediate group is missing, so
  // check each prefix of the path in turn.
  size_t pos = 0;
  while (true) {
    const size_t slash = name.find('/', pos);
    const std::string prefix = name.substr(0, slash);
    if (!prefix.empty()) {
      const htri_t found = H5Lexists(file_.get(), prefix.c_str(), H5P_DEFAULT);
      if (found < 0) fail(path_, "cannot look up " + prefix);
      if (found == 0) return false;
    }
    if (slash == std::string::npos) return true;
    pos = slash + 1;
  }
}

void File::write_int32(const std::string& name, const std::vector<int32_t>& values,
                       const DatasetLayout& layout) {
  write_numeric(file_.get(), path_, name, values, H5T_STD_I32LE, H5T_NATIVE_INT32, layout);
}

void File::write_int64(const std::string& name, const std::vector<int64_t>& values,
                       const DatasetLayout& layout) {
  write_numeric(file_.get(), path_, name, values, H5T_STD_I64LE, H5T_NATIVE_INT64, layout);
}

void File::write_float32(const std::string& name, const std::vector<float>& values,
                         const DatasetLayout& layout) {
  write_numeric(file_.get(), path_, name, values, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, layout);
}

void File::write_strings(const std::string& name, const std::vector<std::string>& values) {
  std::vector<const char*> pointers;
  pointers.reserve(values.size());
  for (const std::string& s : values) {
    if (s.find('\0') != std::string::npos) {
      throw Error("hdf5", path_.string() + ": string for dataset '" + name +
                              "' contains a NUL character, which HDF5 strings cannot hold");
    }
    pointers.push_back(s.c_str());
  }
  Handle type = utf8_string_type(path_);
  const hsize_t dims[1] = {static_cast<hsize_t>(values.size())};
  Handle space(
      check_id(H5Screate_simple(1, dims, nullptr), path_, "cannot create dataspace for " + name));
  Handle plist = dataset_creation_plist(static_cast<int64_t>(values.size()),
                                        DatasetLayout{1 << 12, 4, 4096}, path_);
  Handle lcpl(check_id(H5Pcreate(H5P_LINK_CREATE), path_, "cannot create property list"));
  check(H5Pset_create_intermediate_group(lcpl.get(), 1), path_, "cannot set link property");
  Handle dset(check_id(H5Dcreate2(file_.get(), name.c_str(), type.get(), space.get(), lcpl.get(),
                                  plist.get(), H5P_DEFAULT),
                       path_, "cannot create dataset " + name));
  if (!values.empty()) {
    check(H5Dwrite(dset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()), path_,
          "cannot write dataset " + name);
  }
}

std::vector<int32_t> File::read_int32(const std::string& name) const {
  return read_numeric<int32_t>(file_.get(), path_, name, H5T_NATIVE_INT32, 0, -1);
}

std::vector<int64_t> File::read_int64(const std::string& name) const {
  return read_numeric<int64_t>(file_.get(), path_, name, H5T_NATIVE_INT64, 0, -1);
}

std::vector<float> File::read_float32(const std::string& name) const {
  return read_numeric<float>(file_.get(), path_, name, H5T_NATIVE_FLOAT, 0, -1, H5T_FLOAT);
}

std::vector<int32_t> File::read_int32_range(const std::string& name, int64_t start,
                                            int64_t count) const {
  if (count < 0) throw Error("hdf5", path_.string() + ": negative element count for " + name);
  return read_numeric<int32_t>(file_.get(), path_, name, H5T_NATIVE_INT32, start, count);
}

int64_t File::dataset_size(const std::string& name) const {
  Handle dset = open_dataset(file_.get(), path_, name);
  return extent_1d(dset.get(), path_, name);
}

std::vector<std::string> File::read_strings(const std::string& name) const {
  Handle dset = open_dataset(file_.get(), path_, name);
  Handle file_type(check_id(H5Dget_type(dset.get()), path_, "cannot get type of " + name));
  if (H5Tget_class(file_type.get()) != H5T_STRING || H5Tis_variable_str(file_type.get()) <= 0) {
    throw Error("hdf5", path_.string() + ": dataset '" + name +
                            "' is not a variable-length string dataset");
  }
  const int64_t n = extent_1d(dset.get(), path_, name);
  std::vector<std::string> out;
  if (n == 0) return out;
  Handle mem_type = utf8_string_type(path_);
  std::vector<char*> pointers(static_cast<size_t>(n), nullptr);
  check(H5Dread(dset.get(), mem_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()), path_,
        "cannot read dataset " + name);
  out.reserve(pointers.size());
  for (const char* p : pointers)
    out.emplace_back(p == nullptr ? "" : p);
  Handle space(check_id(H5Dget_space(dset.get()), path_, "cannot get dataspace of " + name));
  reclaim_strings(mem_type.get(), space.get(), pointers.data());
  return out;
}

void File::set_attribute(const std::string& name, const std::string& value) {
  if (value.find('\0') != std::string::npos) {
    throw Error("hdf5", path_.string() + ": attribute '" + name + "' contains a NUL character");
  }
  Handle type = utf8_string_type(path_);
  Handle space(check_id(H5Screate(H5S_SCALAR), path_, "cannot create dataspace"));
  Handle attr(check_id(
      H5Acreate2(file_.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
      path_, "cannot create attribute " + name));
  const char* data = value.c_str();
  check(H5Awrite(attr.get(), type.get(), &data), path_, "cannot write attribute " + name);
}

void File::set_attribute(const std::string& name, int64_t value) {
  Handle space(check_id(H5Screate(H5S_SCALAR), path_, "cannot create dataspace"));
  Handle attr(check_id(
      H5Acreate2(file_.get(), name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
      path_, "cannot create attribute " + name));
  check(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), path_, "cannot write attribute " + name);
}

bool File::has_attribute(const std::string& name) const {
  const htri_t found = H5Aexists(file_.get(), name.c_str());
  if (found < 0) fail(path_, "cannot look up attribute " + name);
  return found > 0;
}

std::string File::string_attribute(const std::string& name) const {
  if (!has_attribute(name))
    throw Error("hdf5", path_.string() + ": missing attribute '" + name + "'");
  Handle attr(check_id(H5Aopen(file_.get(), name.c_str(), H5P_DEFAULT), path_,
                       "cannot open attribute " + name));
  Handle type(check_id(H5Aget_type(attr.get()), path_, "cannot get type of attribute " + name));
  if (H5Tget_class(type.get()) != H5T_STRING) {
    throw Error("hdf5", path_.string() + ": attribute '" + name + "' is not a string");
  }
  if (H5Tis_variable_str(type.get()) > 0) {
    Handle mem_type = utf8_string_type(path_);
    char* data = nullptr;
    check(H5Aread(attr.get(), mem_type.get(), &data), path_, "cannot read attribute " + name);
    std::string value = data == nullptr ? "" : data;
    Handle space(check_id(H5Aget_space(attr.get()), path_, "cannot get dataspace"));
    reclaim_strings(mem_type.get(), space.get(), &data);
    return value;
  }
  // Fixed-length strings (as some writers produce): read the raw bytes, drop NUL padding.
  const size_t size = H5Tget_size(type.get());
  std::string value(size, '\0');
  check(H5Aread(attr.get(), type.get(), value.data()), path_, "cannot read attribute " + name);
  value.resize(std::strlen(value.c_str()));
  return value;
}

int64_t File::int_attribute(const std::string& name) const {
  if (!has_attribute(name))
    throw Error("hdf5", path_.string() + ": missing attribute '" + name + "'");
  Handle attr(check_id(H5Aopen(file_.get(), name.c_str(), H5P_DEFAULT), path_,
                       "cannot open attribute " + name));
  Handle type(check_id(H5Aget_type(attr.get()), path_, "cannot get type of attribute " + name));
  if (H5Tget_class(type.get()) != H5T_INTEGER) {
    throw Error("hdf5", path_.string() + ": attribute '" + name + "' is not an integer");
  }
  int64_t value = 0;
  check(H5Aread(attr.get(), H5T_NATIVE_INT64, &value), path_, "cannot read attribute " + name);
  return value;
}

}  // namespace tailor::h5
