#include "scalars.hpp"

#include <fmt/format.h>

#include <string>

#include "arrays.hpp"
#include "maskattn/error.hpp"

namespace maskattn::python {

namespace nb = nanobind;

std::optional<int64_t> read_optional_int(nb::handle obj, std::string_view name) {
  if (obj.is_none()) return std::nullopt;
  // Python ints, numpy integers, anything with __index__; not bool (an int in
  // Python, but a size or a count given as True is a mistake).
  if (PyBool_Check(obj.ptr()) || !PyIndex_Check(obj.ptr()))
    throw nb::type_error(
        fmt::format("{}: expected an int or None, got {}", name, python_type_name(obj)).c_str());
  int overflow = 0;
  const nb::object index = nb::steal(PyNumber_Index(obj.ptr()));
  if (!index.is_valid()) throw nb::python_error();
  const long long value = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (overflow != 0)
    throw Error(name, "an int that fits in int64", std::string(nb::str(index).c_str()));
  if (value == -1 && PyErr_Occurred()) throw nb::python_error();
  return static_cast<int64_t>(value);
}

std::optional<bool> read_optional_bool(nb::handle obj, std::string_view name) {
  if (obj.is_none()) return std::nullopt;
  if (obj.is(Py_True)) return true;
  if (obj.is(Py_False)) return false;
  if (nb::isinstance(obj, nb::module_::import_("numpy").attr("bool_")))
    return PyObject_IsTrue(obj.ptr()) == 1;
  throw nb::type_error(
      fmt::format("{}: expected a bool or None, got {}", name, python_type_name(obj)).c_str());
}

}  // namespace maskattn::python
