// maskattn::Error — the one exception type for bad input.
//
// Every public entry point checks its arguments once, at the boundary, and
// throws an Error whose message names the argument, what was expected and
// what was given:
//   maskattn: q: expected rank-4 (B, H, Lq, D) with D >= 1, got shape (2, 3, 4, 0)
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace maskattn {

class Error : public std::invalid_argument {
 public:
  // argument: the parameter's name as the caller wrote it ("q", "mask", "lengths[3]").
  Error(std::string_view argument, std::string_view expected, std::string_view actual);

  const std::string& argument() const noexcept { return argument_; }
  const std::string& expected() const noexcept { return expected_; }
  const std::string& actual() const noexcept { return actual_; }

 private:
  std::string argument_;
  std::string expected_;
  std::string actual_;
};

// Throws Error(argument, expected, actual) unless `condition` holds.
inline void check(bool condition, std::string_view argument, std::string_view expected,
                  std::string_view actual) {
  if (!condition) throw Error(argument, expected, actual);
}

}  // namespace maskattn
