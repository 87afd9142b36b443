// The _maskattn extension module: registration only (CTranslate2's
// python/cpp/module.cc is the model). Every function forwards to the C++
// library; maskattn::Error (bad input) surfaces as ValueError with the
// library's message.
#include <nanobind/nanobind.h>

#include "bindings.hpp"
#include "maskattn/version.hpp"

NB_MODULE(_maskattn, m) {
  namespace nb = nanobind;
  using maskattn::python::bind_attention;
  using maskattn::python::bind_encoding;
  using maskattn::python::bind_io;
  using maskattn::python::bind_leak_check;
  using maskattn::python::bind_mask;
  using maskattn::python::bind_models;
  using maskattn::python::bind_nn;
  using maskattn::python::bind_text;
  using maskattn::python::bind_seq2seq;
  using maskattn::python::bind_train;
  using maskattn::python::bind_viz;

  m.doc() = "maskattn: Transformer attention with masks (C++ core).";
  m.attr("__version__") = maskattn::kVersion;

  // maskattn::Error derives from std::invalid_argument, which nanobind maps to
  // ValueError already; say so here rather than rely on it.
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const maskattn::Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  bind_mask(m);
  bind_attention(m);
  bind_encoding(m);
  bind_io(m);
  bind_nn(m);
  bind_text(m);
  bind_models(m);
  bind_viz(m);
  bind_train(m);
  bind_seq2seq(m);
  bind_leak_check(m);
}
