// Scalar arguments that the bindings take as objects because None means
// something there (sliding_window's None = no limit, num_heads=None, torch's
// is_causal=None). None gives std::nullopt; a value of another Python type is
// a TypeError naming the argument (as nanobind gives for typed parameters); an
// int beyond int64 is a maskattn::Error (ValueError) naming it.
#pragma once

#include <nanobind/nanobind.h>

#include <cstdint>
#include <optional>
#include <string_view>

namespace maskattn::python {

std::optional<int64_t> read_optional_int(nanobind::handle obj, std::string_view name);
std::optional<bool> read_optional_bool(nanobind::handle obj, std::string_view name);

}  // namespace maskattn::python
