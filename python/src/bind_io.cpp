// maskattn.save_safetensors / load_safetensors / safetensors_metadata
// (include/maskattn/io/safetensors.hpp). Loaded arrays view the file's mapping
// without a copy; a capsule owning a SafetensorsFile keeps it alive.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "bindings.hpp"
#include "maskattn/io/safetensors.hpp"

namespace maskattn::python {

std::string read_path(nb::handle path) {
  const auto b = nb::cast<nb::bytes>(nb::module_::import_("os").attr("fsencode")(path));
  return std::string(b.c_str(), b.size());
}

namespace {

nb::dlpack::dtype dlpack_dtype(DType t) {
  switch (t) {
    case DType::Bool: return nb::dtype<bool>();
    case DType::UInt8: return nb::dtype<uint8_t>();
    case DType::Int32: return nb::dtype<int32_t>();
    case DType::Int64: return nb::dtype<int64_t>();
    case DType::Float32: return nb::dtype<float>();
    case DType::Float64: return nb::dtype<double>();
  }
  return nb::dtype<uint8_t>();
}

void save_py(nb::handle path, nb::handle tensors, nb::handle metadata) {
  const std::string p = read_path(path);
  // The arrays stay referenced (and their memory valid) until the file is written.
  const ArrayDict arrays = read_array_dict(tensors, "tensors");
  const std::map<std::string, AnyView>& views = arrays.views;
  std::map<std::string, std::string> md;
  if (!metadata.is_none()) md = read_str_dict(metadata, "metadata");
  nb::gil_scoped_release release;
  save_safetensors(p, views, md);
}

nb::dict load_py(nb::handle path) {
  const std::string p = read_path(path);
  SafetensorsFile file = [&] {
    nb::gil_scoped_release release;
    return SafetensorsFile::open(p);
  }();
  const std::map<std::string, AnyView> views = file.views();
  // One owner for every array: the mapping goes when the last array does.
  nb::capsule owner(new SafetensorsFile(std::move(file)),
                    [](void* f) noexcept { delete static_cast<SafetensorsFile*>(f); });
  nb::dict out;
  for (const auto& [name, v] : views) {
    const std::vector<std::size_t> shape(v.shape.begin(), v.shape.end());
    nb::ndarray<nb::numpy, nb::ro> array(v.data, shape.size(), shape.data(), owner,
                                         v.strides.data(), dlpack_dtype(v.dtype));
    out[nb::str(name.data(), name.size())] = array.cast();
  }
  return out;
}

std::map<std::string, std::string> metadata_py(nb::handle path) {
  const std::string p = read_path(path);
  nb::gil_scoped_release release;
  const SafetensorsFile file = SafetensorsFile::open(p);
  return file.metadata();
}

}  // namespace

void bind_io(nb::module_& m) {
  m.def("save_safetensors", &save_py, "path"_a, "tensors"_a, "metadata"_a.none() = nb::none(),
        R"(Writes tensors to a safetensors file.

path: str or os.PathLike. tensors: dict of name -> array (numpy array, CPU
torch tensor or anything numpy.asarray takes) of dtype bool, uint8, int32,
int64, float32 or float64, any strides. metadata: dict of str -> str, or None.
The layout is the reference implementation's (data ordered by dtype size then
name, header padded to 8 bytes); the file is written under a temporary name and
renamed over path, so path is never left half-written.)");

  m.def("load_safetensors", &load_py, "path"_a,
        R"(Reads a safetensors file: dict of name -> read-only numpy array, sorted by name.

The arrays view the memory-mapped file without a copy and keep the mapping
alive. Do not truncate or rewrite the file in place while they live
(save_safetensors replaces files by renaming, which is safe); copy them
(np.array(a)) to be independent of the file. Dtypes BOOL, U8, I32, I64, F32,
F64; any other dtype, and any malformed file, raises ValueError naming the file
and tensor.)");

  m.def("safetensors_metadata", &metadata_py, "path"_a,
        R"(The "__metadata__" of a safetensors file: dict of str -> str, empty when absent.)");
}

}  // namespace maskattn::python
