#include "maskattn/error.hpp"

#include <fmt/format.h>

namespace maskattn {

Error::Error(std::string_view argument, std::string_view expected, std::string_view actual)
    : std::invalid_argument(
          fmt::format("maskattn: {}: expected {}, got {}", argument, expected, actual)),
      argument_(argument),
      expected_(expected),
      actual_(actual) {}

}  // namespace maskattn
